"""dockyard-runc on cgroup v2, read back from inside the container.

These run the real runtime on the guest's v2-only kernel; what the host's v1
hybrid cannot show (v2 file writes, the cgroup2 mount, v2 device rules) is
checked here and only here.
"""

from __future__ import annotations

from bundle import Bundle


def test_busybox_container_runs(bundle: Bundle) -> None:
    """dockyard-runc runs busybox from the test images, in a cgroup of its own on the v2 tree."""
    out = bundle.run_ok("echo hello from busybox; cat /proc/self/cgroup")
    lines = out.splitlines()
    assert lines[0] == "hello from busybox"
    # A private cgroup namespace (base_config asks for one): the container's cgroup is its root.
    assert lines[1] == "0::/", out

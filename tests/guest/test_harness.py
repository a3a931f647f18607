"""The guest is the kernel a Kubernetes node runs: these prove the harness is real.

If one of these fails, every other guest test proves nothing about a node, so
they check the facts the rest relies on: systemd is PID 1, the cgroup tree is
v2 only with every controller, AppArmor is on and its parser loads profiles,
the venv's dockyard is this checkout, and the test images are reachable.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from guest_env import REPO, run

CGROUP2_SUPER_MAGIC = 0x63677270
NODE_CONTROLLERS = {"cpu", "memory", "io", "pids", "cpuset", "hugetlb"}


def test_pid1_is_systemd() -> None:
    """PID 1 is systemd, so the systemd cgroup driver talks to a real manager."""
    assert Path("/proc/1/comm").read_text().strip() == "systemd"
    assert os.path.basename(os.readlink("/proc/1/exe")) == "systemd"
    running = run(["systemctl", "is-system-running"])
    # "starting": this job is part of the boot transaction, so boot is never "running" while it runs.
    assert running.stdout.strip() in {"starting", "running", "degraded"}, running


def test_cgroup_tree_is_v2_only() -> None:
    """/sys/fs/cgroup is cgroup2 and no v1 hierarchy is mounted anywhere."""
    # statfs through os.statvfs has no f_type; the mount table names the type.
    mounts = [line.split(" - ")[1].split()[0] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert "cgroup" not in mounts, "a cgroup v1 hierarchy is mounted"
    fs_type = run(["stat", "-f", "-c", "%t", "/sys/fs/cgroup"], check=True)
    assert int(fs_type.stdout, 16) == CGROUP2_SUPER_MAGIC
    assert "cgroup_no_v1=all" in Path("/proc/cmdline").read_text()


def test_every_node_controller_is_available() -> None:
    """cpu, memory, io, pids, cpuset and hugetlb are all in the root's cgroup.controllers."""
    available = set(Path("/sys/fs/cgroup/cgroup.controllers").read_text().split())
    assert NODE_CONTROLLERS <= available, f"missing: {NODE_CONTROLLERS - available}"


def test_this_job_runs_in_a_systemd_unit() -> None:
    """The suite itself is a systemd service's process, in that unit's cgroup."""
    own = Path("/proc/self/cgroup").read_text().strip()
    assert own.startswith("0::/system.slice/dockyard-guest-job.service"), own


def test_apparmor_is_enabled() -> None:
    """The kernel's AppArmor is on and securityfs exposes its policy interface."""
    assert Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    assert Path("/sys/kernel/security/apparmor/profiles").exists()
    assert "apparmor" in Path("/sys/kernel/security/lsm").read_text().split(",")


def test_apparmor_parser_loads_and_enforces_a_profile(tmp_path: Path) -> None:
    """apparmor_parser loads a profile into the kernel, and a process under it is confined by it."""
    name = "dockyard-guest-harness"
    secret = tmp_path / "secret"
    secret.write_text("not for you\n")
    profile = tmp_path / "profile"
    profile.write_text(textwrap.dedent(f"""\
        profile {name} flags=(attach_disconnected) {{
          file,
          deny {secret} r,
        }}
    """))
    run(["apparmor_parser", "--replace", str(profile)], check=True)
    try:
        assert f"{name} (enforce)" in Path("/sys/kernel/security/apparmor/profiles").read_text()
        confined = run(["aa-exec", "-p", name, "--", "/bin/sh", "-c", f"cat /proc/self/attr/current; cat {secret}"])
        assert confined.stdout.startswith(f"{name} (enforce)"), confined
        assert confined.returncode != 0 and "Permission denied" in confined.stderr, confined
        # The same read outside the profile works: the denial is the profile's.
        assert secret.read_text() == "not for you\n"
    finally:
        run(["apparmor_parser", "--remove", str(profile)], check=True)
    assert name not in Path("/sys/kernel/security/apparmor/profiles").read_text()


def test_venv_imports_this_checkout() -> None:
    """The guest's venv python imports dockyard from this checkout (the same code the host tests)."""
    done = run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", "import dockyard.runtime, dockyard.cri; print(dockyard.runtime.__file__)"]
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(REPO), done.stdout


def test_guest_network_has_no_route_out() -> None:
    """qemu gives the guest no network card, so nothing it does can leave it.

    Other guest tests run pods, so the CNI bridge (dockyard0) and veths may
    be here; they are virtual and end inside the guest. What must not exist
    is a device backed by hardware (a `device` link in sysfs) or a default
    route."""
    hardware = [name for name in sorted(os.listdir("/sys/class/net"))
                if os.path.exists(f"/sys/class/net/{name}/device")]
    assert hardware == [], hardware
    with open("/proc/net/route") as routes:
        next(routes)  # the header
        defaults = [line.split()[0] for line in routes if line.split()[1] == "00000000"]
    assert defaults == [], f"default route via {defaults}"


def test_shared_directory_is_writable(guest_out: Path) -> None:
    """What the guest writes to the shared directory reaches the host (the junit report goes there)."""
    probe = guest_out / "harness-probe"
    probe.write_text("written in the guest\n")
    assert probe.read_text() == "written in the guest\n"


@pytest.mark.parametrize("path", ["bin/busybox", "etc/passwd"])
def test_busybox_image_is_reachable(rootfs: Path, path: str) -> None:
    """The busybox rootfs hack/build-images.sh built on the host is here, read through the overlay."""
    assert (rootfs / path).is_file()
    assert rootfs.is_relative_to(REPO / "build"), f"fell back to a rootfs built by the test: {rootfs}"

"""Whether the kernel's OOM killer killed a process of a container's cgroup.

Facts:
- cgroup v1: ``memory.oom_control`` of the container's memory cgroup has a
  line ``oom_kill N`` (kernel >= 4.13), the number of processes the OOM
  killer killed in that cgroup.  cgroup v2: ``memory.events`` has the same
  ``oom_kill N`` line.
- The runtime removes the container's cgroup at ``delete``, which the daemon
  runs only after it learnt the exit, so reading the counter when the
  container's init is reaped sees the final value.
- A fresh container gets a fresh cgroup (its path ends in the container id),
  so any count above zero belongs to this container.
"""

from __future__ import annotations

from dockyard.runtime.kernel.lean import jsonfast, leanos

CGROUP_ROOT = "/sys/fs/cgroup"


def oom_kills(text: str) -> int:
    """The ``oom_kill`` counter of a memory.oom_control / memory.events text; 0 when absent (pure)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def counter_files(cgroups_path: str, root: str = CGROUP_ROOT) -> list[str]:
    """Where the counter may live for an OCI ``linux.cgroupsPath`` (pure); v1 first, then v2."""
    rel = cgroups_path.strip("/")
    if not rel or ":" in rel or ".." in rel.split("/"):
        return []  # systemd-style paths are not used by the daemon
    return [leanos.path.join(root, "memory", rel, "memory.oom_control"), leanos.path.join(root, rel, "memory.events")]


def container_oom_killed(bundle: str, root: str = CGROUP_ROOT) -> bool:
    """True if the OOM killer killed anything in the cgroup of the container in ``bundle``."""
    try:
        with open(leanos.path.join(bundle, "config.json")) as f:
            path = jsonfast.loads(f.read()).get("linux", {}).get("cgroupsPath", "")
    except (OSError, ValueError, AttributeError):
        return False
    for name in counter_files(path if isinstance(path, str) else "", root):
        try:
            with open(name) as f:
                return oom_kills(f.read()) > 0
        except OSError:
            continue
    return False

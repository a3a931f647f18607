"""Whether the kernel's OOM killer killed a process of a container's cgroup.

Facts:
- cgroup v1: ``memory.oom_control`` of the container's memory cgroup has a
  line ``oom_kill N`` (kernel >= 4.13), the number of processes the OOM
  killer killed in that cgroup.  cgroup v2: ``memory.events`` has the same
  ``oom_kill N`` line.
- The runtime removes the container's cgroup at ``delete``, which the shim
  runs when it finishes the init's exit, right after reading the counter
  (shim/service.py ``_finish``): the read sees the final value, and it is
  the last chance to.
- A fresh container gets a fresh cgroup (its path ends in the container id),
  so any count above zero belongs to this container.
- Under the systemd cgroup driver (a ``slice:prefix:name`` path) the
  container's cgroup is a scope that systemd stops, removing its cgroup, as
  soon as its last process exits: reading the counter at the reap can find it
  gone.  So the shim also watches the v2 file while the container runs:
  memory.events wakes poll() with POLLPRI when a counter changes
  (cgroup-v2.rst), and the kill is counted while the killed process is still
  dying in its cgroup, before the cgroup can be empty.  The watch is read once
  per wakeup (the read re-arms POLLPRI); a removed cgroup reports POLLERR and
  its reads fail, which ends the watch.
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


def counter_files(cgroups_path: str, root: str = CGROUP_ROOT, container_id: str = "") -> list[str]:
    """Where the counter may live for an OCI ``linux.cgroupsPath`` (pure); v1 first, then v2.
    A systemd ``slice:prefix:name`` path is a scope's cgroup, on v2 only."""
    if ":" in cgroups_path:
        from dockyard.runtime.kernel.cgroupfs.systemd_path import parse
        from dockyard.runtime.kernel.errors import RuntimeFault

        try:
            return [root + parse(cgroups_path, container_id).path + "/memory.events"]
        except RuntimeFault:
            return []
    rel = cgroups_path.strip("/")
    if not rel or ".." in rel.split("/"):
        return []
    return [leanos.path.join(root, "memory", rel, "memory.oom_control"), leanos.path.join(root, rel, "memory.events")]


def _cgroups_path(bundle: str) -> str:
    try:
        with open(leanos.path.join(bundle, "config.json")) as f:
            path = jsonfast.loads(f.read()).get("linux", {}).get("cgroupsPath", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return path if isinstance(path, str) else ""


def open_events(bundle: str, container_id: str, root: str = CGROUP_ROOT) -> int:
    """An fd of the container's v2 memory.events to watch (module docstring), or -1."""
    for name in counter_files(_cgroups_path(bundle), root, container_id):
        if name.endswith("memory.events"):
            try:
                return leanos.open(name, leanos.O_RDONLY | leanos.O_CLOEXEC)
            except OSError:
                return -1
    return -1


def read_kills(fd: int) -> int:
    """The oom_kill counter through a watched fd (the read re-arms its POLLPRI); raises OSError once the cgroup is gone."""
    leanos.lseek(fd, 0, 0)  # SEEK_SET
    return oom_kills(leanos.read(fd, 4096).decode(errors="replace"))


def container_oom_killed(bundle: str, root: str = CGROUP_ROOT, container_id: str = "") -> bool:
    """True if the OOM killer killed anything in the cgroup of the container in ``bundle``."""
    for name in counter_files(_cgroups_path(bundle), root, container_id):
        try:
            with open(name) as f:
                return oom_kills(f.read()) > 0
        except OSError:
            continue
    return False

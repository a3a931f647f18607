"""Linux namespaces: which clone flag each OCI type is, the order in which
they are joined, and the id maps a parent writes for a child's user namespace.

Facts that decide the order:

* Namespaces joined by path come first and a user namespace last, whether
  joined or created.  The runtime is root of the host's user namespace, so
  it may enter any namespace; once inside a container's user namespace it
  could no longer enter one the host owns, such as a pod's network namespace
  made by the daemon before the pod's user namespace existed.  A namespace
  created after the user namespace is owned by it, which is what lets the
  container's root mount proc or sysfs there.  (A rootless runtime would need
  the opposite order for namespaces its user namespace owns; this one is
  always root.)
* setns/unshare of a pid or time namespace changes only the caller's
  *children*; that is why the init is forked once more after them.
* The mount namespace is joined after the others but before the user
  namespace: after setns into it, paths (including /proc/<pid>/ns/*) resolve
  inside the container, so all namespace fds are opened before any setns;
  and setns into a user namespace is refused to a chrooted process, which a
  process whose root is its mount namespace's root is not.
* uid_map/gid_map of a process can be written once, by a process with
  CAP_SETUID/CAP_SETGID in the parent user namespace; a privileged writer may
  leave setgroups allowed.
"""

from __future__ import annotations

from .kernel import syscalls
from .kernel.errors import SyscallError
from .kernel.lean import leanos
from .spec import IDMap, Namespace

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Sequence

CLONE_FLAGS: dict[str, int] = {
    "user": syscalls.CLONE_NEWUSER,
    "ipc": syscalls.CLONE_NEWIPC,
    "uts": syscalls.CLONE_NEWUTS,
    "network": syscalls.CLONE_NEWNET,
    "pid": syscalls.CLONE_NEWPID,
    "cgroup": syscalls.CLONE_NEWCGROUP,
    "time": syscalls.CLONE_NEWTIME,
    "mount": syscalls.CLONE_NEWNS,
}

# /proc/<pid>/ns/<name> for each OCI type
PROC_NAMES: dict[str, str] = {
    "user": "user", "ipc": "ipc", "uts": "uts", "network": "net",
    "pid": "pid", "cgroup": "cgroup", "time": "time", "mount": "mnt",
}

JOIN_ORDER: tuple[str, ...] = ("ipc", "uts", "network", "pid", "cgroup", "time", "mount", "user")


def new_flags(namespaces: Sequence[Namespace]) -> int:
    """The unshare flags for namespaces to create (those without a path),
    without the user namespace, which is created on its own first."""
    flags = 0
    for ns in namespaces:
        if not ns.path and ns.type != "user":
            flags |= CLONE_FLAGS[ns.type]
    return flags


def open_paths(joins: Sequence[tuple[str, str]]) -> list[tuple[str, int, str]]:
    """Open each namespace path (type, path) in join order; the caller closes
    the fds.  Returns (type, fd, path)."""
    order = {t: i for i, t in enumerate(JOIN_ORDER)}
    opened: list[tuple[str, int, str]] = []
    try:
        for kind, path in sorted(joins, key=lambda j: order[j[0]]):
            try:
                fd = leanos.open(path, leanos.O_RDONLY | leanos.O_CLOEXEC)
            except OSError as err:
                raise SyscallError(f"open {kind} namespace", path, err.errno or 0) from err
            opened.append((kind, fd, path))
    except BaseException:
        for _, fd, _ in opened:
            leanos.close(fd)
        raise
    return opened


def join(opened: Sequence[tuple[str, int, str]]) -> None:
    for kind, fd, path in opened:
        syscalls.setns(fd, CLONE_FLAGS[kind], path)


def format_idmap(maps: Sequence[IDMap]) -> str:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)


def userns_fd(uid_maps: Sequence[IDMap], gid_maps: Sequence[IDMap]) -> int:
    """An fd of a new user namespace with these maps, for MOUNT_ATTR_IDMAP.

    A namespace lives as long as something refers to it, so a child creates
    it, the parent writes its maps and opens /proc/<child>/ns/user, and the
    child goes: the fd alone keeps the namespace."""
    r, w = leanos.pipe()
    pid = leanos.fork()
    if pid == 0:
        try:
            leanos.close(w)
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            leanos.read(r, 1)  # wait until the parent has opened our namespace
        finally:
            leanos._exit(0)
    leanos.close(r)
    try:
        # the child may not have unshared yet: wait until its namespace differs
        own = leanos.stat("/proc/self/ns/user").st_ino
        while leanos.stat(f"/proc/{pid}/ns/user").st_ino == own:
            leanos.sched_yield()
        write_idmaps(pid, uid_maps, gid_maps)
        return leanos.open(f"/proc/{pid}/ns/user", leanos.O_RDONLY | leanos.O_CLOEXEC)
    finally:
        leanos.close(w)
        leanos.waitpid(pid, 0)


def write_idmaps(pid: int, uid_maps: Sequence[IDMap], gid_maps: Sequence[IDMap]) -> None:
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        if not maps:
            continue
        path = f"/proc/{pid}/{name}"
        try:
            with open(path, "w") as f:
                f.write(format_idmap(maps))
        except OSError as err:
            raise SyscallError("write id map", path, err.errno or 0) from err

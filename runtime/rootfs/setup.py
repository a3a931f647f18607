"""Building the container's filesystem view, inside its new mount namespace.

The init calls these in order: :func:`prepare` (propagation, the rootfs bind,
every spec mount, /dev), then hooks, then :func:`pivot`, then
:func:`finalize` (masked and read-only paths, read-only root).

Facts this code depends on:

* The new mount namespace starts as a copy of the host's, with the host's
  propagation.  "/" is made rslave (or what rootfsPropagation says) first, so
  nothing mounted here ever propagates back to the host, while host mounts
  still reach us.
* pivot_root needs the new root to be a mount point, hence the bind of the
  rootfs onto itself.  After ``pivot_root(".", ".")`` the old root sits on
  top at "/"; it is made rslave and detached, so its unmount does not reach
  the host either.
* Every destination is resolved inside the rootfs and opened with O_PATH one
  component at a time (``securejoin.open_in_root``); the mount then goes onto
  ``/proc/self/fd/N``.  A symlink in the image, or one swapped in by a
  container that shares a volume, can thus never redirect a mount to the host.
* A bind mount ignores every flag but MS_BIND|MS_REC; ro/nosuid/... need a
  second ``MS_REMOUNT|MS_BIND`` call, and that call *replaces* the per-mount
  flags, so the ones the mount already has (nosuid, nodev, noexec of /proc,
  say) are read back with statvfs and kept.  In a user namespace they are
  locked and dropping them would fail with EPERM anyway.
* sysfs can only be mounted with CAP_SYS_ADMIN over the user namespace that
  owns the network namespace.  A container that joins a pod's network
  namespace (every kubelet container) usually can, and gets a sysfs of its
  own, as runc does; only when the mount is refused (EPERM: a user namespace
  joining another's) is the host's /sys bound instead, and then as an
  rslave, so nothing mounted on it propagates out.
"""

from __future__ import annotations

import errno
import stat

from ..kernel import syscalls
from ..kernel.errors import InvalidSpec, SyscallError
from ..kernel.lean import leanos
from ..kernel.lean.records import Record, field, replace
from ..kernel.securejoin import open_in_root
from ..spec import IDMap, Mount
from .devices import DEFAULT_DEVICES, DEFAULT_SYMLINKS, Device, mknod_mode
from .mountopts import MountOptions, parse_mount_options

_PROPAGATION = {
    "": syscalls.MS_REC | syscalls.MS_SLAVE,
    "private": syscalls.MS_PRIVATE, "rprivate": syscalls.MS_REC | syscalls.MS_PRIVATE,
    "slave": syscalls.MS_SLAVE, "rslave": syscalls.MS_REC | syscalls.MS_SLAVE,
    "shared": syscalls.MS_SHARED, "rshared": syscalls.MS_REC | syscalls.MS_SHARED,
    "unbindable": syscalls.MS_UNBINDABLE, "runbindable": syscalls.MS_REC | syscalls.MS_UNBINDABLE,
}

# statvfs f_flag bits that mean the same as the MS_* flag of the same value
_KEEP_ON_REMOUNT = (syscalls.MS_RDONLY | syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
                    | syscalls.MS_NOATIME | syscalls.MS_NODIRATIME)
_ST_RELATIME = 4096
class PlannedMount(Record):
    mount: Mount
    opts: MountOptions
    field: str
class RootfsPlan(Record):
    rootfs: str
    readonly: bool
    propagation: str
    mounts: tuple[PlannedMount, ...]
    devices: tuple[Device, ...]
    create_default_devices: bool
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]
    no_pivot: bool
    private_netns: bool
    private_cgroupns: bool
    cgroup_v1_mounts: tuple[tuple[str, str], ...]   # (host mountpoint, options) per v1 hierarchy
    cgroup_v2_mount: str                             # host cgroup2 mountpoint, "" if none
    cgroup_paths: dict[str, str]                     # controller -> host dir of this container
    idmapped: dict[int, int] = field(default_factory=dict)  # mount index -> detached idmapped tree fd


def plan_mounts(mounts: tuple[Mount, ...]) -> tuple[PlannedMount, ...]:
    """Pure: parse every mount's options up front, so a bad option fails
    ``create`` before anything is touched."""
    return tuple(PlannedMount(m, parse_mount_options(m.options, f"mounts[{i}].options"), f"mounts[{i}]")
                 for i, m in enumerate(mounts))


def wants_idmap(pm: PlannedMount) -> bool:
    return bool(pm.mount.uid_mappings or pm.mount.gid_mappings or pm.opts.idmap)


def make_idmapped_trees(mounts: tuple[PlannedMount, ...], container_uids: tuple[IDMap, ...],
                        container_gids: tuple[IDMap, ...]) -> dict[int, int]:
    """Detached, idmapped copies of the bind sources that ask for it.

    Facts: MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN over the user namespace that
    owns the source mount, that is, the host's; the container's init has
    given that up by the time it mounts.  So the runtime, still on the host
    side, clones each source with open_tree(OPEN_TREE_CLONE), attaches a user
    namespace carrying the mount's maps (the container's, when the mount
    names none) and hands the detached tree to the init, which only has to
    move_mount it into place.  Only bind mounts can be idmapped."""
    from .. import namespaces

    out: dict[int, int] = {}
    userns: dict[tuple[tuple[IDMap, ...], tuple[IDMap, ...]], int] = {}
    try:
        for i, pm in enumerate(mounts):
            if not wants_idmap(pm):
                continue
            if not (pm.opts.is_bind or pm.mount.type == "bind"):
                raise InvalidSpec(f"{pm.field}.type", "only bind mounts can be idmapped")
            maps = (pm.mount.uid_mappings or container_uids, pm.mount.gid_mappings or container_gids)
            if not maps[0] or not maps[1]:
                raise InvalidSpec(f"{pm.field}.uidMappings",
                                  "an idmapped mount needs uid and gid mappings (its own or the container's)")
            if maps not in userns:
                userns[maps] = namespaces.userns_fd(*maps)
            recursive = pm.opts.recursive_bind or pm.opts.recursive_idmap
            flags = syscalls.OPEN_TREE_CLONE | syscalls.OPEN_TREE_CLOEXEC | (syscalls.AT_RECURSIVE if recursive else 0)
            tree = syscalls.open_tree(syscalls.AT_FDCWD, pm.mount.source, flags)
            out[i] = tree
            syscalls.mount_setattr(tree, "", syscalls.AT_EMPTY_PATH | (syscalls.AT_RECURSIVE if recursive else 0),
                                   syscalls.MOUNT_ATTR_IDMAP, userns_fd=userns[maps])
    except BaseException:
        for fd in out.values():
            leanos.close(fd)
        raise
    finally:
        for fd in userns.values():
            leanos.close(fd)
    return out


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _current_flags(path: str) -> int:
    try:
        st = leanos.statvfs(path)
    except OSError:
        return 0
    flags = st.f_flag & _KEEP_ON_REMOUNT
    if st.f_flag & _ST_RELATIME:
        flags |= syscalls.MS_RELATIME
    return flags


def remount_bind(path: str, flags: int, clear: int = 0) -> None:
    """Apply per-mount flags to a bind mount, keeping the ones it has."""
    syscalls.mount(None, path, None, syscalls.MS_REMOUNT | syscalls.MS_BIND | ((_current_flags(path) | flags) & ~clear))


def _reopen(fd: int, rootfs: str, destination: str) -> int:
    """After a mount onto /proc/self/fd/N, that fd still names the directory
    *under* the new mount; open the destination again to reach the mount."""
    leanos.close(fd)
    return open_in_root(rootfs, destination)


def _apply_after(target: str, opts: MountOptions) -> None:
    for prop in opts.propagation:
        syscalls.mount(None, target, None, prop)
    if opts.rec_attr_set or opts.rec_attr_clr:
        syscalls.mount_setattr(syscalls.AT_FDCWD, target, syscalls.AT_RECURSIVE, opts.rec_attr_set, opts.rec_attr_clr)


def _is_dir_source(m: Mount) -> bool:
    try:
        return stat.S_ISDIR(leanos.stat(m.source).st_mode)
    except OSError:
        return True


def _mount_bind(pm: PlannedMount, rootfs: str, tree_fd: int = -1) -> None:
    m, opts = pm.mount, pm.opts
    if tree_fd < 0 and not leanos.path.exists(m.source):
        raise SyscallError("bind mount", m.source, errno.ENOENT, f"source {m.source} does not exist")
    # An idmapped tree is the source itself, opened on the host side: its type
    # comes from it.  The source's path may not even be reachable from here
    # (the init is in the container's user namespace: a 0700 directory on the
    # way gives EACCES), and guessing "directory" then made a file's mount
    # point a directory, and move_mount failed with EINVAL.
    is_dir = stat.S_ISDIR(leanos.fstat(tree_fd).st_mode) if tree_fd >= 0 else _is_dir_source(m)
    fd = open_in_root(rootfs, m.destination, create="dir" if is_dir else "file")
    try:
        if tree_fd >= 0:
            # an idmapped tree the runtime made on the host side (see
            # make_idmapped_trees): attach it here
            syscalls.move_mount(tree_fd, "", fd, "",
                                syscalls.MOVE_MOUNT_F_EMPTY_PATH | syscalls.MOVE_MOUNT_T_EMPTY_PATH)
        else:
            syscalls.mount(m.source, _fd_path(fd), None,
                           syscalls.MS_BIND | (syscalls.MS_REC if opts.recursive_bind else 0))
        fd = _reopen(fd, rootfs, m.destination)
        target = _fd_path(fd)
        extra = opts.flags & ~(syscalls.MS_BIND | syscalls.MS_REC)
        if extra or opts.clear:
            remount_bind(target, extra, opts.clear)
        _apply_after(target, opts)
    finally:
        leanos.close(fd)


def mount_point_of(path: str, mountinfo: str | None = None) -> str:
    """The mount point of the mount that holds ``path`` (longest prefix)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    best = "/"
    for line in mountinfo.splitlines():
        point = line.split(" ", 5)[4]
        if "\\" in point:  # mountinfo escapes space, tab, newline and backslash as \ooo
            point = point.encode().decode("unicode_escape")
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best = point
    return best


def _cgroup_source(sources: dict[str, int], controller: str) -> str:
    fd = sources.get(controller)
    return "" if fd is None else _fd_path(fd)


def open_cgroup_dirs(paths: dict[str, str]) -> dict[str, int]:
    """O_PATH fds of the container's cgroup dirs on the host, opened by
    prepare() before its first mount.  The binds use these, not the paths:
    with a shared rootfs propagation, the tmpfs mounted on the container's
    /sys/fs/cgroup can propagate onto the host path in this namespace and
    hide it (seen with a bind of the host's /sys when there is no private
    network namespace).  Opened in the init's own mount namespace: a bind
    from a mount of another namespace is refused with EINVAL."""
    fds: dict[str, int] = {}
    try:
        for controller, path in paths.items():
            try:
                fds[controller] = leanos.open(path, leanos.O_PATH | leanos.O_DIRECTORY | leanos.O_CLOEXEC)
            except OSError as err:
                raise SyscallError("open cgroup dir", path, err.errno or 0) from err
    except BaseException:
        for fd in fds.values():
            leanos.close(fd)
        raise
    return fds


def _mount_cgroup(pm: PlannedMount, plan: RootfsPlan, sources: dict[str, int]) -> None:
    """A cgroup mount: with a private cgroup namespace, fresh cgroupfs mounts
    show the container's cgroup as their root; without one, the container's
    own directories are bind-mounted from the host."""
    m, opts = pm.mount, pm.opts
    ro = opts.flags & syscalls.MS_RDONLY
    base_flags = ((opts.flags & ~(syscalls.MS_BIND | syscalls.MS_REC | syscalls.MS_RDONLY))
                  | syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC)
    fd = open_in_root(plan.rootfs, m.destination, create="dir")
    try:
        top = _fd_path(fd)
        if plan.cgroup_v1_mounts:
            syscalls.mount("tmpfs", top, "tmpfs", base_flags, "mode=755")
            fd = _reopen(fd, plan.rootfs, m.destination)
            top = _fd_path(fd)
            for mountpoint, options in plan.cgroup_v1_mounts:
                name = leanos.path.basename(mountpoint)
                sub = leanos.path.join(top, name)
                leanos.makedirs(sub, exist_ok=True)
                if plan.private_cgroupns:
                    syscalls.mount("cgroup", sub, "cgroup", base_flags | ro, options)
                else:
                    ctl = options.split(",")[0].removeprefix("name=")
                    host = _cgroup_source(sources, ctl) or _cgroup_source(sources, options)
                    if host:
                        syscalls.mount(host, sub, None, syscalls.MS_BIND | syscalls.MS_REC)
                        remount_bind(sub, base_flags | ro)
                # co-mounted controllers ("cpu,cpuacct") are also reachable by each name
                for part in options.split(","):
                    if part != name and "=" not in part and not leanos.path.lexists(leanos.path.join(top, part)):
                        leanos.symlink(name, leanos.path.join(top, part))
            if plan.cgroup_v2_mount and plan.private_cgroupns:
                sub = leanos.path.join(top, leanos.path.basename(plan.cgroup_v2_mount))
                leanos.makedirs(sub, exist_ok=True)
                syscalls.mount("cgroup2", sub, "cgroup2", base_flags | ro)
            if ro:
                syscalls.mount(None, top, None, syscalls.MS_REMOUNT | base_flags | syscalls.MS_RDONLY, "mode=755")
        elif plan.private_cgroupns:
            try:
                syscalls.mount("cgroup2", top, "cgroup2", base_flags | ro)
            except SyscallError as err:
                # Without a private network namespace /sys is the host's,
                # bound with its submounts (_mount_one), so the host's cgroup2
                # mount is already here, and the kernel refuses to mount a
                # superblock on the root of a mount of itself (EBUSY).  Detach
                # that copy (this mount namespace's only) and mount again.
                if err.errno != errno.EBUSY:
                    raise
                try:
                    syscalls.umount2(top, syscalls.MNT_DETACH)
                except SyscallError as umount_err:
                    # In a user namespace the host's submounts are locked to
                    # their parent (EINVAL; seen when a hostUsers:false pod's
                    # /sys is the host's, bound because sysfs refused a fresh
                    # mount): cover the copy with a tmpfs, a different
                    # superblock the cgroup2 mount may sit on.
                    if umount_err.errno != errno.EINVAL:
                        raise
                    syscalls.mount("tmpfs", top, "tmpfs", base_flags, "mode=755")
                fd = _reopen(fd, plan.rootfs, m.destination)
                top = _fd_path(fd)
                syscalls.mount("cgroup2", top, "cgroup2", base_flags | ro)
        else:
            syscalls.mount(_cgroup_source(sources, ""), top, None, syscalls.MS_BIND | syscalls.MS_REC)
            fd = _reopen(fd, plan.rootfs, m.destination)
            top = _fd_path(fd)
            remount_bind(top, base_flags | ro)
        fd = _reopen(fd, plan.rootfs, m.destination)
        _apply_after(_fd_path(fd), opts)
    finally:
        leanos.close(fd)


def _mount_one(index: int, pm: PlannedMount, plan: RootfsPlan, sources: dict[str, int]) -> None:
    m, opts = pm.mount, pm.opts
    if opts.is_bind or m.type == "bind":
        _mount_bind(pm, plan.rootfs, plan.idmapped.get(index, -1))
        return
    if m.type == "cgroup" or m.type == "cgroup2":
        _mount_cgroup(pm, plan, sources)
        return
    if m.type == "sysfs" and not plan.private_netns:
        # A network namespace joined by path (a pod's), or the host's: a fresh
        # sysfs shows the joined namespace's devices and none of the host's
        # submounts, which a checkpoint could not dump (criu: "unreachable
        # sharing" for the host's /sys/fs/fuse/connections).
        try:
            _mount_new(pm, plan.rootfs)
            return
        except SyscallError as err:
            if err.errno != errno.EPERM:
                raise
        # sysfs belongs to the network namespace's owner, and this one is not
        # ours (a user namespace that joined another's): bind the host's, as
        # a slave unless the spec says otherwise. A bind of a shared mount is
        # a peer of it, so with rootfsPropagation rshared the tmpfs and
        # cgroup binds mounted on its fs/cgroup would propagate onto the
        # host's /sys/fs/cgroup and hide the node's cgroups.
        host_sys = Mount(m.destination, "bind", "/sys", m.options)
        propagation = opts.propagation or (syscalls.MS_REC | syscalls.MS_SLAVE,)
        bind_opts = replace(opts, is_bind=True, recursive_bind=True, propagation=propagation)
        _mount_bind(PlannedMount(host_sys, bind_opts, pm.field), plan.rootfs)
        return
    _mount_new(pm, plan.rootfs)


def _mount_new(pm: PlannedMount, rootfs: str) -> None:
    """A new filesystem instance (proc, sysfs, tmpfs, mqueue, ...) on the destination."""
    m, opts = pm.mount, pm.opts
    fd = open_in_root(rootfs, m.destination, create="dir")
    try:
        syscalls.mount(m.source or m.type, _fd_path(fd), m.type, opts.flags, opts.data or None)
        if opts.propagation or opts.rec_attr_set or opts.rec_attr_clr:
            fd = _reopen(fd, rootfs, m.destination)
            _apply_after(_fd_path(fd), opts)
    finally:
        leanos.close(fd)


def _create_device(rootfs: str, dev: Device) -> None:
    fd = open_in_root(rootfs, leanos.path.dirname(dev.path), create="dir")
    try:
        parent = _fd_path(fd)
        path = leanos.path.join(parent, leanos.path.basename(dev.path))
        try:
            leanos.unlink(path)
        except FileNotFoundError:
            pass
        try:
            leanos.mknod(path, mknod_mode(dev), leanos.makedev(dev.major, dev.minor))
            leanos.chown(path, dev.uid, dev.gid)
            leanos.chmod(path, dev.file_mode & 0o7777)
        except PermissionError:
            # In a user namespace mknod is not allowed: bind the host's node.
            with open(path, "w"):
                pass
            syscalls.mount(dev.path, path, None, syscalls.MS_BIND)
        except OSError as err:
            raise SyscallError("create device", dev.path, err.errno or 0) from err
    finally:
        leanos.close(fd)


def _setup_dev(plan: RootfsPlan) -> None:
    devices = list(plan.devices)
    if plan.create_default_devices:
        explicit = {d.path for d in devices}
        devices = [d for d in DEFAULT_DEVICES if d.path not in explicit] + devices
        for link, target in DEFAULT_SYMLINKS:
            fd = open_in_root(plan.rootfs, leanos.path.dirname(link), create="dir")
            try:
                path = leanos.path.join(_fd_path(fd), leanos.path.basename(link))
                if not leanos.path.lexists(path):
                    leanos.symlink(target, path)
            finally:
                leanos.close(fd)
    for dev in devices:
        _create_device(plan.rootfs, dev)


def prepare(plan: RootfsPlan) -> None:
    sources = {} if plan.private_cgroupns else open_cgroup_dirs(plan.cgroup_paths)
    try:
        flags = _PROPAGATION[plan.propagation]
        syscalls.mount(None, "/", None, flags)
        # pivot_root refuses a shared new root, a shared parent of it, or a
        # shared current root.  Making just those mounts private (not their
        # children) keeps every other mount's sharing with the host, which is
        # what a bidirectional volume needs, and keeps the rootfs bind and
        # what is mounted in it from propagating back out (runc does the same).
        if flags & syscalls.MS_SHARED:
            syscalls.mount(None, "/", None, syscalls.MS_PRIVATE)
        syscalls.mount(None, mount_point_of(plan.rootfs), None, syscalls.MS_PRIVATE)
        syscalls.mount(plan.rootfs, plan.rootfs, None, syscalls.MS_BIND | syscalls.MS_REC)
        for index, pm in enumerate(plan.mounts):
            try:
                _mount_one(index, pm, plan, sources)
            except SyscallError as err:
                # name the spec's field and destination, not /proc/self/fd/N
                raise SyscallError(err.op, f"{pm.field} ({pm.mount.destination})", err.errno, err.detail) from err
    finally:
        for fd in sources.values():
            leanos.close(fd)
    _setup_dev(plan)


def precreate_targets(plan: RootfsPlan, cwd: str) -> None:
    """Create every mount destination (and the cwd) in the rootfs, from the
    host side.

    Facts: a container with a user namespace mounts as root of that
    namespace, which is an unprivileged uid on the host; in an image whose
    files host root owns it may not create /etc/hostname or /dev/shm.  Made
    here first, by the runtime still outside the namespace, the init only has
    to mount on them (mounting needs no write access to the target).  Only a
    target's top is ever created by open_in_root inside the rootfs, so this
    cannot reach outside it."""
    for pm in plan.mounts:
        m = pm.mount
        if m.type in ("cgroup", "cgroup2"):
            continue
        is_bind = pm.opts.is_bind or m.type == "bind"
        leanos.close(open_in_root(plan.rootfs, m.destination,
                                  create="file" if is_bind and not _is_dir_source(m) else "dir"))
    ensure_dir(plan, cwd)


def ensure_dir(plan: RootfsPlan, path: str) -> None:
    """Create ``path`` (inside the rootfs) if it is missing; an existing
    non-directory is left for chdir to refuse."""
    try:
        leanos.close(open_in_root(plan.rootfs, path, create="dir"))
    except SyscallError as err:
        if err.errno != errno.ENOTDIR and err.errno != errno.EEXIST:
            raise


def pivot(plan: RootfsPlan) -> None:
    leanos.chdir(plan.rootfs)
    if plan.no_pivot:
        syscalls.mount(plan.rootfs, "/", None, syscalls.MS_MOVE)
        leanos.chroot(".")
    else:
        old_root = leanos.open("/", leanos.O_DIRECTORY | leanos.O_RDONLY | leanos.O_CLOEXEC)
        try:
            syscalls.pivot_root(".", ".")
            # The cwd is not promised to be either root after pivot_root: step
            # onto the old one, so that the rslave below (which keeps our
            # unmount from reaching the host) covers only it, and not the new
            # root's mounts, whose sharing (a bidirectional volume) must stay.
            leanos.fchdir(old_root)
            syscalls.mount(None, ".", None, syscalls.MS_REC | syscalls.MS_SLAVE)
            syscalls.umount2(".", syscalls.MNT_DETACH)
        finally:
            leanos.close(old_root)
    leanos.chdir("/")


def _mask(path: str) -> None:
    try:
        st = leanos.stat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise SyscallError("mask path", path, err.errno or 0) from err
    if stat.S_ISDIR(st.st_mode):
        syscalls.mount("tmpfs", path, "tmpfs", syscalls.MS_RDONLY, "size=0k")
    else:
        syscalls.mount("/dev/null", path, None, syscalls.MS_BIND)


def _make_readonly(path: str) -> None:
    try:
        syscalls.mount(path, path, None, syscalls.MS_BIND | syscalls.MS_REC)
    except SyscallError as err:
        if err.errno == errno.ENOENT:
            return
        raise
    remount_bind(path, syscalls.MS_RDONLY | syscalls.MS_REC)


def finalize(plan: RootfsPlan) -> None:
    for path in plan.readonly_paths:
        _make_readonly(path)
    for path in plan.masked_paths:
        _mask(path)
    if plan.readonly:
        remount_bind("/", syscalls.MS_RDONLY)

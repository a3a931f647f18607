"""Making processes inside containers: ``create`` (the init) and ``exec``.

Kept apart from the other verbs (container.py) because it is the only path
that needs the init sequence, the mount and privilege planning and the
seccomp compiler: ``start``, ``kill``, ``state`` and ``delete`` do not pay
for importing them.

``create`` rolls back with an Undo (runtime/undo.py): each resource it takes (state dir,
exec fifo, cgroup, child processes) pushes its undo, and ``pop_all`` runs
only when the init has reported ready and the state is on disk.  So a create
that fails at any step leaves no state dir, cgroup, mount or process.
"""

from __future__ import annotations

import errno as _errno
import time

from . import cgroups, hooks, namespaces, sync
from .container import load, manager_for
from .init import InitPlan, stage1
from .kernel import syscalls
from .kernel.capabilities import last_cap
from .kernel.errors import InvalidSpec, NotFound, RuntimeFault, SyscallError
from .kernel.lean import jsonfast, leanos, leansignal
from .kernel.lean.records import replace
from .plan import plan_process
from .spec import Process, Spec, parse_spec
from .state import ContainerState, Store, process_start_time, write_atomic
from .status import require
from .sync import Channel
from .undo import Undo

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

_PERSONALITY = {"LINUX": 0x0000, "LINUX32": 0x0008}


def _now() -> str:
    t = time.time_ns()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1_000_000_000))
    return f"{stamp}.{t % 1_000_000_000:09d}Z"


def load_bundle(bundle: str) -> tuple[dict[str, Any], Spec]:
    path = leanos.path.join(bundle, "config.json")
    try:
        raw = jsonfast.load_file(path)
    except FileNotFoundError as err:
        raise NotFound("read bundle config", path, "config.json does not exist") from err
    except ValueError as err:
        raise InvalidSpec("config.json", f"is not valid JSON: {err}") from err
    return raw, parse_spec(raw)


def _rootfs_path(spec: Spec, bundle: str) -> str:
    path = spec.root.path if leanos.path.isabs(spec.root.path) else leanos.path.join(bundle, spec.root.path)
    path = leanos.path.realpath(path)
    if not leanos.path.isdir(path):
        raise InvalidSpec("root.path", f"rootfs {path} does not exist or is not a directory")
    return path


def _write_pid_file(path: str, pid: int) -> None:
    # atomically, like runc: a reader never sees an empty pid file
    write_atomic(leanos.path.abspath(path), str(pid).encode(), 0o644)


def _connect_console(path: str | None) -> int:
    if not path:
        return -1
    from .kernel.lean import leansocket

    sock = leansocket.unix_stream()
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise SyscallError("connect console socket", path, err.errno or 0) from err
    return int(sock.detach())


def _kill_and_reap(pid: int) -> None:
    try:
        leanos.kill(pid, leansignal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        leanos.waitpid(pid, 0)
    except ChildProcessError:
        pass


# clone3 refused as a whole (older kernel, a seccomp filter of an outer
# runtime): fork, then place the child by writing its pid.
_NO_CLONE3 = frozenset({_errno.ENOSYS, _errno.EPERM, _errno.E2BIG, _errno.EINVAL})


def _fork_stage1(cgroup2: str | None) -> tuple[int, bool]:
    """Fork stage 1; return its pid (0 in the child) and whether it was born
    in the cgroup2 dir ``cgroup2``."""
    if cgroup2 is not None:
        try:
            fd = leanos.open(cgroup2, leanos.O_RDONLY | leanos.O_DIRECTORY | leanos.O_CLOEXEC)
        except OSError as err:
            raise RuntimeFault("open cgroup", cgroup2, "", err.errno or 0) from err
        try:
            return syscalls.fork_into_cgroup(fd), True
        except SyscallError as err:
            if err.errno not in _NO_CLONE3:
                raise
        finally:
            leanos.close(fd)
    return leanos.fork(), False


def _spawn(plan: InitPlan, manager: cgroups.Manager, resources: dict[str, Any] | None,
           uid_maps: Any, gid_maps: Any, stack: Undo) -> tuple[Channel, int]:
    """Fork stage 1, see it into the cgroup, answer its id-map request and
    return the channel and the stage-2 pid.

    The placement avoids the kernel's RCU grace period wherever it can
    (cgroups/v1/manager.py, join_self, and syscalls.fork_into_cgroup have
    the facts): stage 1 is born in its cgroup2 dir and moves itself into the
    v1 hierarchies first thing, so stage 2, its child, starts fully placed.
    Where clone3 is refused, this process writes stage 2's pid into the
    cgroup2 side while stage 2 sets up in parallel, and stage 2 waits for
    "placed" before it runs anything of the container's; with a new cgroup
    namespace, which is rooted where its creator stands when it unshares,
    stage 1 must then be fully placed before it starts: the slow way.
    Limits are written before any process joins: a memory limit is then
    never below what the process already uses."""
    if plan.process.terminal:
        from . import console  # noqa: F401 (for stage 2: see the imports at the top of init.stage2)
    if plan.rootfs is not None:
        from .rootfs import setup  # noqa: F401 (likewise)
    if resources is not None:
        manager.apply(resources)
    parent, child = Channel.pair()
    stack.callback(parent.close)
    cgroup2 = manager.cgroup2_dir()
    pid1, born = _fork_stage1(cgroup2)
    # No cgroup2 dir yet is a v1 host (stage 1 places itself: join_self), or
    # the systemd driver's scope, which its manager starts with stage 1's pid
    # before stage 1 goes on: the scope's directory does not exist until then,
    # and stage 2 opens it early (rootfs.prepare), so it must be born inside.
    by_parent = getattr(manager, "placed_by_parent", False)
    self_placed = born or (cgroup2 is None and not by_parent)
    late = not self_placed and not by_parent and not (plan.unshare_flags & namespaces.CLONE_FLAGS["cgroup"])
    if pid1 == 0:
        parent.close()
        stage1(replace(plan, late_placement=late),
               child, manager.join_self if self_placed or late else None)  # never returns
    child.close()
    stack.callback(_kill_and_reap, pid1)
    if not self_placed and not late:
        manager.add(pid1)
    parent.send(sync.GO)
    if plan.new_user:
        parent.recv(sync.IDMAP)
        namespaces.write_idmaps(pid1, uid_maps, gid_maps)
        parent.send(sync.IDMAP_DONE)
    pid2 = int(parent.recv(sync.PID)["pid"])
    stack.callback(_kill_and_reap, pid2)
    leanos.waitpid(pid1, 0)
    parent.send(sync.CONTINUE)
    if late:
        try:
            manager.add_rest(pid2)
            parent.send(sync.PLACED)
        except (OSError, RuntimeFault):
            # Stage 2 runs meanwhile and may have failed and exited already
            # (EPIPE on the channel, ESRCH from cgroup.procs): its own report,
            # waiting on the channel, is the error worth raising.
            parent.recv(sync.READY)
            raise
    return parent, pid2


def create(store: Store, container_id: str, bundle: str, *, pid_file: str | None = None,
           console_socket: str | None = None, no_pivot: bool = False, preserve_fds: int = 0,
           systemd_cgroup: bool = False) -> ContainerState:
    from .rootfs.devices import parse_devices
    from .rootfs.setup import (
        RootfsPlan,
        make_idmapped_trees,
        plan_mounts,
        precreate_targets,
    )

    bundle = leanos.path.abspath(bundle)
    raw, spec = load_bundle(bundle)
    if spec.process is None:
        raise InvalidSpec("process", "is required to create a container")
    rootfs = _rootfs_path(spec, bundle)
    lx = spec.linux
    mount_ns = lx.namespace("mount")
    if mount_ns is None or mount_ns.path:
        raise InvalidSpec("linux.namespaces", "a new mount namespace is required (type 'mount' without a path)")
    cap_last = last_cap()
    pplan = plan_process(spec.process, spec, cap_last)
    _require_apparmor_profile(pplan.apparmor_profile)
    devices = parse_devices(list(lx.devices))
    dev_is_tmpfs = any(m.destination == "/dev" and m.type != "bind" and "bind" not in m.options
                       and "rbind" not in m.options for m in spec.mounts)
    mountinfo = cgroups.read_mountinfo()  # once, for the manager, the layout and the cgroup mounts
    manager = manager_for(lx.cgroups_path, container_id, mountinfo, systemd=systemd_cgroup)
    mode = cgroups.detect(mountinfo_text=mountinfo)
    v1 = tuple(cgroups.v1_mounts(mountinfo)) if mode != cgroups.Mode.V2 else ()
    v2_mount = "/sys/fs/cgroup/unified" if mode == cgroups.Mode.HYBRID else ""
    rplan = RootfsPlan(
        rootfs=rootfs,
        readonly=spec.root.readonly,
        propagation=lx.rootfs_propagation,
        mounts=plan_mounts(spec.mounts),
        devices=devices,
        create_default_devices=dev_is_tmpfs,
        masked_paths=lx.masked_paths,
        readonly_paths=lx.readonly_paths,
        no_pivot=no_pivot,
        private_netns=bool((ns := lx.namespace("network")) and not ns.path),
        private_cgroupns=bool((ns := lx.namespace("cgroup")) and not ns.path),
        cgroup_v1_mounts=v1,
        cgroup_v2_mount=v2_mount,
        cgroup_paths=manager.paths(),
    )
    userns = lx.namespace("user")
    joins = [(ns.type, ns.path) for ns in lx.namespaces if ns.path]
    pid_ns = lx.namespace("pid")

    with Undo() as stack:
        store.create_dir(container_id)
        stack.callback(store.remove_dir, container_id)
        # Before the fork, not after: from the fork until the init execs, every
        # page this process writes is copied first (a fault each), and the
        # config needs no pid.  Readers go by state.json, written last.
        store.save_config(container_id, raw)
        fifo = store.fifo(container_id)
        leanos.mkfifo(fifo, 0o622)
        leanos.chmod(fifo, 0o622)  # past the umask: a non-root init must be able to open it for writing
        fifo_fd = leanos.open(fifo, leanos.O_PATH | leanos.O_CLOEXEC)
        stack.callback(leanos.close, fifo_fd)
        console_fd = _connect_console(console_socket)
        if console_fd >= 0:
            stack.callback(leanos.close, console_fd)
        opened = namespaces.open_paths(joins)
        for _, fd, _ in opened:
            stack.callback(leanos.close, fd)
        if userns and not userns.path:
            precreate_targets(rplan, spec.process.cwd)
        trees = make_idmapped_trees(rplan.mounts, lx.uid_mappings, lx.gid_mappings)
        for fd in trees.values():
            stack.callback(leanos.close, fd)
        manager.create()
        stack.callback(manager.destroy)
        plan = InitPlan(
            process=pplan,
            rootfs=replace(rplan, idmapped=trees),
            joins=tuple(opened),
            new_user=bool(userns and not userns.path),
            unshare_flags=namespaces.new_flags(lx.namespaces),
            time_offsets=lx.time_offsets,
            hostname=spec.hostname,
            domainname=spec.domainname,
            sysctl=lx.sysctl,
            personality=_PERSONALITY[lx.personality["domain"]] if lx.personality else None,
            create_container_hooks=spec.hooks.create_container,
            start_container_hooks=spec.hooks.start_container,
            preserve_fds=preserve_fds,
            fifo_fd=fifo_fd,
            console_fd=console_fd,
            set_sid=True,
            hooks_handshake=bool(spec.hooks.prestart or spec.hooks.create_runtime or spec.hooks.create_container
                                 or spec.hooks.start_container),
        )
        chan, pid = _spawn(plan, manager, cgroups.with_default_devices(lx.resources, list(lx.devices)),
                           lx.uid_mappings, lx.gid_mappings, stack)
        if plan.hooks_handshake:
            chan.recv(sync.HOOKS)
            hook_state = hooks.hook_state(spec, container_id, "creating", pid, bundle)
            hooks.run_hooks("prestart", spec.hooks.prestart, hook_state)
            hooks.run_hooks("createRuntime", spec.hooks.create_runtime, hook_state)
            chan.send(sync.HOOKS_DONE, state=hook_state)
        chan.recv(sync.READY)
        started = process_start_time(pid)
        if started is None:
            raise RuntimeFault("create container", container_id, "the init exited during setup")
        state = ContainerState(
            id=container_id, bundle=bundle, rootfs=rootfs, pid=pid, pid_start=started[0], created=_now(),
            cgroup_path=lx.cgroups_path, oci_version=spec.oci_version, annotations=spec.annotations,
            private_pidns=bool(pid_ns and not pid_ns.path), cgroups=manager.describe(),
        )
        store.save(state)
        if pid_file:
            _write_pid_file(pid_file, pid)
        stack.pop_all()
    chan.close()
    for fd in trees.values():
        leanos.close(fd)
    leanos.close(fifo_fd)
    if console_fd >= 0:
        leanos.close(console_fd)
    return state


def _require_apparmor_profile(name: str) -> None:
    """A profile the process asks for must be loaded: some kernels let an
    unconfined process ask for an unknown one and then run it unconfined
    (kernel/apparmor.py).  Checked here, in the runtime's own mount
    namespace: the init, past pivot_root, no longer sees securityfs."""
    if not name or name == "unconfined":
        return
    from .kernel import apparmor

    if not apparmor.enabled():
        return  # the init says so, naming the profile (privileges.check_lsm)
    loaded = apparmor.loaded_profiles()
    if loaded is not None and name not in loaded:
        raise InvalidSpec("process.apparmorProfile", f"AppArmor profile {name!r} is not loaded")


def _ns_fds(pid: int, spec: Spec) -> list[tuple[str, int, str]]:
    """The init's namespaces, for exec to join: every type the container
    has, whether created or joined by path."""
    joins = [(ns.type, f"/proc/{pid}/ns/{namespaces.PROC_NAMES[ns.type]}") for ns in spec.linux.namespaces]
    return namespaces.open_paths(joins)


def exec_process(store: Store, container_id: str, process: Process, *, detach: bool, pid_file: str | None,
                 console_socket: str | None, preserve_fds: int = 0) -> int:
    """Start a process in a running container.  Returns its pid."""
    c = load(store, container_id)
    require("exec", c.status, container_id)
    spec = parse_spec(store.load_config(container_id))
    pplan = plan_process(process, spec, last_cap())
    _require_apparmor_profile(pplan.apparmor_profile)
    # Before touching the container: a process in it must never be able to
    # ptrace us or open our /proc files (CVE-2019-5736); the children that
    # enter the container inherit this until they exec.
    syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)
    with Undo() as stack:
        opened = _ns_fds(c.state.pid, spec)
        for _, fd, _ in opened:
            stack.callback(leanos.close, fd)
        console_fd = _connect_console(console_socket)
        if console_fd >= 0:
            stack.callback(leanos.close, console_fd)
        plan = InitPlan(
            process=pplan, rootfs=None, joins=tuple(opened), new_user=False, unshare_flags=0, time_offsets={},
            hostname="", domainname="", sysctl={}, personality=None, create_container_hooks=(),
            start_container_hooks=(), preserve_fds=preserve_fds, fifo_fd=-1, console_fd=console_fd,
            set_sid=process.terminal,
        )
        manager = c.manager
        chan, pid = _spawn(plan, manager, None, (), (), stack)
        chan.recv(sync.READY, what="exec process")
        chan.wait_exec()
        if pid_file:
            _write_pid_file(pid_file, pid)
        stack.pop_all()
    chan.close()
    for _, fd, _ in opened:
        leanos.close(fd)
    if console_fd >= 0:
        leanos.close(console_fd)
    return pid


def default_exec_process(store: Store, container_id: str) -> Process:
    spec = parse_spec(store.load_config(container_id))
    if spec.process is None:
        raise InvalidSpec("process", "container has no process to take defaults from")
    return spec.process

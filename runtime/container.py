"""The runtime's side of each lifecycle verb: create, start, kill, delete,
exec, pause, resume, update.  The CLI parses flags and calls these.

``create`` rolls back with an ExitStack: each resource it takes (state dir,
exec fifo, cgroup, child processes) pushes its undo, and ``pop_all`` runs
only when the init has reported ready and the state is on disk.  So a create
that fails at any step leaves no state dir, cgroup, mount or process.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from . import cgroups, hooks, namespaces
from .capabilities import last_cap
from .errors import FailedPrecondition, HookFailed, InvalidSpec, NotFound, RuntimeFault, SyscallError
from .init import InitPlan, stage1
from .plan import ProcessPlan, plan_process
from .rootfs.devices import parse_devices
from .rootfs.setup import RootfsPlan, plan_mounts
from .spec import Process, Spec, parse_spec
from .state import ContainerState, Store, process_start_time, write_atomic
from .status import Status, require
from .sync import Channel

_PERSONALITY = {"LINUX": 0x0000, "LINUX32": 0x0008}


def _now() -> str:
    t = time.time_ns()
    stamp = datetime.fromtimestamp(t // 1_000_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{t % 1_000_000_000:09d}Z"


def load_bundle(bundle: str) -> tuple[dict[str, Any], Spec]:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = json.load(f)
    except FileNotFoundError as err:
        raise NotFound("read bundle config", path, "config.json does not exist") from err
    except ValueError as err:
        raise InvalidSpec("config.json", f"is not valid JSON: {err}") from err
    return raw, parse_spec(raw)


def _rootfs_path(spec: Spec, bundle: str) -> str:
    path = spec.root.path if os.path.isabs(spec.root.path) else os.path.join(bundle, spec.root.path)
    path = os.path.realpath(path)
    if not os.path.isdir(path):
        raise InvalidSpec("root.path", f"rootfs {path} does not exist or is not a directory")
    return path


def _write_pid_file(path: str, pid: int) -> None:
    # atomically, like runc: a reader never sees an empty pid file
    write_atomic(os.path.abspath(path), str(pid).encode(), 0o644)


def _connect_console(path: str | None) -> int:
    if not path:
        return -1
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise SyscallError("connect console socket", path, err.errno or 0) from err
    return sock.detach()


def _hook_state(spec: Spec, container_id: str, status: str, pid: int, bundle: str) -> dict[str, Any]:
    state: dict[str, Any] = {"ociVersion": spec.oci_version, "id": container_id, "status": status,
                             "pid": pid, "bundle": bundle}
    if spec.annotations:
        state["annotations"] = spec.annotations
    return state


def _kill_and_reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _manager(cgroups_path: str, container_id: str) -> cgroups.Manager:
    # On cgroup v2, device rules need an eBPF program this runtime does not
    # load yet: they are reported (a warning naming linux.resources.devices)
    # rather than refusing every ordinary container on a v2 node.
    return cgroups.new_manager(cgroups_path or None, container_id, allow_unenforced_devices=True)


@dataclass(slots=True)
class Loaded:
    state: ContainerState
    manager: cgroups.Manager
    status: Status


def load(store: Store, container_id: str) -> Loaded:
    state = store.load(container_id)
    manager = _manager(state.cgroup_path, state.id)
    frozen = manager.exists() and manager.is_frozen()
    return Loaded(state, manager, store.status(state, frozen))


def _spawn(plan: InitPlan, manager: cgroups.Manager, resources: dict[str, Any] | None,
           uid_maps: Any, gid_maps: Any, stack: contextlib.ExitStack) -> tuple[Channel, int]:
    """Fork stage 1, put it in the cgroup, answer its id-map request and
    return the channel and the stage-2 pid."""
    parent, child = Channel.pair()
    stack.callback(parent.close)
    pid1 = os.fork()
    if pid1 == 0:
        parent.close()
        stage1(plan, child)  # never returns
    child.close()
    stack.callback(_kill_and_reap, pid1)
    manager.add(pid1)
    if resources is not None:
        manager.apply(resources)
    parent.send("go")
    if plan.new_user:
        parent.recv("idmap")
        namespaces.write_idmaps(pid1, uid_maps, gid_maps)
        parent.send("idmap-done")
    pid2 = int(parent.recv("pid")["pid"])
    stack.callback(_kill_and_reap, pid2)
    os.waitpid(pid1, 0)
    parent.send("continue")
    return parent, pid2


def create(store: Store, container_id: str, bundle: str, *, pid_file: str | None = None,
           console_socket: str | None = None, no_pivot: bool = False, preserve_fds: int = 0) -> ContainerState:
    bundle = os.path.abspath(bundle)
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
    devices = parse_devices(list(lx.devices))
    dev_is_tmpfs = any(m.destination == "/dev" and m.type != "bind" and "bind" not in m.options
                       and "rbind" not in m.options for m in spec.mounts)
    manager = _manager(lx.cgroups_path, container_id)
    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read()
    mode = cgroups.detect()
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

    with contextlib.ExitStack() as stack:
        store.create_dir(container_id)
        stack.callback(store.remove_dir, container_id)
        fifo = store.fifo(container_id)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # past the umask: a non-root init must be able to open it for writing
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        stack.callback(os.close, fifo_fd)
        console_fd = _connect_console(console_socket)
        if console_fd >= 0:
            stack.callback(os.close, console_fd)
        opened = namespaces.open_paths(joins)
        for _, fd, _ in opened:
            stack.callback(os.close, fd)
        manager.create()
        stack.callback(manager.destroy)
        plan = InitPlan(
            process=pplan,
            rootfs=rplan,
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
        )
        chan, pid = _spawn(plan, manager, cgroups.with_default_devices(lx.resources, list(lx.devices)),
                           lx.uid_mappings, lx.gid_mappings, stack)
        chan.recv("hooks")
        hook_state = _hook_state(spec, container_id, "creating", pid, bundle)
        hooks.run_hooks("prestart", spec.hooks.prestart, hook_state)
        hooks.run_hooks("createRuntime", spec.hooks.create_runtime, hook_state)
        chan.send("hooks-done", state=hook_state)
        chan.recv("ready")
        started = process_start_time(pid)
        if started is None:
            raise RuntimeFault("create container", container_id, "the init exited during setup")
        state = ContainerState(
            id=container_id, bundle=bundle, rootfs=rootfs, pid=pid, pid_start=started[0], created=_now(),
            cgroup_path=lx.cgroups_path, oci_version=spec.oci_version, annotations=spec.annotations,
            private_pidns=bool(pid_ns and not pid_ns.path),
        )
        store.save_config(container_id, raw)
        store.save(state)
        if pid_file:
            _write_pid_file(pid_file, pid)
        stack.pop_all()
    chan.close()
    os.close(fifo_fd)
    if console_fd >= 0:
        os.close(console_fd)
    return state


def start(store: Store, container_id: str) -> None:
    with store.lock(container_id):
        c = load(store, container_id)
        require("start", c.status, container_id)
        fifo = store.fifo(container_id)
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as err:
            raise FailedPrecondition("start container", container_id, "it was already started") from err
        try:
            # The init's blocking open(O_WRONLY) returns now.  It writes "0"
            # once its startContainer hooks have run; its write end closes on
            # execve, so EOF after the "0" means the program is running.
            got = b""
            while True:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    chunk = os.read(fd, 16)
                    if not chunk:
                        if got:
                            break
                        if store.status(c.state, False) == Status.STOPPED:
                            raise FailedPrecondition("start container", container_id,
                                                     "the init exited before the program started")
                        time.sleep(0.001)  # the writer has not opened yet
                    got += chunk
                elif store.status(c.state, False) == Status.STOPPED:
                    raise FailedPrecondition("start container", container_id,
                                             "the init exited before the program started")
        finally:
            os.close(fd)
        os.unlink(fifo)
    spec = parse_spec(store.load_config(container_id))
    try:
        hooks.run_hooks("poststart", spec.hooks.poststart,
                        _hook_state(spec, container_id, "running", c.state.pid, c.state.bundle))
    except HookFailed as err:
        print(f"warning: {err}", file=sys.stderr)


def kill(store: Store, container_id: str, sig: int, all_processes: bool = False) -> None:
    c = load(store, container_id)
    require("kill", c.status, container_id)
    targets = c.manager.pids() if all_processes else [c.state.pid]
    for pid in targets:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue
        except OSError as err:
            raise SyscallError("kill", str(pid), err.errno or 0) from err


def _wait_stopped(store: Store, state: ContainerState, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while store.status(state, False) != Status.STOPPED:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(state.pid, os.WNOHANG)
        if time.monotonic() > deadline:
            raise RuntimeFault("wait for container to stop", state.id, f"pid {state.pid} still alive after {timeout}s")
        time.sleep(0.005)


def delete(store: Store, container_id: str, force: bool = False) -> None:
    try:
        lock = store.lock(container_id)
        lock.__enter__()
    except NotFound:
        if force:
            store.remove_dir(container_id)
            return
        raise
    try:
        try:
            c = load(store, container_id)
        except NotFound:
            store.remove_dir(container_id)
            if force:
                return
            raise
        if c.status in (Status.RUNNING, Status.PAUSED) and not force:
            raise FailedPrecondition("delete container", container_id,
                                     f"container is {c.status.value}: stop it first or use --force")
        if c.status != Status.STOPPED:
            pids = c.manager.pids() if c.manager.exists() else [c.state.pid]
            for pid in set(pids) | {c.state.pid}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if c.status == Status.PAUSED:
                c.manager.thaw()
            _wait_stopped(store, c.state)
        if not c.state.private_pidns and c.manager.exists():
            # without a pid namespace of its own, the init's exit does not take
            # the other processes with it
            for pid in c.manager.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        c.manager.destroy()
        try:
            raw = store.load_config(container_id)
            spec = parse_spec(raw)
            hooks.run_hooks("poststop", spec.hooks.poststop,
                            _hook_state(spec, container_id, "stopped", 0, c.state.bundle))
        except HookFailed as err:
            print(f"warning: {err}", file=sys.stderr)
        except NotFound:
            pass
        store.remove_dir(container_id)
    finally:
        lock.__exit__(None, None, None)


def pause(store: Store, container_id: str) -> None:
    with store.lock(container_id):
        c = load(store, container_id)
        require("pause", c.status, container_id)
        c.manager.freeze()


def resume(store: Store, container_id: str) -> None:
    with store.lock(container_id):
        c = load(store, container_id)
        require("resume", c.status, container_id)
        c.manager.thaw()


def update(store: Store, container_id: str, resources: dict[str, Any]) -> None:
    with store.lock(container_id):
        c = load(store, container_id)
        require("update", c.status, container_id)
        c.manager.apply(resources)
        raw = store.load_config(container_id)
        linux = raw.setdefault("linux", {})
        merged = linux.setdefault("resources", {})
        for key, value in resources.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key].update(value)
            else:
                merged[key] = value
        store.save_config(container_id, raw)


def state_json(store: Store, container_id: str) -> dict[str, Any]:
    c = load(store, container_id)
    return runc_state(c)


def runc_state(c: Loaded) -> dict[str, Any]:
    s = c.state
    out: dict[str, Any] = {
        "ociVersion": s.oci_version,
        "id": s.id,
        "pid": 0 if c.status == Status.STOPPED else s.pid,
        "status": c.status.value,
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": s.owner,
    }
    if s.annotations:
        out["annotations"] = s.annotations
    return out


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
    # Before touching the container: a process in it must never be able to
    # ptrace us or open our /proc files (CVE-2019-5736); the children that
    # enter the container inherit this until they exec.
    from . import syscalls as sc

    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    with contextlib.ExitStack() as stack:
        opened = _ns_fds(c.state.pid, spec)
        for _, fd, _ in opened:
            stack.callback(os.close, fd)
        console_fd = _connect_console(console_socket)
        if console_fd >= 0:
            stack.callback(os.close, console_fd)
        plan = InitPlan(
            process=pplan, rootfs=None, joins=tuple(opened), new_user=False, unshare_flags=0, time_offsets={},
            hostname="", domainname="", sysctl={}, personality=None, create_container_hooks=(),
            start_container_hooks=(), preserve_fds=preserve_fds, fifo_fd=-1, console_fd=console_fd,
            set_sid=process.terminal,
        )
        manager = c.manager
        chan, pid = _spawn(plan, manager, None, (), (), stack)
        chan.recv("ready", what="exec process")
        if pid_file:
            _write_pid_file(pid_file, pid)
        stack.pop_all()
    chan.close()
    for _, fd, _ in opened:
        os.close(fd)
    if console_fd >= 0:
        os.close(console_fd)
    return pid


def default_exec_process(store: Store, container_id: str) -> Process:
    spec = parse_spec(store.load_config(container_id))
    if spec.process is None:
        raise InvalidSpec("process", "container has no process to take defaults from")
    return spec.process


@contextlib.contextmanager
def forwarded_signals(pid: int) -> Iterator[None]:
    """While a foreground `run`/`exec` waits, pass the signals it gets on."""
    sigs = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
            signal.SIGWINCH]
    old = {}

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    for s in sigs:
        old[s] = signal.signal(s, forward)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def wait_exit(pid: int) -> int:
    """Wait for a child (the CLI is a subreaper, so the init is one) and
    return a shell-style exit code: 128+N for death by signal N."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)

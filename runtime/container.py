"""The runtime's side of the verbs that act on an existing container: start,
kill, delete, pause, resume, update, state; and the helpers a foreground
``run``/``exec`` waits with.  Making processes (create, exec) lives in
spawn.py, so these verbs do not import the init machinery.
"""

from __future__ import annotations

import select
import time

from . import log
from .kernel.errors import FailedPrecondition, HookFailed, InvalidSpec, NotFound, RuntimeFault, SyscallError
from .kernel.lean import leanos
from .state import ContainerState, Store
from .status import Status, require

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from . import cgroups


def manager_for(cgroups_path: str, container_id: str, mountinfo_text: str | None = None, *,
                systemd: bool = False) -> cgroups.Manager:
    # On cgroup v2, device rules are an eBPF program (cgroups/v2/devices.py);
    # where bpf(2) is refused (a runtime in a user namespace), they are
    # reported (a warning naming linux.resources.devices) rather than
    # refusing every container, as runc does there.
    from .cgroups.locate import new_manager

    return new_manager(cgroups_path or None, container_id, mountinfo_text=mountinfo_text,
                       allow_unenforced_devices=True, systemd=systemd)


class Loaded:
    """A container as a verb finds it: its record, its status and its cgroup
    manager.  The manager is built when a verb first asks for it: the status
    needs only the freezer's one file (restore.is_frozen), and start, state
    and kill ask for nothing more, so they do not load the manager's modules."""

    __slots__ = ("_manager", "state", "status")

    def __init__(self, state: ContainerState, status: Status, manager: cgroups.Manager | None = None) -> None:
        self.state = state
        self.status = status
        self._manager = manager

    @property
    def manager(self) -> cgroups.Manager:
        if self._manager is None:
            from .cgroups.restore import restore_manager

            self._manager = restore_manager(self.state.cgroups)
        return self._manager


def load(store: Store, container_id: str) -> Loaded:
    state = store.load(container_id)
    if state.cgroups:
        from .cgroups.restore import is_frozen

        return Loaded(state, store.status(state, is_frozen(state.cgroups)))
    # a version-1 record: its manager is worked out from the host, as then
    manager = manager_for(state.cgroup_path, state.id)
    return Loaded(state, store.status(state, manager.exists() and manager.is_frozen()), manager)


def start(store: Store, container_id: str) -> None:
    with store.lock(container_id):
        c = load(store, container_id)
        require("start", c.status, container_id)
        fifo = store.fifo(container_id)
        try:
            fd = leanos.open(fifo, leanos.O_RDONLY | leanos.O_NONBLOCK | leanos.O_CLOEXEC)
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
                    chunk = leanos.read(fd, 16)
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
            leanos.close(fd)
        leanos.unlink(fifo)
    raw = store.load_config(container_id)
    if (raw.get("hooks") or {}).get("poststart"):
        # only containers with hooks pay for parsing the spec and running hooks
        from . import hooks
        from .spec import parse_spec

        spec = parse_spec(raw)
        try:
            hooks.run_hooks("poststart", spec.hooks.poststart,
                            hooks.hook_state(spec, container_id, "running", c.state.pid, c.state.bundle))
        except HookFailed as err:
            log.warn(str(err))


def kill(store: Store, container_id: str, sig: int, all_processes: bool = False) -> None:
    c = load(store, container_id)
    if all_processes:
        # As runc: --all also reaches what outlived a stopped init (possible
        # when the container shares a pid namespace), through the cgroup.
        if c.status == Status.STOPPED and not c.manager.exists():
            return
    else:
        require("kill", c.status, container_id)
    targets = c.manager.pids() if all_processes else [c.state.pid]
    for pid in targets:
        try:
            leanos.kill(pid, sig)
        except ProcessLookupError:
            continue
        except OSError as err:
            raise SyscallError("kill", str(pid), err.errno or 0) from err


def _wait_stopped(store: Store, state: ContainerState, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while store.status(state, False) != Status.STOPPED:
        try:
            leanos.waitpid(state.pid, leanos.WNOHANG)
        except ChildProcessError:
            pass
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
        except InvalidSpec:
            if not force:
                raise
            _remove_unreadable(store, container_id)
            return
        if c.status in (Status.RUNNING, Status.PAUSED) and not force:
            raise FailedPrecondition("delete container", container_id,
                                     f"container is {c.status.value}: stop it first or use --force")
        if c.status != Status.STOPPED:
            pids = c.manager.pids() if c.manager.exists() else [c.state.pid]
            _kill_all(set(pids) | {c.state.pid})
            if c.status == Status.PAUSED:
                c.manager.thaw()
            _wait_stopped(store, c.state)
        if not c.state.private_pidns and c.manager.exists():
            # without a pid namespace of its own, the init's exit does not take
            # the other processes with it
            _kill_all(c.manager.pids())
        c.manager.destroy()
        try:
            raw = store.load_config(container_id)
            if (raw.get("hooks") or {}).get("poststop"):
                from . import hooks
                from .spec import parse_spec

                spec = parse_spec(raw)
                hooks.run_hooks("poststop", spec.hooks.poststop,
                                hooks.hook_state(spec, container_id, "stopped", 0, c.state.bundle))
        except HookFailed as err:
            log.warn(str(err))
        except NotFound:
            pass
        store.remove_dir(container_id)
    finally:
        lock.__exit__(None, None, None)


def _remove_unreadable(store: Store, container_id: str) -> None:
    """delete --force of a container whose state record cannot be read (torn
    by a power loss, since records are not fsync'd: see state.py): kill what
    is left in the cgroup its config.json names, remove that cgroup and the record.
    Its init's pid is unknown, so only the cgroup can reach its processes."""
    try:
        linux = store.load_config(container_id).get("linux") or {}
        cgroups_path = linux.get("cgroupsPath") or ""
    except (NotFound, ValueError, AttributeError):
        cgroups_path = ""
    cgroups_path = cgroups_path if isinstance(cgroups_path, str) else ""
    from .kernel.cgroupfs.systemd_path import is_systemd_path

    systemd = is_systemd_path(cgroups_path)
    manager = manager_for(cgroups_path, container_id, systemd=systemd)
    if systemd:
        manager.adopt()  # type: ignore[attr-defined]  # its scope may exist: destroy() stops it
    if manager.exists():
        _kill_all(manager.pids())
        manager.destroy()
    log.warn(f"container {container_id}: state record unreadable; removed its cgroup and state")
    store.remove_dir(container_id)


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
        raw = store.load_config(container_id)
        applied = resources
        if "devices" in resources:
            # As create does (spawn.py): the rules given, then runc's default
            # allowances and the linux.devices nodes, so an update that names
            # devices cannot take /dev/null or the pty away.  The config keeps
            # the rules as given.
            from .cgroups.device_rules import with_default_devices

            linux_devices = (raw.get("linux") or {}).get("devices")
            applied = with_default_devices(resources, linux_devices if isinstance(linux_devices, list) else None)
        c.manager.apply(applied)
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


class forwarded_signals:  # used as a context manager: `with forwarded_signals(pid):`
    """While a foreground `run`/`exec` waits, pass the signals it gets on.
    (leansignal is loaded here and in _kill_all only: start, state and
    delete need no signal names.)"""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.old: dict[int, Any] = {}

    def _forward(self, signum: int, _frame: object) -> None:
        try:
            leanos.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def __enter__(self) -> None:
        from .kernel.lean import leansignal

        for s in (leansignal.SIGINT, leansignal.SIGTERM, leansignal.SIGHUP, leansignal.SIGQUIT, leansignal.SIGUSR1,
                  leansignal.SIGUSR2, leansignal.SIGWINCH):
            self.old[s] = leansignal.signal(s, self._forward)

    def __exit__(self, *exc: object) -> None:
        from .kernel.lean import leansignal

        for s, h in self.old.items():
            leansignal.signal(s, h)
        self.old.clear()


def _kill_all(pids: Iterable[int]) -> None:
    from .kernel.lean import leansignal

    for pid in pids:
        try:
            leanos.kill(pid, leansignal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_exit(pid: int) -> int:
    """Wait for a child (the CLI is a subreaper, so the init is one) and
    return a shell-style exit code: 128+N for death by signal N."""
    while True:
        try:
            _, status = leanos.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255
        if leanos.WIFEXITED(status):
            return leanos.WEXITSTATUS(status)
        if leanos.WIFSIGNALED(status):
            return 128 + leanos.WTERMSIG(status)

"""The shim's API: one handler per method of api/shim.py, over the pod's containers.

``Shim.handlers`` is the dispatch table, method name -> handler; each
handler takes the method's params record (api.METHODS), already checked by
api.parse_request, and returns its result record, or None when it answers
later (``wait``) or itself (``exec`` with fds, ``attach``).  A message that
is not a request the shim understands gets an error reply with a code
(api.Code), never silence.

Each container has an init process and any number of execs.  A process goes
through the states of process.py; its exit is *reaped* (the kernel's status
is in) and then *finished* once its output is drained (its pipes reached
EOF, or IO_GRACE_S passed: a background child may hold them open forever).
Only a finished process is stopped: waiters are answered, subscribers told,
and the record persisted, so a log never misses the last lines of a process
that the daemon already saw exit.

A container's init that finished is deleted from the runtime at once
(``_delete_from_runtime``), as containerd's CRI deletes a task on its exit:
its cgroup and the runtime's state go, so nothing (cAdvisor, for one) finds
an empty cgroup of a dead container beside its restarted successor, and an
exited container kept until its removal (a completed Job's, an init
container's) holds neither.  That runs after the OOM check (which reads the
cgroup) and before the waiters and subscribers hear of the exit, so an exit
the daemon sees is one whose cgroup is gone.  The daemon's later ``delete``
then only forgets the container; a runtime delete that failed at the exit is
logged and tried again there.  A container's exit reaped with its output
drained already is finished from the loop, not at once: the reap may happen
inside the reaper's callback, or inside ``create`` before the container is
registered, and the runtime's delete must run in neither.
"""

from __future__ import annotations

import binascii
import sys
import time

from dockyard.api import shim as api
from dockyard.api.shim import Code, ShimError
from dockyard.runtime.kernel.lean import jsonfast, leanos, leansignal, leansocket
from dockyard.runtime.kernel.lean.records import replace

from . import oom, process, state
from .handoff import HandedIO
from .io import LogFile, ProcessIO
from .loop import PRIORITY, Loop
from .oci_runtime import OciRuntime
from .process import CREATED, RUNNING, STOPPED
from .reaper import Reaper

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from .oci_runtime import Pump

    class Peer(Protocol):
        subscribed: bool
        closed: bool
        out: bytearray

        def send(self, message: dict[str, Any]) -> None: ...

        def send_fds(self, message: dict[str, Any], fds: list[int]) -> None: ...

        def close(self) -> None: ...

    # A method's handler: its params record in, its result record out, or None
    # when it answers later or itself.
    Handler = Callable[[Peer, int, Any], api.Message | None]

IO_GRACE_S = 2.0
UNCLAIMED_MAX = 256
STOPPED_EXECS_MAX = 16
CONSOLE_ACCEPT_S = 10.0
VERSION = "0.1.0"


class Proc:
    """What containers and execs share: a pid, a state, an exit, its stdio and who waits for it."""

    def __init__(self, container_id: str, exec_id: str, io: ProcessIO | HandedIO) -> None:
        self.container_id = container_id
        self.exec_id = exec_id
        self.io = io
        self.pid = 0
        self.state: process.State = CREATED if not exec_id else RUNNING
        self.exit_status = 0
        self.exited_at = 0
        self.reaped: tuple[int, int] | None = None  # (wait status, ns) before finishing
        self.waiters: list[tuple[Peer, int]] = []
        self.grace_timer = 0
        # exec_sync: who gets the answer at the exit (then the exec is forgotten), its kill timer,
        # and whether that timer fired.
        self.sync_reply: tuple[Peer, int] | None = None
        self.sync_timer = 0
        self.timed_out = False

    @property
    def effective_state(self) -> process.State:
        """Stopped as soon as the exit is reaped, even while the output drains."""
        return STOPPED if self.reaped is not None else self.state


class Attachment:
    """One ``attach`` connection: which output it mirrors, whether it used stdin, what it lost."""

    __slots__ = ("peer", "stdin", "streams", "dropped")

    def __init__(self, peer: Peer, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.peer = peer
        self.stdin = stdin
        self.streams = frozenset(s for s, on in (("stdout", stdout), ("stderr", stderr)) if on)
        self.dropped = 0


class Container(Proc):
    def __init__(self, container_id: str, bundle: str, io: ProcessIO, params: api.CreateParams) -> None:
        super().__init__(container_id, "", io)
        self.bundle = bundle
        self.params = params
        self.created_at = time.time_ns()
        self.started_at = 0
        self.oom_killed = False
        self.oom_fd = -1  # the v2 memory.events watched while it runs (Shim._watch_oom)
        self.execs: dict[str, Proc] = {}
        self.private_pidns = _private_pidns(bundle)
        self.attached: list[Attachment] = []
        self.runtime_deleted = False  # the runtime's delete succeeded: nothing of it is left there

    def record(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "bundle": self.bundle, "pid": self.pid,
                "status": self.state.name, "exit_status": self.exit_status, "created_at": self.created_at,
                "started_at": self.started_at, "exited_at": self.exited_at, "log_path": self.params.log_path,
                "tty": self.params.tty, "stdin": self.params.stdin, "oom_killed": self.oom_killed,
                "runtime_deleted": self.runtime_deleted}


def _private_pidns(bundle: str) -> bool:
    """Whether the container has a pid namespace of its own (config.json)."""
    try:
        with open(leanos.path.join(bundle, "config.json"), "rb") as f:
            namespaces = jsonfast.loads(f.read()).get("linux", {}).get("namespaces", [])
    except (OSError, ValueError):
        return True
    return any(ns.get("type") == "pid" and not ns.get("path") for ns in namespaces)


class Shim:
    def __init__(self, loop: Loop, shim_dir: str, runtime_binary: str, runtime_root: str,
                 runtime_launch: str = "", *, systemd_cgroup: bool = False) -> None:
        self.loop = loop
        self.dir = shim_dir
        self.containers: dict[str, Container] = {}
        self.by_pid: dict[int, Proc] = {}
        self.unclaimed: dict[int, tuple[int, int]] = {}
        self.peers: list[Peer] = []
        self.reaper = Reaper(self._on_exit)
        self.runtime = OciRuntime(runtime_binary, runtime_root, self.reaper, f"{shim_dir}/runtime.log",
                                  runtime_launch, systemd_cgroup=systemd_cgroup)
        self.shutting_down = False
        self.consoles = 0  # console sockets made so far: their short names
        self.handlers = self.dispatch_table()
        leanos.makedirs(f"{shim_dir}/{api.CONTAINERS_DIR}", exist_ok=True)

    # --- dispatch --------------------------------------------------------------

    def dispatch_table(self) -> dict[str, Handler]:
        """Every method of api.METHODS, and nothing else (tests/unit/test_shim_protocol.py checks)."""
        return {
            "ping": self.do_ping, "create": self.do_create, "start": self.do_start, "state": self.do_state,
            "list": self.do_list, "kill": self.do_kill, "delete": self.do_delete, "exec": self.do_exec,
            "exec_sync": self.do_exec_sync,
            "attach": self.do_attach, "wait": self.do_wait, "resize_pty": self.do_resize_pty,
            "write_stdin": self.do_write_stdin, "close_stdin": self.do_close_stdin, "update": self.do_update,
            "checkpoint": self.do_checkpoint,
            "reopen_log": self.do_reopen_log, "stats": self.do_stats, "subscribe": self.do_subscribe,
            "shutdown": self.do_shutdown, "claim": self.do_claim,
        }

    def handle(self, peer: Peer, message: dict[str, Any]) -> None:
        """Answer one request (``wait`` may be answered later)."""
        raw_id = message.get("id")
        req_id = raw_id if isinstance(raw_id, int) and not isinstance(raw_id, bool) else 0
        try:
            request = api.parse_request(message)
            result = self.handlers[request.method](peer, request.id, request.params)
        except ShimError as err:
            peer.send(api.error_response(req_id, err))
            return
        except OSError as err:
            peer.send(api.error_response(req_id, ShimError(Code.INTERNAL, f"{message.get('method')}: {err}")))
            return
        if result is not None:
            peer.send(api.response(req_id, result))

    def _container(self, container_id: str) -> Container:
        found = self.containers.get(container_id)
        if found is None:
            raise ShimError(Code.NOT_FOUND, f"container {container_id} not found in this shim")
        return found

    def _proc(self, container_id: str, exec_id: str) -> Proc:
        c = self._container(container_id)
        if not exec_id:
            return c
        found = c.execs.get(exec_id)
        if found is None:
            raise ShimError(Code.NOT_FOUND, f"exec {exec_id} not found in container {container_id}")
        return found

    # --- OOM kills while a container runs (shim/oom.py says why) ---------------------

    def _watch_oom(self, c: Container) -> None:
        fd = oom.open_events(c.bundle, c.container_id)
        if fd >= 0:
            c.oom_fd = fd
            self.loop.watch(fd, PRIORITY, lambda _mask: self._oom_wakeup(c))

    def _oom_wakeup(self, c: Container) -> None:
        try:
            kills = oom.read_kills(c.oom_fd)
        except OSError:  # the cgroup is gone
            self._unwatch_oom(c)
            return
        if kills > 0 and not c.oom_killed:
            c.oom_killed = True
            self.publish(api.oom_event(c.container_id))
            self._unwatch_oom(c)

    def _unwatch_oom(self, c: Container) -> None:
        if c.oom_fd >= 0:
            self.loop.unwatch(c.oom_fd)
            leanos.close(c.oom_fd)
            c.oom_fd = -1

    # --- exits -------------------------------------------------------------------

    def _on_exit(self, pid: int, wait_status: int, now_ns: int) -> None:
        proc = self.by_pid.pop(pid, None)
        if proc is None:
            # Not (yet) known: an exec or init that died before its pid file was read,
            # or an orphan reparented to us.  Kept, bounded, for the claim that may follow.
            self.unclaimed[pid] = (wait_status, now_ns)
            while len(self.unclaimed) > UNCLAIMED_MAX:
                del self.unclaimed[next(iter(self.unclaimed))]
            return
        self._reaped(proc, wait_status, now_ns)

    def _claim(self, proc: Proc) -> None:
        """Register a freshly read pid; an exit reaped before this moment is applied now."""
        early = self.unclaimed.pop(proc.pid, None)
        if early is not None:
            self._reaped(proc, *early)
        else:
            self.by_pid[proc.pid] = proc

    def _reaped(self, proc: Proc, wait_status: int, now_ns: int) -> None:
        proc.reaped = (wait_status, now_ns)
        if isinstance(proc, Container) and not proc.private_pidns:
            # With a shared pid namespace the init's exit does not take the
            # container's other processes with it, and one of them may hold
            # the stdio open: end them, as containerd's runc shim does.  From
            # the loop, not inside the reaper's callback.
            self.loop.call_later(0, lambda: self._kill_leftovers(proc))
        if proc.io.done:
            if isinstance(proc, Container):
                # Its runtime delete must not run in here (module docstring); after the kill above.
                self.loop.call_later(0, lambda: self._finish(proc))
            else:
                self._finish(proc)
            return
        proc.io.on_done = lambda: self._finish(proc)
        proc.grace_timer = self.loop.call_later(IO_GRACE_S, lambda: self._finish(proc))

    def _kill_leftovers(self, container: Container) -> None:
        if container.runtime_deleted:  # its delete killed them already
            return
        try:
            self.runtime.kill(container.container_id, leansignal.SIGKILL, True)
        except ShimError as err:
            sys.stderr.write(f"dockyard-shim: kill --all after the init of {container.container_id} exited: {err}\n")

    def _finish(self, proc: Proc) -> None:
        if proc.reaped is None or proc.state is STOPPED:
            return
        if proc.grace_timer:
            self.loop.cancel(proc.grace_timer)
        wait_status, now_ns = proc.reaped
        proc.state = process.advance(proc.state, "exit")
        proc.exit_status = process.exit_status(wait_status)
        proc.exited_at = now_ns
        proc.io.close()
        if isinstance(proc, Container):
            self._unwatch_oom(proc)
            if not proc.oom_killed and oom.container_oom_killed(proc.bundle, container_id=proc.container_id):
                proc.oom_killed = True
                # Before the waiters and the exit event: the daemon must know the reason when it sees the exit.
                self.publish(api.oom_event(proc.container_id))
            self._delete_from_runtime(proc)
            state.save(self.dir, proc.record())
        for peer, req_id in proc.waiters:
            if not peer.closed:
                peer.send(api.response(req_id, self._wait_result(proc)))
        proc.waiters = []
        if proc.sync_reply is not None:
            self._answer_exec_sync(proc)
        event = api.exit_event(proc.container_id, proc.exec_id, proc.pid, proc.exit_status, proc.exited_at)
        if isinstance(proc, Container):
            # After the last output (the streams drained before _finish): the attach ends here.
            for a in proc.attached:
                a.peer.send({**event, "output_dropped": a.dropped})
        self.publish(event)

    def _delete_from_runtime(self, c: Container) -> None:
        """The runtime's ``delete`` of a container whose init exited: its cgroup and
        state go now (module docstring).  A failure is logged and left for the
        daemon's ``delete`` to try again; the exit is reported either way."""
        if c.runtime_deleted:
            return
        try:
            self.runtime.delete(c.container_id, force=False)
        except ShimError as err:
            sys.stderr.write(f"dockyard-shim: delete of {c.container_id} from the runtime after its exit failed "
                             f"(tried again at its delete): {err}\n")
            return
        c.runtime_deleted = True

    # --- attach --------------------------------------------------------------------

    def _mirror(self, c: Container, stream: str, data: bytes) -> None:
        """Copy a chunk of the container's output to its attach connections.

        The log was written first (io.py) and nothing here can block: a
        client with more than ATTACH_BUFFER unsent bytes loses this chunk
        (counted, reported in its exit event) rather than stalling the loop,
        the log, or the container behind it."""
        if not c.attached:
            return
        event: dict[str, Any] | None = None
        for a in c.attached:
            if stream not in a.streams or a.peer.closed:
                continue
            if len(a.peer.out) > api.ATTACH_BUFFER:
                a.dropped += len(data)
                continue
            if event is None:
                event = api.output_event(c.container_id, stream, binascii.b2a_base64(data, newline=False).decode())
            a.peer.send(event)

    def peer_closed(self, peer: Peer) -> None:
        """A connection went away: forget it; a detaching attach may close stdin (stdin_once)."""
        if peer in self.peers:
            self.peers.remove(peer)
        for c in self.containers.values():
            mine = [a for a in c.attached if a.peer is peer]
            if not mine:
                continue
            c.attached = [a for a in c.attached if a.peer is not peer]
            if c.params.stdin_once and any(a.stdin for a in mine):
                c.io.close_stdin()

    def publish(self, event: dict[str, Any]) -> None:
        for peer in self.peers:
            if peer.subscribed and not peer.closed:
                peer.send(event)

    def _wait_result(self, proc: Proc) -> api.WaitResult:
        captured: dict[str, Any] = {}
        captures = proc.io.captures
        if captures is not None:
            for stream, cap in captures.items():
                captured[stream] = binascii.b2a_base64(bytes(cap.data), newline=False).decode()
                captured[f"{stream}_dropped"] = cap.dropped
        return api.WaitResult(exit_status=proc.exit_status, exited_at=proc.exited_at,
                              oom_killed=proc.oom_killed if isinstance(proc, Container) else None, **captured)

    def _answer_exec_sync(self, e: Proc) -> None:
        """exec_sync's answer at the exit; the exec is forgotten, as its ``delete`` would."""
        assert e.sync_reply is not None
        peer, req_id = e.sync_reply
        e.sync_reply = None
        if e.sync_timer:
            self.loop.cancel(e.sync_timer)
            e.sync_timer = 0
        c = self.containers.get(e.container_id)
        if c is not None and c.execs.get(e.exec_id) is e:
            del c.execs[e.exec_id]
        if peer.closed:
            return
        w = self._wait_result(e)  # an exec_sync's io always captures: the output fields are set
        peer.send(api.response(req_id, api.ExecSyncResult(
            exit_status=w.exit_status, exited_at=w.exited_at, stdout=w.stdout or "", stdout_dropped=w.stdout_dropped or 0,
            stderr=w.stderr or "", stderr_dropped=w.stderr_dropped or 0, timed_out=e.timed_out)))

    def _exec_sync_deadline(self, e: Proc) -> None:
        e.sync_timer = 0
        if e.reaped is None:  # not exited yet (a reaped exec may still be draining its output)
            e.timed_out = True
            leanos.kill(e.pid, 9)

    def _status(self, proc: Proc) -> api.ProcessStatus:
        status = api.ProcessStatus(container_id=proc.container_id, exec_id=proc.exec_id, pid=proc.pid,
                                   status=proc.state.name, exit_status=proc.exit_status, exited_at=proc.exited_at)
        if isinstance(proc, Container):
            status = replace(status, bundle=proc.bundle, created_at=proc.created_at, started_at=proc.started_at,
                             oom_killed=proc.oom_killed, log_path=proc.params.log_path, tty=proc.params.tty,
                             execs=sorted(proc.execs))
        return status

    # --- stdio set-up shared by create and exec ----------------------------------

    def _console_socket(self, name: str) -> leansocket.socket:
        # Relative to the shim's cwd (its directory): a unix socket path must fit in 108 bytes.
        try:
            leanos.unlink(name)
        except FileNotFoundError:
            pass
        listener = leansocket.unix_stream()
        listener.bind(name)
        listener.listen(1)
        return listener

    def _receive_console(self, listener: leansocket.socket, name: str) -> int:
        """The pty master the runtime's init sent (it connected while the runtime ran)."""
        listener.settimeout(CONSOLE_ACCEPT_S)
        conn = leansocket.accept(listener)
        try:
            conn.settimeout(CONSOLE_ACCEPT_S)
            _msg, fds = leansocket.recv_fds(conn, 4096, 1)
        finally:
            conn.close()
        if not fds:
            raise ShimError(Code.INTERNAL, f"console socket {name}: no pty master received")
        return fds[0]

    def _spawn(self, proc: Proc, tag: str,
               run: Callable[[str, str, tuple[int, int, int], dict[int, Callable[[int], None]]], None]) -> None:
        """Run the runtime verb that starts ``proc``; fill its pid, wire its stdio."""
        pid_file = f"{tag}.pid"
        console = ""
        if proc.io.tty:
            self.consoles += 1
            console = f"pty{self.consoles}.sock"
        listener = self._console_socket(console) if console else None
        # The runtime gets the socket through our cwd's magic link: a socket address
        # holds 108 bytes, too few for the shim's directory, and unlike a bare relative
        # name it survives a runtime that changes directory first (runc and crun chdir
        # into the bundle).  Hence the short names too: ids may be long.
        reachable = f"/proc/{leanos.getpid()}/cwd/{console}" if console else ""
        try:
            run(pid_file, reachable, proc.io.runtime_stdio(), proc.io.spawn_pump())
            proc.io.spawned()
            if listener is not None:
                proc.io.attach_console(self._receive_console(listener, console))
            with open(pid_file) as f:
                proc.pid = int(f.read().strip())
        except BaseException:
            proc.io.close()
            raise
        finally:
            if listener is not None:
                listener.close()
                leanos.unlink(console)
            try:
                leanos.unlink(pid_file)
            except FileNotFoundError:
                pass
        self._claim(proc)

    # --- methods -----------------------------------------------------------------

    def do_ping(self, _peer: Peer, _id: int, _params: api.NoParams) -> api.PingResult:
        return api.PingResult(pid=leanos.getpid(), version=VERSION, protocol=api.PROTOCOL_VERSION)

    def do_create(self, _peer: Peer, _id: int, params: api.CreateParams) -> api.PidResult:
        cid = params.container_id
        if cid in self.containers:
            raise ShimError(Code.ALREADY_EXISTS, f"container {cid} already exists in this shim")
        if self.shutting_down:
            raise ShimError(Code.FAILED_PRECONDITION, "shim is shutting down")
        bundle = params.bundle
        if not leanos.path.isfile(f"{bundle}/config.json"):
            raise ShimError(Code.INVALID_ARGUMENT, f"create {cid}: bundle {bundle} has no config.json")
        log = LogFile(params.log_path) if params.log_path else None
        io = ProcessIO(self.loop, tty=params.tty, stdin=params.stdin, log=log, capture=False)
        c = Container(cid, bundle, io, params)
        io.on_output = lambda stream, data: self._mirror(c, stream, data)
        verb: Callable[[str, str, str, str, tuple[int, int, int], Pump | None], None]
        if params.restore:
            restore_image = params.restore

            def restore(container_id: str, bundle: str, pid_file: str, console: str,
                        stdio: tuple[int, int, int], pump: Pump | None = None) -> None:
                self.runtime.restore_detached(container_id, bundle, pid_file, console, stdio, pump,
                                              image_path=restore_image)
            verb = restore
        else:
            verb = self.runtime.run_detached if params.start else self.runtime.create
        begun = time.time_ns()  # as in do_start: the program may run (and exit) before the call returns
        try:
            self._spawn(c, f"init-{cid}", lambda pid_file, console, stdio, pump: verb(
                cid, bundle, leanos.path.abspath(pid_file), console, stdio, pump))
        except BaseException:
            if log is not None:
                log.close()
            raise
        self.containers[cid] = c
        self._watch_oom(c)
        if params.start or params.restore:
            c.started_at = begun
            if c.state is CREATED:
                c.state = process.advance(c.state, "start")
            state.save(self.dir, c.record())
        elif c.reaped is None:
            state.save(self.dir, c.record())
        return api.PidResult(pid=c.pid)

    def do_start(self, _peer: Peer, _id: int, params: api.ContainerRef) -> api.PidResult:
        c = self._container(params.container_id)
        process.check(c.effective_state, "start")
        # Taken before the call: the process runs (and may exit) while `start` is still returning.
        begun = time.time_ns()
        self.runtime.start(c.container_id)
        c.started_at = begun
        # The init may have run and exited while `start` ran: then it is stopped already.
        if c.state is CREATED:
            c.state = process.advance(c.state, "start")
        state.save(self.dir, c.record())
        return api.PidResult(pid=c.pid)

    def do_state(self, _peer: Peer, _id: int, params: api.ProcessRef) -> api.ProcessStatus:
        return self._status(self._proc(params.container_id, params.exec_id))

    def do_list(self, _peer: Peer, _id: int, _params: api.NoParams) -> api.ListResult:
        return api.ListResult(containers=[self._status(c) for c in self.containers.values()])

    def do_kill(self, _peer: Peer, _id: int, params: api.KillParams) -> api.NoResult:
        proc = self._proc(params.container_id, params.exec_id)
        if params.exec_id:
            process.check(proc.effective_state, "kill", "process")
            leanos.kill(proc.pid, params.signal)
            return api.NoResult()
        process.check(proc.effective_state, "kill_all" if params.all else "kill")
        if isinstance(proc, Container) and proc.runtime_deleted:
            return api.NoResult()  # only --all gets here (stopped): its delete killed what was left
        self.runtime.kill(proc.container_id, params.signal, params.all)
        return api.NoResult()

    def do_delete(self, _peer: Peer, _id: int, params: api.ProcessRef) -> api.ExitResult:
        c = self._container(params.container_id)
        if params.exec_id:
            e = self._proc(c.container_id, params.exec_id)
            process.check(e.state, "delete", "process")
            del c.execs[e.exec_id]
            return api.ExitResult(exit_status=e.exit_status, exited_at=e.exited_at)
        process.check(c.effective_state, "delete")
        if c.state is CREATED:
            self.runtime.delete(c.container_id, force=True)
            c.runtime_deleted = True
            # The runtime killed the waiting init; it is our child, so reap it now.
            self.reaper.reap()
        if c.reaped is not None and c.state is not STOPPED:
            # Reaped, its output still draining (or a created init just killed): finish it
            # now, which deletes it from the runtime unless done above, and tells its waiters.
            self._finish(c)
        if not c.runtime_deleted:
            # Its delete at the exit failed (shim.log says why): again, and the caller hears how it fails.
            # Forced: runc may have removed its state while failing (then only --force succeeds).
            self.runtime.delete(c.container_id, force=True)
            c.runtime_deleted = True
        gone = ShimError(Code.NOT_FOUND, f"container {c.container_id} deleted")
        for e in c.execs.values():
            self.by_pid.pop(e.pid, None)
            e.io.close()
            # An exec not finished yet (not reaped, or its output still draining): whoever waits
            # for it hears that it is gone, rather than never.
            if e.sync_reply is not None:
                e.waiters.append(e.sync_reply)
                e.sync_reply = None
            if e.sync_timer:
                self.loop.cancel(e.sync_timer)
            for peer, req_id in e.waiters:
                if not peer.closed:
                    peer.send(api.error_response(req_id, gone))
        self.by_pid.pop(c.pid, None)
        c.io.close()
        if c.io.log is not None:
            c.io.log.close()
        for peer, req_id in c.waiters:
            if not peer.closed:
                peer.send(api.error_response(req_id, gone))
        for a in c.attached:
            a.peer.close()
        c.attached = []
        del self.containers[c.container_id]
        state.forget(self.dir, c.container_id)
        return api.ExitResult(exit_status=c.exit_status, exited_at=c.exited_at)

    def do_exec(self, peer: Peer, req_id: int, params: api.ExecParams) -> api.ExecResult | None:
        c = self._exec_target(params.container_id, params.exec_id, params.process)
        io: ProcessIO | HandedIO
        if params.io == "fds":
            io = HandedIO(tty=params.tty, stdin=params.stdin, stdout=params.stdout, stderr=params.stderr)
        else:
            io = ProcessIO(self.loop, tty=params.tty, stdin=params.stdin, log=None, capture=params.capture)
        e = self._start_exec(c, params.exec_id, params.process, params.tty, io)
        if isinstance(io, HandedIO):
            names, fds = io.take()
            peer.send_fds(api.response(req_id, api.ExecResult(pid=e.pid, fds=names)), fds)
            return None
        return api.ExecResult(pid=e.pid)

    def do_exec_sync(self, peer: Peer, req_id: int, params: api.ExecSyncParams) -> None:
        """Answered at the exit (_answer_exec_sync), like a ``wait``."""
        c = self._exec_target(params.container_id, params.exec_id, params.process)
        io = ProcessIO(self.loop, tty=False, stdin=False, log=None, capture=True)
        e = self._start_exec(c, params.exec_id, params.process, False, io)
        e.sync_reply = (peer, req_id)
        if e.state is STOPPED:  # finished before we got here
            self._answer_exec_sync(e)
        elif params.timeout_ms:
            e.sync_timer = self.loop.call_later(params.timeout_ms / 1000, lambda: self._exec_sync_deadline(e))

    def _exec_target(self, container_id: str, eid: str, spec: dict[str, Any]) -> Container:
        c = self._container(container_id)
        if eid in c.execs:
            raise ShimError(Code.ALREADY_EXISTS, f"exec {eid} already exists in container {c.container_id}")
        process.check(c.effective_state, "exec")
        if not isinstance(spec.get("args"), list) or not spec["args"]:
            raise ShimError(Code.INVALID_ARGUMENT, f"exec {eid}: process.args must be a non-empty list")
        return c

    def _start_exec(self, c: Container, eid: str, spec_process: dict[str, Any], tty: bool,
                    io: ProcessIO | HandedIO) -> Proc:
        spec = dict(spec_process)
        spec["terminal"] = tty
        e = Proc(c.container_id, eid, io)
        tag = f"exec-{c.container_id}-{eid}"
        process_file = leanos.path.abspath(f"{tag}.json")
        with open(process_file, "w") as f:
            f.write(jsonfast.dumps(spec))
        try:
            self._spawn(e, tag, lambda pid_file, console, stdio, pump: self.runtime.exec(
                c.container_id, process_file, leanos.path.abspath(pid_file), console, stdio, pump))
        except BaseException:
            if isinstance(io, HandedIO):
                io.discard()
            raise
        finally:
            leanos.unlink(process_file)
        c.execs[eid] = e
        self._prune_execs(c)
        return e

    def _prune_execs(self, c: Container) -> None:
        # A daemon that never deletes its finished execs must not grow the shim without bound.
        stopped = [k for k, e in c.execs.items() if e.state is STOPPED and not e.waiters]
        for key in stopped[:max(0, len(stopped) - STOPPED_EXECS_MAX)]:
            del c.execs[key]

    def do_wait(self, peer: Peer, req_id: int, params: api.ProcessRef) -> api.WaitResult | None:
        proc = self._proc(params.container_id, params.exec_id)
        if proc.state is STOPPED:
            return self._wait_result(proc)
        proc.waiters.append((peer, req_id))
        return None

    def do_attach(self, peer: Peer, req_id: int, params: api.AttachParams) -> None:
        c = self._container(params.container_id)
        if params.stdin and not c.params.stdin:
            raise ShimError(Code.FAILED_PRECONDITION, f"container {c.container_id} was created without stdin")
        peer.send(api.response(req_id, api.AttachResult(pid=c.pid, tty=c.params.tty)))
        if c.state is STOPPED:
            # Nothing more will come: the attach ends at once.
            peer.send({**api.exit_event(c.container_id, "", c.pid, c.exit_status, c.exited_at), "output_dropped": 0})
            return
        c.attached.append(Attachment(peer, params.stdin, params.stdout, params.stderr))

    def do_resize_pty(self, _peer: Peer, _id: int, params: api.ResizePtyParams) -> api.NoResult:
        proc = self._proc(params.container_id, params.exec_id)
        if not proc.io.resize(params.width, params.height):
            raise ShimError(Code.FAILED_PRECONDITION, f"{_name(proc)} has no terminal (or it has closed)")
        return api.NoResult()

    def do_write_stdin(self, _peer: Peer, _id: int, params: api.WriteStdinParams) -> api.NoResult:
        proc = self._proc(params.container_id, params.exec_id)
        try:
            data = binascii.a2b_base64(params.data)
        except binascii.Error as err:
            raise ShimError(Code.INVALID_ARGUMENT, f"write_stdin: data is not base64: {err}") from err
        if not proc.io.write_stdin(data):
            raise ShimError(Code.FAILED_PRECONDITION, f"{_name(proc)} has no open stdin")
        return api.NoResult()

    def do_close_stdin(self, _peer: Peer, _id: int, params: api.ProcessRef) -> api.NoResult:
        self._proc(params.container_id, params.exec_id).io.close_stdin()
        return api.NoResult()

    def do_update(self, _peer: Peer, _id: int, params: api.UpdateParams) -> api.NoResult:
        c = self._container(params.container_id)
        process.check(c.effective_state, "update")
        self.runtime.update(c.container_id, params.resources)
        return api.NoResult()

    def do_checkpoint(self, _peer: Peer, _id: int, params: api.CheckpointParams) -> api.NoResult:
        c = self._container(params.container_id)
        process.check(c.effective_state, "checkpoint")
        self.runtime.checkpoint(c.container_id, params.image_path, params.work_path, params.leave_running,
                                params.timeout)
        return api.NoResult()

    def do_reopen_log(self, _peer: Peer, _id: int, params: api.ContainerRef) -> api.NoResult:
        c = self._container(params.container_id)
        if c.io.log is None:
            raise ShimError(Code.FAILED_PRECONDITION, f"container {c.container_id} has no log file")
        c.io.log.reopen()
        return api.NoResult()

    def do_stats(self, _peer: Peer, _id: int, params: api.ContainerRef) -> api.StatsResult:
        c = self._container(params.container_id)
        if c.runtime_deleted:
            raise ShimError(Code.FAILED_PRECONDITION, f"container {c.container_id} has exited: the runtime has "
                                                      "deleted it, and its cgroup with it")
        return api.StatsResult(stats=self.runtime.stats(c.container_id))

    def do_subscribe(self, peer: Peer, _id: int, _params: api.NoParams) -> api.NoResult:
        peer.subscribed = True
        return api.NoResult()

    def do_shutdown(self, _peer: Peer, _id: int, _params: api.NoParams) -> api.NoResult:
        alive = sorted(c.container_id for c in self.containers.values() if c.effective_state.is_alive)
        if alive:
            raise ShimError(Code.FAILED_PRECONDITION, f"cannot shut down: containers still alive: {', '.join(alive)}")
        self.shutting_down = True
        return api.NoResult()

    def do_claim(self, _peer: Peer, _id: int, params: api.ClaimParams) -> api.NoResult:
        """A spare becomes a pod's shim: its directory was renamed to ``dir``
        (our working directory moved with it; the socket too)."""
        if self.containers or self.shutting_down:
            raise ShimError(Code.FAILED_PRECONDITION, "claim: this shim already serves a pod")
        try:
            same = leanos.path.samefile(params.dir, ".")
        except OSError:
            same = False
        if not same:
            raise ShimError(Code.INVALID_ARGUMENT, f"claim: dir {params.dir} is not this shim's directory")
        self.dir = params.dir
        self.runtime.log_path = f"{params.dir}/runtime.log"
        return api.NoResult()


def _name(proc: Proc) -> str:
    return f"exec {proc.exec_id} of {proc.container_id}" if proc.exec_id else f"container {proc.container_id}"

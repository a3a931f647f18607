"""The streaming server's backend (cri/streaming/backend.py) on the pod's shim.

* Exec: the shim starts ``runtime exec --detach`` with stdio it creates and
  hands the daemon's ends over SCM_RIGHTS (``exec`` with ``io: "fds"``):
  pipes, or the pty master the runtime sent to the shim's console socket.
  The daemon then moves the bytes itself, without a copy through the shim,
  and resizes with TIOCSWINSZ on the master it holds.  The exit status comes
  from the shim's ``wait``; a session the client leaves early SIGKILLs the
  process through the shim's ``kill`` with the exec id.
* Attach: the shim's ``attach`` stream mirrors the container's output
  (the shim keeps writing the log); stdin goes through ``write_stdin``.
  Detaching closes the connection; the shim closes the container's stdin
  when the container is ``stdin_once`` and this attach used stdin.
* PortForward: a connection to 127.0.0.1:port made inside the pod's netns
  (cri/streaming/netns_dial.py); a pod on the host network dials the host.

Facts about the fds this holds:

* They are non-blocking and driven by the loop's add_reader/add_writer:
  a pipe or pty never blocks the loop, and 200 sessions cost no threads.
* A pty master reads EIO (not EOF) once the last slave fd is closed, i.e.
  when the process and every child holding the terminal are gone; that is
  the end of its output.  Its input and output are the same fd, so the
  master is closed only once the output ended (or the session is cancelled).
* Closing stdin of a pty cannot be a close (output still flows): the
  terminal's EOF character (^D) is written instead, as the shim does.
* Every fd is closed by the time the session ends: at EOF, when the process
  exits (stdin), or in ``cancel``; nothing is left for the next session.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import struct
import termios
from typing import Any

from .. import errors
from ..shim_client import AttachStream, ShimClient
from ..streaming import netns_dial
from ..streaming.backend import ProcessIO
from .exec_sync import container_process, exec_process
from .cri_service import CriService

log = logging.getLogger("dockyard.cri.streaming_backend")

CHUNK = 64 * 1024
EOT = b"\x04"
KILL_WAIT_S = 10.0
# Output events buffered per attach stream before the shim's socket stops being read
# (then the shim drops for this client: it never blocks the container or its log).
ATTACH_QUEUE = 64


class FdStream:
    """Async reads and writes on one non-blocking fd (pipe end or pty master), by the loop's readiness callbacks."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.closed = False

    async def _ready(self, write: bool) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)
        (loop.add_writer if write else loop.add_reader)(self.fd, wake)
        try:
            await fut
        finally:
            if not self.closed:
                (loop.remove_writer if write else loop.remove_reader)(self.fd)

    async def read(self) -> bytes:
        """A chunk, or b"" at EOF (a pty's EIO included)."""
        while not self.closed:
            try:
                return os.read(self.fd, CHUNK)
            except BlockingIOError:
                await self._ready(write=False)
            except OSError as err:
                if err.errno == errno.EIO:
                    return b""
                raise
        return b""

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.closed:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                await self._ready(write=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            loop = asyncio.get_running_loop()
            loop.remove_reader(self.fd)
            loop.remove_writer(self.fd)
            os.close(self.fd)


class ExecIO:
    """ProcessIO of an exec whose stdio the shim handed over (pipes, or a pty master)."""

    def __init__(self, client: ShimClient, container_id: str, exec_id: str, fds: dict[str, int]) -> None:
        self.client = client
        self.container_id = container_id
        self.exec_id = exec_id
        pty = fds.get("pty")
        self.master = FdStream(pty) if pty is not None else None
        self.stdin = self.master or _maybe(fds.get("stdin"))
        self.stdout = self.master or _maybe(fds.get("stdout"))
        self.stderr = None if self.master else _maybe(fds.get("stderr"))
        self.exit_status: int | None = None
        self._done = False
        self._exited = asyncio.Event()

    def _ids(self) -> dict[str, Any]:
        return {"container_id": self.container_id, "exec_id": self.exec_id}

    async def write_stdin(self, data: bytes) -> None:
        if self.stdin is None or self.stdin.closed:
            return
        try:
            await self.stdin.write(data)
        except BrokenPipeError:
            # The process stopped reading (exited, or closed its stdin): input goes nowhere, as with kubelet.
            self._close_stdin_fd()

    async def close_stdin(self) -> None:
        if self.stdin is None or self.stdin.closed:
            return
        if self.master is not None:
            with contextlib.suppress(OSError):
                await self.master.write(EOT)
            return
        self._close_stdin_fd()

    def _close_stdin_fd(self) -> None:
        if self.stdin is not None and self.stdin is not self.master:
            self.stdin.close()

    async def read_stdout(self) -> bytes:
        return await _read_to_eof(self.stdout, self.master)

    async def read_stderr(self) -> bytes:
        return await _read_to_eof(self.stderr, None)

    async def resize(self, width: int, height: int) -> None:
        if self.master is None or self.master.closed:
            return
        fcntl.ioctl(self.master.fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    async def wait(self) -> int:
        result = await self.client.call("wait", self._ids(), timeout=None)
        self._exited_with(int(result.get("exit_status", 0)))
        await self._forget()
        return self.exit_status if self.exit_status is not None else 0

    def _exited_with(self, status: int) -> None:
        self.exit_status = status
        self._exited.set()
        # Nobody reads the stdin of an exited process; its output still drains to EOF.
        self._close_stdin_fd()

    async def _forget(self) -> None:
        if not self._done:
            self._done = True
            with contextlib.suppress(errors.NotFound, errors.Unavailable):
                await self.client.call("delete", self._ids())

    async def cancel(self) -> None:
        """The client left: SIGKILL the process, wait for its exit, close everything."""
        try:
            if self.exit_status is None:
                with contextlib.suppress(errors.NotFound, errors.FailedPrecondition, errors.Unavailable):
                    await self.client.call("kill", {**self._ids(), "signal": 9})
                with contextlib.suppress(errors.CriError):
                    result = await self.client.call("wait", self._ids(), timeout=KILL_WAIT_S)
                    self._exited_with(int(result.get("exit_status", 0)))
            await self._forget()
        finally:
            self.close()

    def close(self) -> None:
        for st in (self.stdin, self.stdout, self.stderr):
            if st is not None:
                st.close()


def _maybe(fd: int | None) -> FdStream | None:
    return FdStream(fd) if fd is not None else None


async def _read_to_eof(st: FdStream | None, master: FdStream | None) -> bytes:
    if st is None or st.closed:
        return b""
    data = await st.read()
    if not data and st is not master:
        st.close()  # a pipe at EOF; the master is closed at the end (stdin shares it)
    elif not data:
        st.close()
    return data


class AttachIO:
    """ProcessIO over the shim's attach stream of a running container."""

    def __init__(self, client: ShimClient, container_id: str, stream: AttachStream, *,
                 stdin: bool, stdin_once: bool) -> None:
        self.client = client
        self.container_id = container_id
        self.stream = stream
        self.stdin = stdin
        self.stdin_once = stdin_once
        self.queues: dict[str, asyncio.Queue[bytes]] = {
            "stdout": asyncio.Queue(ATTACH_QUEUE), "stderr": asyncio.Queue(ATTACH_QUEUE)}
        self.exit_status: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        try:
            while (message := await self.stream.next_message()) is not None:
                kind = message.get("event")
                if kind == "output" and message.get("stream") in self.queues:
                    await self.queues[str(message["stream"])].put(base64.b64decode(message.get("data", "")))
                elif kind == "exit":
                    if not self.exit_status.done():
                        self.exit_status.set_result(int(message.get("exit_status", 0)))
                    break
        finally:
            if not self.exit_status.done():
                # The shim went away: nothing proves the container's exit.
                self.exit_status.set_exception(errors.Unavailable(
                    f"attach to container {self.container_id}: the shim closed the stream"))
            for q in self.queues.values():
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(b"")
            await self.stream.close()

    async def write_stdin(self, data: bytes) -> None:
        if not self.stdin:
            return
        with contextlib.suppress(errors.FailedPrecondition):
            await self.client.call("write_stdin", {"container_id": self.container_id,
                                                   "data": base64.b64encode(data).decode()})

    async def close_stdin(self) -> None:
        # The client's stdin ended; the container's stdin closes only for stdin_once
        # (else the next attach may still type into it).
        if self.stdin and self.stdin_once:
            with contextlib.suppress(errors.FailedPrecondition, errors.NotFound):
                await self.client.call("close_stdin", {"container_id": self.container_id})

    async def _read(self, stream: str) -> bytes:
        q = self.queues[stream]
        if self._task.done() and q.empty():
            return b""
        return await q.get()

    async def read_stdout(self) -> bytes:
        return await self._read("stdout")

    async def read_stderr(self) -> bytes:
        return await self._read("stderr")

    async def resize(self, width: int, height: int) -> None:
        with contextlib.suppress(errors.FailedPrecondition):
            await self.client.call("resize_pty", {"container_id": self.container_id,
                                                  "width": width, "height": height})

    async def wait(self) -> int:
        return await asyncio.shield(self.exit_status)

    async def cancel(self) -> None:
        """Detach: the container runs on (the shim applies stdin_once)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.stream.close()


class ShimStreamBackend:
    """StreamBackend for dockyardd: every session goes through the pod's shim."""

    def __init__(self, cri: CriService) -> None:
        self.cri = cri

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool,
                   stdout: bool, stderr: bool) -> ProcessIO:
        c = self.cri.running_container(container_id)
        process = exec_process(container_process(self.cri, c.id, c.bundle), cmd, tty)
        if tty and not any(e.startswith("TERM=") for e in process.get("env", [])):
            # What containerd does for a terminal exec: programs need a TERM to drive it.
            process["env"] = [*process.get("env", []), "TERM=xterm"]
        client = self.cri.shims.client(c.sandbox_id)
        exec_id = "stream-" + secrets.token_hex(8)
        _, fds = await client.call_with_fds("exec", {
            "container_id": c.id, "exec_id": exec_id, "process": process, "tty": tty, "stdin": stdin,
            "stdout": stdout, "stderr": stderr, "io": "fds"})
        return ExecIO(client, c.id, exec_id, fds)

    async def attach(self, container_id: str, *, tty: bool, stdin: bool, stdout: bool,
                     stderr: bool) -> ProcessIO:
        c = self.cri.running_container(container_id)
        config = c.config
        use_stdin = stdin and config.stdin
        client = self.cri.shims.client(c.sandbox_id)
        _, stream = await client.attach({"container_id": c.id, "stdin": use_stdin,
                                         "stdout": stdout, "stderr": stderr})
        return AttachIO(client, c.id, stream, stdin=use_stdin, stdin_once=config.stdin_once)

    async def port_forward(self, sandbox_id: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sandbox = self.cri.ready_sandbox(sandbox_id)
        if not sandbox.netns_path:
            # A host-network pod: its ports are the host's.
            try:
                return await asyncio.open_connection("127.0.0.1", port)
            except OSError as err:
                raise errors.Unavailable(f"cannot connect to 127.0.0.1:{port} on the host: {err.strerror or err}") from err
        return await netns_dial.dial(sandbox.netns_path, port)

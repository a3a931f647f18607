"""A streaming server on a fake, host-side backend, for the streaming tests.

``HostBackend`` runs each "exec" as a real host process (``sh -c`` and
friends) with pipes, or with a pty when tty is asked for; "attach" runs the
container id as a shell command (so a test can attach to something that
prints in a loop); port_forward dials 127.0.0.1:port on the host.  This tests
the server and its protocols; the daemon's real backend goes through the shim.

``StreamingDaemon`` runs the StreamServer in a thread with its own event loop
plus, optionally, a gRPC RuntimeService that serves only Exec, Attach and
PortForward (and Version), so the real crictl can be pointed at it.  Once
dockyardd wires these RPCs, the crictl tests can take the ``dockyardd``
fixture instead; the test bodies stay the same.

Children are registered with the session's subreaper (bundle.SUBREAPER) so
that it never steals their exit status; exits are watched with a pidfd, not
a thread per process, so hundreds of sessions cost no threads.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc

from bundle import SUBREAPER
from dockyard.cri.errors import CriError, NotFound
from dockyard.cri.streaming.server import StreamServer, StreamServerConfig


@dataclass
class Counters:
    opened: dict[str, int] = field(default_factory=dict)
    closed: dict[str, int] = field(default_factory=dict)
    failed: dict[tuple[str, str], int] = field(default_factory=dict)

    def active(self, kind: str) -> int:
        return self.opened.get(kind, 0) - self.closed.get(kind, 0)


class RecordingMetrics:
    def __init__(self) -> None:
        self.c = Counters()

    def opened(self, kind: str) -> None:
        self.c.opened[kind] = self.c.opened.get(kind, 0) + 1

    def closed(self, kind: str) -> None:
        self.c.closed[kind] = self.c.closed.get(kind, 0) + 1

    def failed(self, kind: str, reason: str) -> None:
        self.c.failed[(kind, reason)] = self.c.failed.get((kind, reason), 0) + 1


class HostProcess:
    """ProcessIO over a host child process (pipes or a pty)."""

    def __init__(self, popen: subprocess.Popen[bytes], *, master: int | None, kill_on_cancel: bool,
                 backend: HostBackend) -> None:
        self.popen = popen
        self.master = master
        self.kill_on_cancel = kill_on_cancel
        self.backend = backend
        self.cancelled = False
        self.resizes: list[tuple[int, int]] = []
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pidfd = os.pidfd_open(popen.pid)
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_exit)
        self._out = asyncio.StreamReader()
        self._err = asyncio.StreamReader()
        self._stdin_w: asyncio.StreamWriter | None = None
        self._transports: list[asyncio.BaseTransport] = []

    async def setup(self) -> None:
        loop = asyncio.get_running_loop()
        if self.master is not None:
            out_fd = os.dup(self.master)
            t, _ = await loop.connect_read_pipe(lambda: _PtyReaderProtocol(self._out), os.fdopen(out_fd, "rb", 0))
            self._transports.append(t)
            self._err.feed_eof()
            in_fd = os.dup(self.master)
            wt, wp = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(in_fd, "wb", 0))
            self._transports.append(wt)
            self._stdin_raw = wt
            return
        for pipe, reader in ((self.popen.stdout, self._out), (self.popen.stderr, self._err)):
            if pipe is None:
                reader.feed_eof()
                continue
            t, _ = await loop.connect_read_pipe(lambda r=reader: asyncio.StreamReaderProtocol(r), pipe)  # type: ignore[misc]
            self._transports.append(t)
        if self.popen.stdin is not None:
            wt, _ = await loop.connect_write_pipe(asyncio.Protocol, self.popen.stdin)
            self._transports.append(wt)
            self._stdin_raw = wt

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        with SUBREAPER._lock:
            _, status = os.waitpid(self.popen.pid, 0)
            SUBREAPER._owned.discard(self.popen.pid)
        self.popen.returncode = os.waitstatus_to_exitcode(status)
        code = self.popen.returncode
        self._exit.set_result(code if code >= 0 else 128 - code)
        if self.master is not None:
            # The pty's slave is closed with the process: reads end in EIO.
            pass
        self.backend.live.discard(self)

    async def write_stdin(self, data: bytes) -> None:
        raw = getattr(self, "_stdin_raw", None)
        if raw is not None and not raw.is_closing():
            raw.write(data)

    async def close_stdin(self) -> None:
        raw = getattr(self, "_stdin_raw", None)
        if raw is None:
            return
        if self.master is not None:
            raw.write(b"\x04")   # a tty has no EOF but ^D
        else:
            raw.close()

    async def read_stdout(self) -> bytes:
        data = await self._out.read(64 * 1024)
        if not data:
            self._out_done = True
            self._maybe_release()
        return data

    def _maybe_release(self) -> None:
        # Like a real backend, let go of the stdio once the process is gone
        # and its output drained, without waiting for anyone to ask.
        if getattr(self, "_out_done", False) and self._exit.done():
            self._close_all()

    async def read_stderr(self) -> bytes:
        return await self._err.read(64 * 1024)

    async def resize(self, width: int, height: int) -> None:
        self.resizes.append((width, height))
        if self.master is not None:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    async def wait(self) -> int:
        code = await asyncio.shield(self._exit)
        for t in self._transports:
            if isinstance(t, asyncio.WriteTransport):
                t.close()
        self._maybe_release()
        return code

    async def cancel(self) -> None:
        self.cancelled = True
        self.backend.cancelled.append(self)
        if self.kill_on_cancel and not self._exit.done():
            os.killpg(self.popen.pid, signal.SIGKILL)
        if not self._exit.done():
            await asyncio.shield(self._exit)
        self._close_all()

    def _close_all(self) -> None:
        for t in self._transports:
            t.close()
        if self.master is not None:
            os.close(self.master)
            self.master = None


class _PtyReaderProtocol(asyncio.StreamReaderProtocol):
    """A pty master reports EIO instead of EOF once the slave side is gone."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(None if isinstance(exc, OSError) else exc)


class HostBackend:
    def __init__(self) -> None:
        self.live: set[HostProcess] = set()
        self.cancelled: list[HostProcess] = []
        self.started: list[HostProcess] = []

    async def _spawn(self, argv: list[str], *, tty: bool, stdin: bool, stdout: bool, stderr: bool,
                     kill_on_cancel: bool) -> HostProcess:
        master: int | None = None
        if tty:
            master, slave = pty.openpty()

            def child_tty() -> None:
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

            with SUBREAPER._lock:
                popen = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                         preexec_fn=child_tty, close_fds=True)
                SUBREAPER._owned.add(popen.pid)
            os.close(slave)
        else:
            with SUBREAPER._lock:
                popen = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                                         stderr=subprocess.PIPE if stderr else subprocess.DEVNULL,
                                         start_new_session=True)
                SUBREAPER._owned.add(popen.pid)
        proc = HostProcess(popen, master=master, kill_on_cancel=kill_on_cancel, backend=self)
        # Registered before the first await: the process may exit during setup.
        self.live.add(proc)
        self.started.append(proc)
        await proc.setup()
        return proc

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool,
                   stdout: bool, stderr: bool) -> HostProcess:
        if container_id == "missing":
            raise NotFound(f"container {container_id} not found")
        return await self._spawn(cmd, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr, kill_on_cancel=True)

    async def attach(self, container_id: str, *, tty: bool, stdin: bool, stdout: bool,
                     stderr: bool) -> HostProcess:
        if container_id == "missing":
            raise NotFound(f"container {container_id} not found")
        # The "container" is the shell command in its id; a real attach only
        # detaches on cancel, but a test process must not outlive its test.
        return await self._spawn(["sh", "-c", container_id], tty=tty, stdin=stdin, stdout=stdout,
                                 stderr=stderr, kill_on_cancel=True)

    async def port_forward(self, sandbox_id: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if sandbox_id == "missing":
            raise NotFound(f"sandbox {sandbox_id} not found")
        return await asyncio.open_connection("127.0.0.1", port)


class _RuntimeService(api_pb2_grpc.RuntimeServiceServicer):  # type: ignore[misc]
    """Only what crictl's exec/attach/port-forward call."""

    def __init__(self, daemon: StreamingDaemon) -> None:
        self.daemon = daemon

    def Version(self, request: Any, context: Any) -> Any:
        return api_pb2.VersionResponse(version="0.1.0", runtime_name="dockyard-streaming-test",
                                       runtime_version="0.1.0", runtime_api_version="v1")

    def _call(self, fn: Any, request: Any, context: Any) -> str:
        try:
            return str(self.daemon.call(lambda: fn(request)))
        except CriError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT if type(err).__name__ == "InvalidArgument"
                          else grpc.StatusCode.UNKNOWN, err.message)
            raise

    def Exec(self, request: Any, context: Any) -> Any:
        return api_pb2.ExecResponse(url=self._call(self.daemon.server.get_exec_url, request, context))

    def Attach(self, request: Any, context: Any) -> Any:
        return api_pb2.AttachResponse(url=self._call(self.daemon.server.get_attach_url, request, context))

    def PortForward(self, request: Any, context: Any) -> Any:
        return api_pb2.PortForwardResponse(url=self._call(self.daemon.server.get_portforward_url, request, context))


class _ImageService(api_pb2_grpc.ImageServiceServicer):  # type: ignore[misc]
    """crictl validates that the image API answers before exec; nothing more."""

    def ListImages(self, request: Any, context: Any) -> Any:
        return api_pb2.ListImagesResponse()

    def ImageFsInfo(self, request: Any, context: Any) -> Any:
        return api_pb2.ImageFsInfoResponse()


class StreamingDaemon:
    def __init__(self, tmp: Path, config: StreamServerConfig | None = None) -> None:
        self.backend = HostBackend()
        self.metrics = RecordingMetrics()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stream-server", daemon=True)
        self.server = StreamServer(self.backend, config or StreamServerConfig(), self.metrics)
        self.socket = tmp / "cri.sock"
        self.grpc: Any = None

    def start(self) -> StreamingDaemon:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def call(self, fn: Any) -> Any:
        """Run a plain function on the server's loop thread (the token cache
        lives there)."""
        async def run() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self.grpc is not None:
            self.grpc.stop(None)
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        # A transport's socket closes a loop turn or two after close() (connection_lost is
        # scheduled): let those turns run, or a socket stays open in this process for good
        # once the loop stops, and the fd leak check reports it (seen twice).
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def endpoint(self) -> str:
        """The CRI socket crictl dials; its gRPC server starts on first use.

        Only the tests that run crictl need it, so the others never start
        one: grpcio's sync server can crash the process in ``stop()`` while
        its serving thread polls (grpc/grpc#32481, servers started and
        stopped in a loop), which ended a whole make test run once."""
        if self.grpc is None:
            self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
            api_pb2_grpc.add_RuntimeServiceServicer_to_server(_RuntimeService(self), self.grpc)
            api_pb2_grpc.add_ImageServiceServicer_to_server(_ImageService(), self.grpc)
            self.grpc.add_insecure_port(f"unix://{self.socket}")
            self.grpc.start()
        return f"unix://{self.socket}"


@pytest.fixture
def streaming_daemon(tmp_path: Path) -> Iterator[StreamingDaemon]:
    d = StreamingDaemon(tmp_path).start()
    try:
        yield d
    finally:
        deadline = time.monotonic() + 10
        while d.backend.live and time.monotonic() < deadline:
            time.sleep(0.05)   # exits are noticed on the server's loop
        d.stop()
        leaked = [p.popen.pid for p in d.backend.live]
        assert not leaked, f"backend processes left running: {leaked}"


def crictl_tty_session(argv: list[str]) -> None:
    """Run ``crictl ... exec -it <id> sh`` (``argv``) on a pty of 30x100 and check the
    session: typed input echoes, a resize to 51x133 reaches the shell (stty size),
    and ``exit 3`` ends it, reported as exit code 3."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))

    def child_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    with SUBREAPER._lock:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, preexec_fn=child_tty)
        SUBREAPER._owned.add(proc.pid)
    os.close(slave)
    out = bytearray()

    def read_until(marker: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while marker not in out:
            left = deadline - time.monotonic()
            assert left > 0, f"{marker!r} not seen in {bytes(out)!r}"
            if select.select([master], [], [], left)[0]:
                try:
                    out.extend(os.read(master, 4096))
                except OSError:
                    break
    try:
        os.write(master, b"echo MARK$((40+2))\n")
        read_until(b"MARK42")
        os.write(master, b"stty size\n")
        read_until(b"30 100")
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 51, 133, 0, 0))
        proc.send_signal(signal.SIGWINCH)  # the pty's foreground group may not include crictl
        time.sleep(0.5)
        os.write(master, b"stty size\n")
        read_until(b"51 133")
        os.write(master, b"exit 3\n")
        read_until(b"exit code 3")
        assert proc.wait(20) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        with SUBREAPER._lock:
            SUBREAPER._owned.discard(proc.pid)
        os.close(master)

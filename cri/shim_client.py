"""The daemon's asyncio client of one shim (protocol: api/shim.py).

A ``ShimClient`` holds one request connection.  Requests carry increasing
ids and may be answered out of order (``wait`` answers when the process
exits while later requests are answered at once), so a reader task matches
each response to its waiting future by id.  ``events()`` opens a second
connection that calls ``subscribe`` and yields exit/oom events until that
connection closes; ``call_with_fds`` (``exec`` with ``io: "fds"``) and
``attach`` also use a connection of their own, since what comes back on it
is not a plain answer (fds over SCM_RIGHTS, a stream of output events); reconnecting (and catching up with ``list``) is the job
of cri/shims.py, which knows whether the shim is still alive.

The shim's error codes become the daemon's domain errors here and nowhere
else; a lost connection is ``Unavailable`` naming the pod.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from dockyard.api import shim as proto

from . import errors

log = logging.getLogger("dockyard.cri.shim_client")

_READ_CHUNK = 1 << 16
_MAX_FDS = 8

CODE_ERRORS: dict[str, type[errors.CriError]] = {
    proto.Code.NOT_FOUND: errors.NotFound,
    proto.Code.ALREADY_EXISTS: errors.AlreadyExists,
    proto.Code.INVALID_ARGUMENT: errors.InvalidArgument,
    proto.Code.FAILED_PRECONDITION: errors.FailedPrecondition,
    proto.Code.DEADLINE_EXCEEDED: errors.DeadlineExceeded,
    proto.Code.INTERNAL: errors.Internal,
    proto.Code.UNAVAILABLE: errors.Unavailable,
}


def domain_error(pod_id: str, method: str, err: proto.ShimError) -> errors.CriError:
    cls = CODE_ERRORS.get(err.code, errors.Internal)
    return cls(f"shim of pod {pod_id}: {method}: {err.message}")


class ShimClient:
    def __init__(self, pod_id: str, socket_path: str,
                 observe: Callable[[str, float, bool], None] | None = None) -> None:
        self.pod_id = pod_id
        self.socket_path = socket_path
        self._observe = observe  # (method, seconds, ok) after each call: the runtime call metrics
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._connect_lock = asyncio.Lock()
        self._protocol = 0  # the shim's protocol version, from ping; 0 = not asked on this connection

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self, timeout: float = 5.0) -> None:
        async with self._connect_lock:
            if self.connected:
                return
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(self.socket_path, limit=proto.MAX_FRAME), timeout
                )
            except (OSError, asyncio.TimeoutError) as err:
                raise errors.Unavailable(
                    f"shim of pod {self.pod_id}: cannot connect to {self.socket_path}: {err}"
                ) from err
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_loop(reader), name=f"shim {self.pod_id} reader")

    async def protocol(self) -> int:
        """The protocol version the shim speaks (api/shim.py ``METHOD_SINCE``), asked once per connection:
        a shim started by an older daemon may not know the newer methods."""
        if not self._protocol or not self.connected:
            result = await self.call("ping", timeout=10.0)
            self._protocol = int(result["protocol"])
        return self._protocol

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        frames = proto.FrameBuffer()
        why = "connection closed by the shim"
        try:
            while True:
                data = await reader.read(_READ_CHUNK)
                if not data:
                    break
                for message in frames.feed(data):
                    if proto.is_event(message):
                        continue
                    req_id = message.get("id")
                    future = self._pending.pop(req_id, None) if isinstance(req_id, int) else None
                    if future is not None and not future.done():
                        future.set_result(message)
        except (OSError, proto.ProtocolError) as err:
            why = f"connection to the shim failed: {err}"
        finally:
            self._fail_pending(why)

    def _fail_pending(self, why: str) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        self._protocol = 0
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(errors.Unavailable(f"shim of pod {self.pod_id}: {why}"))

    async def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = 60.0) -> dict[str, Any]:
        """Send a request and wait for its result (domain errors on failure)."""
        if self._observe is None:
            return await self._call(method, params, timeout)
        began, ok = time.monotonic(), False
        try:
            result = await self._call(method, params, timeout)
            ok = True
            return result
        finally:
            self._observe(method, time.monotonic() - began, ok)

    async def _call(self, method: str, params: dict[str, Any] | None, timeout: float | None) -> dict[str, Any]:
        await self.connect()
        assert self._writer is not None
        req_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            self._writer.write(proto.encode(proto.request(req_id, method, params)))
            await self._writer.drain()
            message = await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError as err:  # before OSError: TimeoutError is one since 3.11
            raise errors.DeadlineExceeded(f"shim of pod {self.pod_id}: {method} took longer than {timeout}s") from err
        except OSError as err:
            raise errors.Unavailable(f"shim of pod {self.pod_id}: {method}: {err}") from err
        finally:
            self._pending.pop(req_id, None)
        try:
            _, result = proto.parse_reply(message, method)
        except proto.ShimError as err:
            raise domain_error(self.pod_id, method, err) from err
        return result

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None
        self._fail_pending("client closed")

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Subscribe on a fresh connection; yield events until it closes.

        Raises Unavailable if the connection cannot be made or subscribe fails.
        """
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket_path, limit=proto.MAX_FRAME), 5.0
            )
        except (OSError, asyncio.TimeoutError) as err:
            raise errors.Unavailable(f"shim of pod {self.pod_id}: cannot subscribe: {err}") from err
        frames = proto.FrameBuffer()
        try:
            writer.write(proto.encode(proto.request(0, "subscribe")))
            await writer.drain()
            while True:
                try:
                    data = await reader.read(_READ_CHUNK)
                except OSError:
                    return
                if not data:
                    return
                for message in frames.feed(data):
                    if proto.is_event(message):
                        yield message
                    else:
                        try:
                            proto.parse_reply(message, "subscribe")
                        except proto.ShimError as err:
                            raise domain_error(self.pod_id, "subscribe", err) from err
                        # The subscribe answer: events from here on reach us;
                        # the caller catches up on what happened before.
                        yield {"event": "subscribed"}
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def call_with_fds(self, method: str, params: dict[str, Any],
                            timeout: float = 60.0) -> tuple[dict[str, Any], dict[str, int]]:
        """A request whose answer carries fds (api/shim.py, "Passing fds"), on a connection of its own.

        Returns the result and its fds by name (``result["fds"]``); the caller
        owns them.  On any failure every fd received is closed."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        received: list[int] = []
        try:
            async with asyncio.timeout(timeout):
                await _connect_unix(sock, self.socket_path)
                await loop.sock_sendall(sock, proto.encode(proto.request(1, method, params)))
                frames = proto.FrameBuffer()
                while True:
                    data = await _recv_fds(loop, sock, received)
                    if not data:
                        raise errors.Unavailable(f"shim of pod {self.pod_id}: {method}: connection closed before the answer")
                    for message in frames.feed(data):
                        if proto.is_event(message):
                            continue
                        try:
                            _, result = proto.parse_reply(message, method)
                        except proto.ShimError as err:
                            raise domain_error(self.pod_id, method, err) from err
                        names = [str(n) for n in result.get("fds", [])]
                        if len(received) < len(names):
                            raise errors.Internal(f"shim of pod {self.pod_id}: {method}: answer names fds {names} "
                                                  f"but {len(received)} arrived")
                        handed = dict(zip(names, received))
                        del received[:len(names)]
                        return result, handed
        except TimeoutError as err:
            raise errors.DeadlineExceeded(f"shim of pod {self.pod_id}: {method} took longer than {timeout}s") from err
        except OSError as err:
            raise errors.Unavailable(f"shim of pod {self.pod_id}: {method}: {err}") from err
        finally:
            for fd in received:
                os.close(fd)
            sock.close()

    async def attach(self, params: dict[str, Any], timeout: float = 10.0) -> tuple[dict[str, Any], AttachStream]:
        """``attach`` on a connection of its own: the result and the stream of output/exit events."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            await asyncio.wait_for(_connect_unix(sock, self.socket_path), timeout)
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=proto.MAX_FRAME)
        except (OSError, asyncio.TimeoutError) as err:
            sock.close()
            raise errors.Unavailable(f"shim of pod {self.pod_id}: cannot attach: {err}") from err
        stream = AttachStream(self.pod_id, reader, writer)
        try:
            writer.write(proto.encode(proto.request(1, "attach", params)))
            await writer.drain()
            async with asyncio.timeout(timeout):
                message = await stream.next_message()
            if message is None:
                raise errors.Unavailable(f"shim of pod {self.pod_id}: attach: connection closed before the answer")
            try:
                _, result = proto.parse_reply(message, "attach")
            except proto.ShimError as err:
                raise domain_error(self.pod_id, "attach", err) from err
        except BaseException:
            await stream.close()
            raise
        return result, stream


class AttachStream:
    """The events of one ``attach`` connection; closing it detaches."""

    def __init__(self, pod_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.pod_id = pod_id
        self._reader = reader
        self._writer = writer
        self._frames = proto.FrameBuffer()
        self._inbox: list[dict[str, Any]] = []

    async def next_message(self) -> dict[str, Any] | None:
        """The next frame, or None once the shim closed the connection."""
        while not self._inbox:
            try:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    return None
                self._inbox += self._frames.feed(data)
            except (OSError, proto.ProtocolError):
                return None
        return self._inbox.pop(0)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def _connect_unix(sock: socket.socket, path: str) -> None:
    """connect(2) a non-blocking unix stream socket, waiting while the listener's backlog is full.

    A unix socket's connect does not complete in the background as TCP's does:
    EAGAIN means the backlog is full (the shim is busy running the runtime) and
    the socket stays unconnected, so it is retried; loop.sock_connect would wait
    for writability and then take the socket for connected."""
    delay = 0.005
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)


async def _recv_fds(loop: asyncio.AbstractEventLoop, sock: socket.socket, into: list[int]) -> bytes:
    """One recvmsg on a non-blocking unix socket; fds that came with it are appended to ``into``
    (close-on-exec from the start: MSG_CMSG_CLOEXEC, the daemon forks children)."""
    while True:
        try:
            data, ancdata, flags, _ = sock.recvmsg(_READ_CHUNK, socket.CMSG_SPACE(_MAX_FDS * 4),
                                                   socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()

            def wake() -> None:
                if not ready.done():
                    ready.set_result(None)
            loop.add_reader(sock.fileno(), wake)
            try:
                await ready
            finally:
                loop.remove_reader(sock.fileno())
            continue
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                into.extend(fds)
        if flags & socket.MSG_CTRUNC:
            raise errors.Internal("shim sent more fds than expected (control data truncated)")
        return data

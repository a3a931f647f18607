"""The daemon's asyncio client of one shim (protocol: api/shim.py).

A ``ShimClient`` holds one request connection.  Requests carry increasing
ids and may be answered out of order (``wait`` answers when the process
exits while later requests are answered at once), so a reader task matches
each response to its waiting future by id.  ``events()`` opens a second
connection that calls ``subscribe`` and yields exit/oom events until that
connection closes; reconnecting (and catching up with ``list``) is the job
of cri/shims.py, which knows whether the shim is still alive.

The shim's error codes become the daemon's domain errors here and nowhere
else; a lost connection is ``Unavailable`` naming the pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

from dockyard.api import shim as proto

from . import errors

log = logging.getLogger("dockyard.cri.shim_client")

_READ_CHUNK = 1 << 16

CODE_ERRORS: dict[proto.Code, type[errors.CriError]] = {
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
    def __init__(self, pod_id: str, socket_path: str) -> None:
        self.pod_id = pod_id
        self.socket_path = socket_path
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._connect_lock = asyncio.Lock()

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
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(errors.Unavailable(f"shim of pod {self.pod_id}: {why}"))

    async def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = 60.0) -> dict[str, Any]:
        """Send a request and wait for its result (domain errors on failure)."""
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
            _, result = proto.parse_reply(message)
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
                            proto.parse_reply(message)
                        except proto.ShimError as err:
                            raise domain_error(self.pod_id, "subscribe", err) from err
                        # The subscribe answer: events from here on reach us;
                        # the caller catches up on what happened before.
                        yield {"event": "subscribed"}
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

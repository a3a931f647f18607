"""Copies between a client's channels and a process's stdio, for any transport.

Both SPDY streams and WebSocket channels are reduced to ``Source``s (client ->
process) and ``Sink``s (process -> client).  The session ends when the process
has exited AND its stdout/stderr reached EOF and were written out (so no
output is lost), or earlier when the client goes away: then the backend's
``cancel`` runs (an exec process is killed, an attach only detaches) and every
copying task is cancelled, so nothing outlives the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from .backend import ProcessIO
from .remotecommand import ResizeDecoder, ResizeError

log = logging.getLogger(__name__)


class Source(Protocol):
    async def read(self) -> bytes: ...   # b"" at EOF


class Sink(Protocol):
    async def write(self, data: bytes) -> None: ...
    async def close(self) -> None: ...


class ClientGone(Exception):
    """The client disconnected before the process finished."""


async def _copy_in(src: Source, proc: ProcessIO) -> None:
    while data := await src.read():
        await proc.write_stdin(data)
    await proc.close_stdin()


async def _copy_out(read: Callable[[], Awaitable[bytes]], sink: Sink) -> None:
    while data := await read():
        await sink.write(data)
    await sink.close()


async def _drain(read: Callable[[], Awaitable[bytes]]) -> None:
    # An output the client did not ask for is still read so that the process
    # never blocks on a full pipe.
    while await read():
        pass


async def _resizes(src: Source, proc: ProcessIO) -> None:
    decoder = ResizeDecoder()
    while data := await src.read():
        try:
            sizes = decoder.feed(data)
        except ResizeError as err:
            log.info("ignoring the rest of a bad resize stream: %s", err)
            while await src.read():
                pass
            return
        for width, height in sizes:
            await proc.resize(width, height)


async def pump(proc: ProcessIO, *, stdin: Source | None, stdout: Sink | None, stderr: Sink | None,
               resize: Source | None, gone: asyncio.Event) -> int:
    """Run the session; the exit code, or ClientGone (after cancel)."""
    side: list[asyncio.Task[None]] = []
    if stdin is not None:
        side.append(asyncio.ensure_future(_copy_in(stdin, proc)))
    if resize is not None:
        side.append(asyncio.ensure_future(_resizes(resize, proc)))
    outputs = [
        asyncio.ensure_future(_copy_out(proc.read_stdout, stdout) if stdout else _drain(proc.read_stdout)),
        asyncio.ensure_future(_copy_out(proc.read_stderr, stderr) if stderr else _drain(proc.read_stderr)),
    ]
    waiter = asyncio.ensure_future(proc.wait())
    finished: asyncio.Future[list[object]] = asyncio.ensure_future(asyncio.gather(waiter, *outputs))
    gone_task = asyncio.ensure_future(gone.wait())
    try:
        first: list[asyncio.Future[Any]] = [finished, gone_task]
        done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if finished in done:
            finished.result()   # re-raise a copy failure
            return waiter.result()
        await proc.cancel()
        raise ClientGone("client disconnected")
    except (ConnectionError, OSError) as err:
        # A write to a vanished client: same as going away.
        await proc.cancel()
        raise ClientGone(f"client connection failed: {err}") from err
    except asyncio.CancelledError:
        # The server is shutting down: no session outlives it.
        await asyncio.shield(proc.cancel())
        raise
    finally:
        everything: list[asyncio.Future[Any]] = [*side, *outputs, waiter, finished, gone_task]
        for task in everything:
            task.cancel()
        await asyncio.gather(*side, *outputs, waiter, finished, gone_task, return_exceptions=True)

"""The server's port-forward copy (server._forward_one) closes the pod
connection however it ends, in particular when the session's cleanup cancels
it at any of its awaits, those in its own ``finally`` included.  A cancellation
landing in the finally once left the pod's socket open in the daemon."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dockyard.cri.streaming import portforward
from dockyard.cri.streaming.server import StreamServer


class FakeStream:
    """The SPDY stream's side: every call yields to the loop once, as the real ones may."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.reset = False
        self.written: list[bytes] = []

    async def read(self) -> bytes:
        await asyncio.sleep(0)
        return self.chunks.pop(0) if self.chunks else b""

    async def write(self, data: bytes) -> None:
        await asyncio.sleep(0)
        self.written.append(data)

    async def close(self) -> None:
        await asyncio.sleep(0)


class FakePodWriter:
    def __init__(self) -> None:
        self.closed = False

    def write(self, _data: bytes) -> None:
        return None

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        await asyncio.sleep(0)


class Backend:
    def __init__(self) -> None:
        self.writers: list[FakePodWriter] = []

    async def port_forward(self, _sandbox_id: str, _port: int) -> tuple[asyncio.StreamReader, Any]:
        await asyncio.sleep(0)
        reader = asyncio.StreamReader()
        reader.feed_data(b"HTTP/1.0 200 OK\r\n\r\npong")
        reader.feed_eof()
        writer = FakePodWriter()
        self.writers.append(writer)
        return reader, writer


async def cancelled_after(turns: int) -> tuple[list[FakePodWriter], bool]:
    backend = Backend()
    server = StreamServer(backend)  # type: ignore[arg-type]
    req = portforward.ForwardRequest("0", 80, data_stream=3, error_stream=1)
    task = asyncio.ensure_future(server._forward_one("s1", req, FakeStream([b"GET / HTTP/1.0\r\n\r\n"]),  # type: ignore[arg-type]
                                                     FakeStream([])))
    for _ in range(turns):
        await asyncio.sleep(0)
    finished_before = task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return backend.writers, finished_before


@pytest.mark.parametrize("turns", range(40))
def test_pod_connection_is_closed_wherever_the_cancellation_lands(turns: int) -> None:
    writers, _ = asyncio.run(cancelled_after(turns))
    assert all(w.closed for w in writers), f"cancelled after {turns} loop turns: pod connection left open"


def test_the_cases_cover_a_copy_that_runs_to_its_end() -> None:
    """Some case must have let the copy finish, or the table would not reach its finally's awaits."""
    writers, finished = asyncio.run(cancelled_after(39))
    assert finished and writers and writers[0].closed

"""The blob-read speed trick (cri/image/registry/read_sizes.py) still reaches
what it relies on in httpcore, anyio and asyncio, over a real loopback socket."""

from __future__ import annotations

import asyncio
import hashlib

import anyio.streams.tls
import httpcore
import httpx

from dockyard.cri.image.registry import read_sizes

BODY = bytes(range(256)) * (4 << 12)  # 4 MiB


async def _serve_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
    await writer.drain()
    writer.close()


async def _get_body() -> tuple[bool, int, str]:
    server = await asyncio.start_server(_serve_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient() as client, client.stream("GET", f"http://127.0.0.1:{port}/blob") as response:
            enlarged = read_sizes.enlarge_receives(response.extensions)
            transport = response.extensions["network_stream"]._stream._transport
            digest = hashlib.sha256()
            async for chunk in response.aiter_bytes():
                digest.update(chunk)
            return enlarged, transport.max_size, digest.hexdigest()
    finally:
        server.close()
        await server.wait_closed()


def test_a_plain_connection_receives_a_megabyte_at_a_time_and_reads_the_body_whole() -> None:
    read_sizes.enlarge_http_reads()
    assert httpcore.AsyncHTTP11Connection.READ_NUM_BYTES == read_sizes.BODY_READ
    enlarged, max_size, digest = asyncio.run(_get_body())
    assert enlarged
    assert max_size == read_sizes.BODY_READ
    assert digest == hashlib.sha256(BODY).hexdigest()


def test_a_response_without_a_socket_is_left_alone() -> None:
    """httpx's mock transport (the unit tests' puller) has no network stream."""
    assert read_sizes.enlarge_receives({}) is False
    assert read_sizes.enlarge_receives({"network_stream": object()}) is False


def test_anyio_tls_streams_still_name_the_stream_below_them() -> None:
    """Under TLS the transport is found through ``transport_stream``."""
    assert "transport_stream" in anyio.streams.tls.TLSStream.__dataclass_fields__

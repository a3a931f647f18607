"""The CRI socket's own gRPC server (cri/grpc_server) against grpc's real
client (the C core, as crictl's and kubelet's Go client are real HTTP/2
peers too; those run against the daemon in the e2e suites).

The server runs on an event loop in a thread of the test, with CRI's
generated registration code and small handlers; each test checks one rule
of gRPC over HTTP/2 that a CRI client depends on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import hpack
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc
from dockyard.cri.grpc_server import frames, messages
from dockyard.cri.grpc_server import server as server_module
from dockyard.cri.grpc_server.server import Server

MAX = 1 << 20  # the server's message limit in these tests


class Loop:
    """An event loop in a thread; ``run`` waits for a coroutine's result there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Handlers:
    """A RuntimeService whose methods the tests set; the others are UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.cancelled: asyncio.Event | None = None
        self.release: asyncio.Event | None = None
        self.unary: dict[str, Callable[..., Any]] = {}
        self.started = threading.Event()

    async def hang(self, request: Any, context: Any) -> Any:
        """A handler that runs until it is cancelled, and says when it starts and ends."""
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            assert self.cancelled is not None
            self.cancelled.set()

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__.get("unary", {}):
            return self.unary[name]
        raise AttributeError(name)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Loop, Handlers, Server, str]]:
    loop = Loop()
    handlers = Handlers()
    path = str(tmp_path / "cri.sock")

    async def start() -> Server:
        handlers.cancelled = asyncio.Event()
        handlers.release = asyncio.Event()
        server = Server(max_receive_message_length=MAX, max_send_message_length=4 * MAX)
        servicer = api_pb2_grpc.RuntimeServiceServicer()
        for name in ("Version", "ContainerStatus", "ListContainers", "ExecSync", "GetContainerEvents"):
            setattr(servicer, name, _dispatch(handlers, name))
        api_pb2_grpc.add_RuntimeServiceServicer_to_server(servicer, server)
        server.add_insecure_port(f"unix://{path}")
        await server.start()
        return server

    server = loop.run(start())
    try:
        yield loop, handlers, server, path
    finally:
        loop.run(server.stop(0))
        loop.close()
        # The listener and every accepted connection are sockets on our
        # path (/proc/net/unix names it for both): none may stay open.
        left = _sockets_on(path) & set(os.listdir("/proc/self/fd"))
        assert not left, f"server left sockets on {path} open: fds {sorted(left)}"


def _sockets_on(path: str) -> set[str]:
    """Our fds that are unix sockets bound to ``path``."""
    inodes = set()
    with open("/proc/net/unix") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path:
                inodes.add(fields[6])
    fds = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            fds.add(fd)
    return fds


def _dispatch(handlers: Handlers, name: str) -> Any:
    if name == "GetContainerEvents":
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            async for item in handlers.unary[name](request, context):
                yield item
        return stream

    async def unary(request: Any, context: Any) -> Any:
        return await handlers.unary[name](request, context)
    return unary


def stub(path: str, **options: Any) -> tuple[grpc.Channel, Any]:
    channel = grpc.insecure_channel(f"unix://{path}", options=list(options.items()))
    return channel, api_pb2_grpc.RuntimeServiceStub(channel)


def test_unary_call_answers_and_the_connection_is_reused(served: Any) -> None:
    """A unary call gets its response; many in sequence and in parallel on one
    connection all get theirs (stream ids, HPACK's table and windows carry)."""
    _, handlers, _, path = served

    async def version(request: api_pb2.VersionRequest, context: Any) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(version=request.version, runtime_name="dockyard")

    handlers.unary["Version"] = version
    channel, rt = stub(path)
    with channel:
        for i in range(200):
            assert rt.Version(api_pb2.VersionRequest(version=f"v{i}")).version == f"v{i}"
        futures = [rt.Version.future(api_pb2.VersionRequest(version=f"p{i}")) for i in range(100)]
        assert [f.result(timeout=30).version for f in futures] == [f"p{i}" for i in range(100)]


def test_answers_leave_while_another_call_on_the_connection_waits(served: Any) -> None:
    """With a call still in flight on the connection, the others' answers wait
    for the end of the loop's turn (to share one write), and no longer."""
    _, handlers, _, path = served

    async def version(request: api_pb2.VersionRequest, context: Any) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(version=request.version)

    handlers.unary["ContainerStatus"] = handlers.hang
    handlers.unary["Version"] = version
    channel, rt = stub(path)
    with channel:
        hung = rt.ContainerStatus.future(api_pb2.ContainerStatusRequest(container_id="x"))
        assert handlers.started.wait(30)
        for i in range(20):
            assert rt.Version(api_pb2.VersionRequest(version=f"v{i}"), timeout=30).version == f"v{i}"
        futures = [rt.Version.future(api_pb2.VersionRequest(version=f"p{i}")) for i in range(50)]
        assert [f.result(timeout=30).version for f in futures] == [f"p{i}" for i in range(50)]
        assert not hung.done()
        hung.cancel()


def test_call_cancelled_before_its_first_step_is_answered(served: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call whose task is cancelled before it first runs (the server stops
    between the read that brought it and the task's turn) never runs its
    handler, and the client still gets CANCELLED from the server."""
    _, handlers, _, path = served
    ran = threading.Event()

    async def version(request: Any, context: Any) -> Any:
        ran.set()
        return api_pb2.VersionResponse(version="ran")

    original = server_module._Protocol._start

    def start_then_cancel(self: Any, request: Any) -> None:
        original(self, request)
        self.cancel_calls()

    monkeypatch.setattr(server_module._Protocol, "_start", start_then_cancel)
    handlers.unary["Version"] = version
    channel, rt = stub(path)
    with channel, pytest.raises(grpc.RpcError) as err:
        rt.Version(api_pb2.VersionRequest(), timeout=30)
    assert err.value.code() == grpc.StatusCode.CANCELLED
    assert not ran.is_set()


def test_abort_carries_code_and_message_with_any_characters(served: Any) -> None:
    """context.abort's code and message reach the client intact, whatever the
    message holds (grpc-message is percent-encoded UTF-8)."""
    _, handlers, _, path = served
    message = "container \"x\" not found: 100% gone — ünïcode\nsecond line"

    async def status(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.NOT_FOUND, message)

    handlers.unary["ContainerStatus"] = status
    channel, rt = stub(path)
    with channel, pytest.raises(grpc.RpcError) as err:
        rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id="x"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == message


def test_unknown_method_and_unexpected_exception(served: Any) -> None:
    """A method nobody registered is UNIMPLEMENTED, naming it; a handler's
    unexpected exception is UNKNOWN, and the connection still serves."""
    _, handlers, _, path = served

    async def broken(request: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    async def version(request: Any, context: Any) -> Any:
        return api_pb2.VersionResponse(version="ok")

    handlers.unary["ListContainers"] = broken
    handlers.unary["Version"] = version
    channel, rt = stub(path)
    with channel:
        with pytest.raises(grpc.RpcError) as err:
            rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id="p"))
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary("/runtime.v1.NoSuchService/Nothing")(b"")
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "/runtime.v1.NoSuchService/Nothing" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            rt.ListContainers(api_pb2.ListContainersRequest())
        assert err.value.code() == grpc.StatusCode.UNKNOWN
        assert "boom" in err.value.details()
        assert rt.Version(api_pb2.VersionRequest()).version == "ok"


def test_deadline_cancels_the_handler(served: Any) -> None:
    """A call past its grpc-timeout ends DEADLINE_EXCEEDED at the client and
    its handler is cancelled on the server (nothing runs on for nobody)."""
    loop, handlers, _, path = served

    handlers.unary["ContainerStatus"] = handlers.hang
    channel, rt = stub(path)
    with channel, pytest.raises(grpc.RpcError) as err:
        rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id="x"), timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    loop.run(asyncio.wait_for(handlers.cancelled.wait(), 30))


def _raw_call(sock: socket.socket, encoder: Any, stream_id: int, path: str, timeout: str, body: bytes) -> None:
    """A unary request as raw HTTP/2 frames: a client that sends grpc-timeout but,
    unlike grpc's, never enforces the deadline itself (nor resets the stream)."""
    fields = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
              ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", timeout)]
    sock.sendall(frames.frame(frames.HEADERS, frames.END_HEADERS, stream_id, encoder.encode(fields))
                 + frames.frame(frames.DATA, frames.END_STREAM, stream_id, messages.frame_message(body)))


def _statuses(sock: socket.socket, decoder: Any, count: int) -> dict[int, str]:
    """Read frames until ``count`` streams have ended; each one's grpc-status."""
    found: dict[int, str] = {}
    buf = b""
    while len(found) < count:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection; statuses so far {found}"
        buf += chunk
        while len(buf) >= frames.HEADER_SIZE:
            length, kind, flags, stream_id = frames.parse_header(buf, 0)
            if len(buf) < frames.HEADER_SIZE + length:
                break
            payload, buf = buf[frames.HEADER_SIZE:frames.HEADER_SIZE + length], buf[frames.HEADER_SIZE + length:]
            if kind == frames.HEADERS:
                assert flags & frames.END_HEADERS  # these blocks are small
                headers = dict(decoder.decode(payload))
                if flags & frames.END_STREAM:
                    found[stream_id] = headers["grpc-status"]
    return found


def test_server_enforces_each_deadline_itself(served: Any) -> None:
    """The server ends a call at its own deadline even when the client does
    not: a call with a later deadline that came first, and one with an
    earlier deadline that came second, each end DEADLINE_EXCEEDED (4) and
    their handlers are cancelled."""
    loop, handlers, _, path = served
    cancelled: list[str] = []

    async def hang(request: Any, context: Any) -> Any:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.append(request.container_id)

    handlers.unary["ContainerStatus"] = hang
    encoder, decoder = hpack.Encoder(), hpack.Decoder()
    method = "/runtime.v1.RuntimeService/ContainerStatus"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(path)
        sock.sendall(frames.PREFACE + frames.settings({}))
        _raw_call(sock, encoder, 1, method, "1500m",
                  api_pb2.ContainerStatusRequest(container_id="later").SerializeToString())
        _raw_call(sock, encoder, 3, method, "100m",
                  api_pb2.ContainerStatusRequest(container_id="sooner").SerializeToString())
        assert _statuses(sock, decoder, 2) == {1: "4", 3: "4"}
    assert sorted(cancelled) == ["later", "sooner"]


def test_client_cancel_cancels_the_handler(served: Any) -> None:
    """A client that cancels its call (RST_STREAM) gets its handler cancelled."""
    loop, handlers, _, path = served
    handlers.unary["ContainerStatus"] = handlers.hang
    channel, rt = stub(path)
    with channel:
        future = rt.ContainerStatus.future(api_pb2.ContainerStatusRequest(container_id="x"))
        assert handlers.started.wait(30)
        future.cancel()
        loop.run(asyncio.wait_for(handlers.cancelled.wait(), 30))
        with pytest.raises(grpc.FutureCancelledError):
            future.result()


def test_big_messages_cross_the_flow_control_windows(served: Any) -> None:
    """Requests and responses many times the initial 64 KiB windows arrive
    intact, both ways, compressed or not."""
    _, handlers, _, path = served

    async def exec_sync(request: api_pb2.ExecSyncRequest, context: Any) -> api_pb2.ExecSyncResponse:
        blob = "".join(request.cmd).encode()
        return api_pb2.ExecSyncResponse(stdout=blob * 3, stderr=blob[::-1])

    handlers.unary["ExecSync"] = exec_sync
    blob = os.urandom(300_000).hex()  # 600 KB of text
    channel, rt = stub(path)
    with channel:
        for compression in (None, grpc.Compression.Gzip, grpc.Compression.Deflate):
            reply = rt.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=[blob]), compression=compression)
            assert reply.stdout == blob.encode() * 3
            assert reply.stderr == blob.encode()[::-1]


def test_request_over_the_limit_is_resource_exhausted(served: Any) -> None:
    """A request bigger than the server's limit is RESOURCE_EXHAUSTED, saying
    so, and the connection goes on serving."""
    _, handlers, _, path = served

    async def exec_sync(request: Any, context: Any) -> Any:
        return api_pb2.ExecSyncResponse(exit_code=7)

    handlers.unary["ExecSync"] = exec_sync
    channel, rt = stub(path)
    with channel:
        with pytest.raises(grpc.RpcError) as err:
            rt.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=["x" * (2 * MAX)]))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in err.value.details()
        assert rt.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=["small"])).exit_code == 7


def test_response_over_the_limit_is_resource_exhausted(served: Any) -> None:
    """A response bigger than the server's send limit is not sent: the call
    ends RESOURCE_EXHAUSTED ("Sent message larger than max")."""
    _, handlers, _, path = served

    async def exec_sync(request: Any, context: Any) -> Any:
        return api_pb2.ExecSyncResponse(stdout=b"x" * (5 * MAX))

    handlers.unary["ExecSync"] = exec_sync
    channel, rt = stub(path, **{"grpc.max_receive_message_length": 64 * MAX})
    with channel, pytest.raises(grpc.RpcError) as err:
        rt.ExecSync(api_pb2.ExecSyncRequest(container_id="c", cmd=["x"]))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Sent message larger than max" in err.value.details()


def test_server_stream_sends_headers_items_and_end(served: Any) -> None:
    """A server stream: headers as soon as the handler sends them (before any
    item), then every item in order, however big, then an OK status; a
    client that cancels gets the handler's generator closed."""
    loop, handlers, _, path = served
    big = "y" * 200_000

    async def events(request: Any, context: Any) -> AsyncIterator[Any]:
        await context.send_initial_metadata(())
        if request == api_pb2.GetEventsRequest():
            await handlers.release.wait()
        for i in range(40):
            yield api_pb2.ContainerEventResponse(container_id=f"c{i}", pod_sandbox_status=api_pb2.PodSandboxStatus(id=big))
        if request == api_pb2.GetEventsRequest():
            try:
                await asyncio.Event().wait()
            finally:
                handlers.cancelled.set()

    handlers.unary["GetContainerEvents"] = events
    channel, rt = stub(path)
    with channel:
        call = rt.GetContainerEvents(api_pb2.GetEventsRequest())
        call.initial_metadata()  # returns once the headers are in: no item was sent yet
        loop.loop.call_soon_threadsafe(handlers.release.set)
        got = [next(call) for _ in range(40)]
        assert [e.container_id for e in got] == [f"c{i}" for i in range(40)]
        assert all(e.pod_sandbox_status.id == big for e in got)
        call.cancel()
        loop.run(asyncio.wait_for(handlers.cancelled.wait(), 30))


def test_stop_lets_calls_in_flight_finish_then_refuses(served: Any) -> None:
    """stop(grace): a call in flight still gets its answer, the socket stops
    accepting, and no connection is left open on the server."""
    loop, handlers, server, path = served
    started = threading.Event()

    async def slow(request: Any, context: Any) -> Any:
        started.set()
        await handlers.release.wait()
        return api_pb2.VersionResponse(version="late")

    handlers.unary["Version"] = slow
    channel, rt = stub(path)
    with channel:
        future = rt.Version.future(api_pb2.VersionRequest())
        assert started.wait(30)
        stopping = asyncio.run_coroutine_threadsafe(server.stop(30), loop.loop)
        loop.run(asyncio.sleep(0))
        loop.loop.call_soon_threadsafe(handlers.release.set)
        assert future.result(timeout=30).version == "late"
        stopping.result(30)
    assert not server.connections
    with socket.socket(socket.AF_UNIX) as sock, pytest.raises(OSError):
        sock.connect(path)


def test_stop_cancels_calls_after_the_grace(served: Any) -> None:
    """A call still running when the grace ends is cancelled (its handler
    sees CancelledError) and the client is told, not left waiting."""
    loop, handlers, server, path = served
    handlers.unary["ContainerStatus"] = handlers.hang
    channel, rt = stub(path)
    with channel:
        future = rt.ContainerStatus.future(api_pb2.ContainerStatusRequest(container_id="x"))
        assert handlers.started.wait(30)
        loop.run(server.stop(0.05))
        assert handlers.cancelled.is_set()
        with pytest.raises(grpc.RpcError) as err:
            future.result(timeout=30)
        assert err.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)


def test_garbage_instead_of_http2_closes_the_connection(served: Any) -> None:
    """A peer that does not speak HTTP/2 gets a GOAWAY and a closed socket,
    and the server goes on serving others."""
    _, handlers, _, path = served

    async def version(request: Any, context: Any) -> Any:
        return api_pb2.VersionResponse(version="ok")

    handlers.unary["Version"] = version
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(30)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert b"preface" in data  # the GOAWAY's debug text
    channel, rt = stub(path)
    with channel:
        assert rt.Version(api_pb2.VersionRequest()).version == "ok"


def test_parallel_clients(served: Any) -> None:
    """Many connections at once, each with calls in flight, all answered."""
    _, handlers, _, path = served

    async def version(request: Any, context: Any) -> Any:
        await asyncio.sleep(0)
        return api_pb2.VersionResponse(version=request.version)

    handlers.unary["Version"] = version

    def client(n: int) -> list[str]:
        channel, rt = stub(path)
        with channel:
            return [rt.Version(api_pb2.VersionRequest(version=f"{n}-{i}")).version for i in range(20)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client, range(8)))
    assert results == [[f"{n}-{i}" for i in range(20)] for n in range(8)]

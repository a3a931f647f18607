"""dockyardd's streaming server: the asyncio edge of Exec, Attach, PortForward.

Flow: the CRI RPC validates its request (requests.py), the daemon checks the
container or sandbox, and ``StreamServer.get_*_url`` caches the request under
a fresh single-use token.  The client then opens ``/<kind>/<token>`` with an
HTTP upgrade; the token is consumed (unknown, used or expired: 404), the
transport (SPDY/3.1 or WebSocket) and subprotocol are negotiated, and the
session runs against the ``StreamBackend`` until the process exits or the
client goes away.  One task per connection; a connection's failure, whatever
it is, ends that connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import CriError
from . import portforward, remotecommand, spdy
from .backend import ProcessIO, StreamBackend
from .httpupgrade import BadRequest, Kind, RequestReader, Transport, UpgradeRequest, interpret, ws_accept
from .requests import AttachParams, ExecParams, PortForwardParams, validate_attach, validate_exec, validate_port_forward
from .spdy_session import SpdySession, SpdyStream, TcpPipe
from .stdio_pump import ClientGone, Sink, Source, pump
from .tokens import DEFAULT_TTL, TokenCache
from .websocket import (ERROR, EXEC_PROTOCOLS, RESIZE, STDERR, STDIN, STDOUT, ChannelMux, MessagePipe, WsPipe,
                        negotiate as ws_negotiate)

log = logging.getLogger(__name__)

Params = ExecParams | AttachParams | PortForwardParams


@dataclass(frozen=True, slots=True)
class StreamServerConfig:
    address: str = "127.0.0.1"
    port: int = 0                       # 0: an ephemeral port
    tls_cert_file: str = ""             # both set: serve HTTPS
    tls_key_file: str = ""
    token_ttl: float = DEFAULT_TTL
    stream_creation_timeout: float = 30.0   # kubelet's value: all streams must be open by then
    request_timeout: float = 15.0           # for the HTTP request head
    idle_timeout: float = 4 * 3600.0        # port-forward sessions with no traffic


class SessionMetrics(Protocol):
    """Hooks for 'sessions active/opened/failed by kind' (kind: exec, attach, portforward)."""

    def opened(self, kind: str) -> None: ...
    def closed(self, kind: str) -> None: ...
    def failed(self, kind: str, reason: str) -> None: ...


class NoMetrics:
    def opened(self, kind: str) -> None:
        return None

    def closed(self, kind: str) -> None:
        return None

    def failed(self, kind: str, reason: str) -> None:
        return None


class SessionFailed(Exception):
    """A session that ended in an error; ``reason`` labels the metric."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StreamServer:
    def __init__(self, backend: StreamBackend, config: StreamServerConfig = StreamServerConfig(),
                 metrics: SessionMetrics | None = None) -> None:
        self.backend = backend
        self.config = config
        self.metrics: SessionMetrics = metrics or NoMetrics()
        self.tokens: TokenCache[tuple[Kind, Params]] = TokenCache(config.token_ttl)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.base_url = ""

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        ctx: ssl.SSLContext | None = None
        if self.config.tls_cert_file or self.config.tls_key_file:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.config.tls_cert_file, self.config.tls_key_file)
        self._server = await asyncio.start_server(self._on_connection, self.config.address,
                                                  self.config.port, ssl=ctx)
        host, port = self._server.sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"{'https' if ctx else 'http'}://{shown}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # -- the CRI side --------------------------------------------------------
    def get_exec_url(self, req: object) -> str:
        params = validate_exec(req, list(getattr(req, "cmd")))  # type: ignore[arg-type]
        return self._url(Kind.EXEC, params)

    def get_attach_url(self, req: object) -> str:
        return self._url(Kind.ATTACH, validate_attach(req))  # type: ignore[arg-type]

    def get_portforward_url(self, req: object) -> str:
        params = validate_port_forward(getattr(req, "pod_sandbox_id"), list(getattr(req, "port")))
        return self._url(Kind.PORT_FORWARD, params)

    def _url(self, kind: Kind, params: Params) -> str:
        if not self.base_url:
            raise RuntimeError("the stream server is not started")
        return f"{self.base_url}/{kind.value}/{self.tokens.insert((kind, params))}"

    # -- connections -----------------------------------------------------------
    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            raise
        except (ConnectionError, OSError) as err:
            log.info("streaming connection lost: %s", err)
        except Exception:
            # One connection's bug must not take the server down; it is logged
            # with its traceback and the connection is dropped.
            log.exception("streaming connection failed")
        finally:
            self._connections.discard(task)
            if not writer.is_closing():
                writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rr = RequestReader()
        try:
            async with asyncio.timeout(self.config.request_timeout):
                request = None
                while request is None:
                    request = rr.feed(await reader.read(16 * 1024))
            up = interpret(request)
        except TimeoutError:
            writer.write(rr.refuse(408, "request head not received in time"))
            return
        except BadRequest as err:
            writer.write(rr.refuse(err.status, err.message))
            return
        cached = self.tokens.consume(up.token)
        if cached is None or cached[0] is not up.kind:
            self.metrics.failed(up.kind.value, "bad_token")
            writer.write(rr.refuse(404, "unknown, used or expired streaming token"))
            return
        kind, params = cached
        self.metrics.opened(kind.value)
        try:
            if isinstance(params, PortForwardParams):
                await self._port_forward(rr, up, params, reader, writer)
            else:
                await self._stdio(rr, up, params, reader, writer)
        except SessionFailed as err:
            log.info("%s session failed: %s", kind.value, err)
            self.metrics.failed(kind.value, err.reason)
        except (ConnectionError, OSError):
            self.metrics.failed(kind.value, "connection")
            raise
        finally:
            self.metrics.closed(kind.value)

    # -- exec / attach -----------------------------------------------------------
    async def _start(self, params: ExecParams | AttachParams) -> ProcessIO:
        if isinstance(params, ExecParams):
            return await self.backend.exec(params.container_id, list(params.cmd), tty=params.tty,
                                           stdin=params.stdin, stdout=params.stdout, stderr=params.stderr)
        return await self.backend.attach(params.container_id, tty=params.tty, stdin=params.stdin,
                                         stdout=params.stdout, stderr=params.stderr)

    async def _stdio(self, rr: RequestReader, up: UpgradeRequest, params: ExecParams | AttachParams,
                     reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opts = remotecommand.StdioOptions(params.stdin, params.stdout, params.stderr, params.tty)
        if up.transport is Transport.WEBSOCKET:
            await self._stdio_ws(rr, up, params, opts, reader, writer)
            return
        try:
            version = remotecommand.negotiate(up.protocols)
        except remotecommand.NegotiationError as err:
            writer.write(rr.refuse(403, str(err), (("x-accepted-stream-protocol-versions",
                                                    ", ".join(remotecommand.SPDY_VERSIONS)),)))
            raise SessionFailed("protocol", str(err)) from err
        head, trailing = rr.accept([("connection", "Upgrade"), ("upgrade", "SPDY/3.1"),
                                    ("x-stream-protocol-version", version)])
        writer.write(head)
        session = SpdySession(TcpPipe(reader, writer), trailing)
        run = asyncio.ensure_future(session.run())
        try:
            streams = await self._collect(session, version, opts)
            await self._run_stdio(params, version, streams, session.closed,
                                  lambda data: self._finish_spdy(streams, data))
            if session.error:
                raise SessionFailed("protocol", session.error)
        finally:
            await session.close()
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)

    async def _collect(self, session: SpdySession, version: str,
                       opts: remotecommand.StdioOptions) -> dict[remotecommand.StreamType, SpdyStream]:
        want = remotecommand.StreamSet.for_request(version, opts)
        got: dict[remotecommand.StreamType, SpdyStream] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.stream_creation_timeout
        while not want.complete:
            st = await session.accept(max(0.0, deadline - loop.time()))
            if st is None:
                why = session.error or f"streams {want.missing()} not opened in time"
                raise SessionFailed("protocol" if session.error else "stream_timeout", why)
            try:
                kind = want.add(spdy.header_value(st.headers, remotecommand.STREAM_TYPE_HEADER), st.stream_id)
            except remotecommand.StreamSetError as err:
                session.reject(st, spdy.RstStatus.PROTOCOL_ERROR)
                await session.flush()
                raise SessionFailed("protocol", str(err)) from err
            got[kind] = st
        return got

    async def _finish_spdy(self, streams: dict[remotecommand.StreamType, SpdyStream], status: bytes) -> None:
        err = streams[remotecommand.StreamType.ERROR]
        with contextlib.suppress(ConnectionError):
            await err.write(status)
            await err.close()
            for st in streams.values():
                await st.close()

    async def _run_stdio(self, params: ExecParams | AttachParams, version: str,
                         io: dict[remotecommand.StreamType, SpdyStream] | dict[remotecommand.StreamType, object],
                         gone: asyncio.Event, finish: Callable[[bytes], Awaitable[None]]) -> None:
        T = remotecommand.StreamType
        try:
            proc = await self._start(params)
        except CriError as err:
            await finish(remotecommand.failure_status(version, err.message))
            raise SessionFailed("backend", err.message) from err
        try:
            code = await pump(proc,
                              stdin=_as_source(io.get(T.STDIN)), stdout=_as_sink(io.get(T.STDOUT)),
                              stderr=_as_sink(io.get(T.STDERR)), resize=_as_source(io.get(T.RESIZE)),
                              gone=gone)
        except ClientGone as err:
            raise SessionFailed("client_gone", str(err)) from err
        await finish(remotecommand.exit_status(version, code))

    async def _stdio_ws(self, rr: RequestReader, up: UpgradeRequest, params: ExecParams | AttachParams,
                        opts: remotecommand.StdioOptions, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        proto = ws_negotiate(up.protocols, EXEC_PROTOCOLS)
        if proto is None:
            msg = str(remotecommand.NegotiationError(up.protocols, EXEC_PROTOCOLS))
            writer.write(rr.refuse(403, msg))
            raise SessionFailed("protocol", msg)
        head, trailing = rr.accept([("upgrade", "websocket"), ("connection", "Upgrade"),
                                    ("sec-websocket-accept", ws_accept(up.ws_key)),
                                    ("sec-websocket-protocol", proto)])
        writer.write(head)
        ws = WsPipe(reader, writer, trailing)
        inputs = tuple(ch for ch, on in ((STDIN, opts.stdin), (RESIZE, opts.tty)) if on)
        mux = ChannelMux(ws, v5=proto.startswith("v5."), inputs=inputs)
        run = asyncio.ensure_future(mux.run())
        T = remotecommand.StreamType
        io: dict[remotecommand.StreamType, object] = {}
        if opts.stdin:
            io[T.STDIN] = mux.source(STDIN)
        if opts.tty:
            io[T.RESIZE] = mux.source(RESIZE)
        if opts.stdout:
            io[T.STDOUT] = mux.sink(STDOUT)
        if opts.stderr and not opts.tty:
            io[T.STDERR] = mux.sink(STDERR)

        async def finish(status: bytes) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                if status:
                    await mux.sink(ERROR).write(status)
        try:
            await self._run_stdio(params, proto, io, mux.gone, finish)
        finally:
            # The mux's read loop must stop before shutdown reads the close reply.
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            await ws.shutdown()

    # -- port-forward --------------------------------------------------------------
    async def _port_forward(self, rr: RequestReader, up: UpgradeRequest, params: PortForwardParams,
                            reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if up.transport is Transport.WEBSOCKET:
            if portforward.TUNNEL_PROTOCOL not in up.protocols:
                msg = (f"unsupported port-forward WebSocket protocols {up.protocols}; "
                       f"this server speaks {portforward.TUNNEL_PROTOCOL}")
                writer.write(rr.refuse(403, msg))
                raise SessionFailed("protocol", msg)
            head, trailing = rr.accept([("upgrade", "websocket"), ("connection", "Upgrade"),
                                        ("sec-websocket-accept", ws_accept(up.ws_key)),
                                        ("sec-websocket-protocol", portforward.TUNNEL_PROTOCOL)])
            writer.write(head)
            session = SpdySession(MessagePipe(WsPipe(reader, writer, trailing)))
        else:
            if portforward.PROTOCOL not in up.protocols:
                msg = f"unable to negotiate a stream protocol: client offers {up.protocols}; server supports {portforward.PROTOCOL}"
                writer.write(rr.refuse(403, msg, (("x-accepted-stream-protocol-versions", portforward.PROTOCOL),)))
                raise SessionFailed("protocol", msg)
            head, trailing = rr.accept([("connection", "Upgrade"), ("upgrade", "SPDY/3.1"),
                                        ("x-stream-protocol-version", portforward.PROTOCOL)])
            writer.write(head)
            session = SpdySession(TcpPipe(reader, writer), trailing)
        await self._forward_session(session, params)

    async def _forward_session(self, session: SpdySession, params: PortForwardParams) -> None:
        run = asyncio.ensure_future(session.run())
        pairs = portforward.RequestPairs(params.ports)
        streams: dict[int, SpdyStream] = {}
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                st = await session.accept(self.config.idle_timeout)
                if st is None:
                    break
                streams[st.stream_id] = st
                try:
                    req = pairs.add(st.stream_id, st.headers)
                except portforward.PortForwardError as err:
                    err_stream = self._error_stream_of(st, streams)
                    if err_stream is not None:
                        with contextlib.suppress(ConnectionError):
                            await err_stream.write(str(err).encode())
                            await err_stream.close()
                    session.reject(st, spdy.RstStatus.PROTOCOL_ERROR)
                    await session.flush()
                    continue
                if req is not None:
                    t = asyncio.ensure_future(self._forward_one(params.sandbox_id, req,
                                                                streams.pop(req.data_stream),
                                                                streams.pop(req.error_stream)))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
            if session.error:
                raise SessionFailed("protocol", session.error)
        finally:
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await session.close()
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)

    @staticmethod
    def _error_stream_of(st: SpdyStream, streams: dict[int, SpdyStream]) -> SpdyStream | None:
        if spdy.header_value(st.headers, "streamtype") == "error":
            return st
        rid = spdy.header_value(st.headers, "requestid")
        for other in streams.values():
            if other is not st and spdy.header_value(other.headers, "requestid") == rid and \
                    spdy.header_value(other.headers, "streamtype") == "error":
                return other
        return None

    async def _forward_one(self, sandbox_id: str, req: portforward.ForwardRequest,
                           data: SpdyStream, error: SpdyStream) -> None:
        try:
            pod_reader, pod_writer = await self.backend.port_forward(sandbox_id, req.port)
        except (CriError, OSError) as err:
            detail = err.message if isinstance(err, CriError) else str(err)
            with contextlib.suppress(ConnectionError):
                await error.write(portforward.dial_error_message(req.port, sandbox_id, Exception(detail)).encode())
                await error.close()
                await data.close()
            return

        async def to_pod() -> None:
            while chunk := await data.read():
                pod_writer.write(chunk)
                await pod_writer.drain()
            if data.reset:
                # The client dropped the stream: nobody will read the pod's side.
                down_task.cancel()
            elif pod_writer.can_write_eof():
                pod_writer.write_eof()

        async def from_pod() -> None:
            while chunk := await pod_reader.read(64 * 1024):
                await data.write(chunk)
            await data.close()

        up_task = asyncio.ensure_future(to_pod())
        down_task = asyncio.ensure_future(from_pod())
        try:
            await asyncio.wait({up_task, down_task}, return_when=asyncio.ALL_COMPLETED)
            failure = next((t.exception() for t in (up_task, down_task)
                            if not t.cancelled() and t.exception() is not None), None)
            if failure is not None and not data.reset:
                with contextlib.suppress(ConnectionError):
                    await error.write(f"error copying port {req.port}: {failure}".encode())
            with contextlib.suppress(ConnectionError):
                await error.close()
        finally:
            # Everything that must happen comes before the first await: the
            # session's cleanup cancels this task, and a cancellation that
            # lands on an await in here would skip the rest (it left the pod
            # connection open, seen in the fd leak check).
            up_task.cancel()
            down_task.cancel()
            pod_writer.close()
            await asyncio.gather(up_task, down_task, return_exceptions=True)
            with contextlib.suppress(ConnectionError, OSError):
                await pod_writer.wait_closed()


def _as_source(obj: object) -> Source | None:
    return obj  # type: ignore[return-value]


def _as_sink(obj: object) -> Sink | None:
    return obj  # type: ignore[return-value]

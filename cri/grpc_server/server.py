"""The CRI socket's gRPC server: HTTP/2 connections (connection.py) served on
asyncio, each call run as a task of the method handler grpcio's generated
code registers.

Speed trick, measured (this VM, 2026-12-07, a constant ContainerStatus
answered 3000 times in sequence to a Go gRPC client as kubelet's, the
server's CPU from /proc): grpcio's asyncio server costs 255-360 us of CPU per
call, containerd answers a whole status call in 80-113 us, a bare asyncio
HTTP/2 prototype cost 57-77 us, and this server 90-117 us (while a CI run
loaded the VM; the prototype 93-103 in the same minutes).  grpcio's per-call
cost was the floor under dockyardd's steady-state CPU at 110 pods, so the
CRI socket, where kubelet polls every pod every second, gets this server:
dockyardd's ContainerStatus went from 310 us to 167 (bench/percall.py) and
its steady-state CPU at 110 pods from 1.08x containerd's to 0.44-0.46x
(bench/density.py).  The admin and cAdvisor sockets keep grpcio's (they
take client streams, and nobody polls them).

What a polled call costs now (2026-12-08, bench/percall.py's client with
kubelet's deadlines, idle VM): a profile of ListPodSandbox put half of its
77 us of CPU in the kernel (epoll_wait, send, recv) and about a third of the rest
in asyncio.  A timer per call for its deadline and a done callback per task
had added a third loop turn to every call; with one timer per connection
(``_deadline_timer``) and none per task, dockyardd's CPU per PodSandboxStatus
went from 126-156 us to 96-104 and per ListPodSandbox from 126-136 to
116-120.  What would cut the next turn, running a handler's first step
without a task, needs eager tasks (Python 3.12); the handlers' asyncio.timeout
needs a current task.

It serves what CRI needs, unary and server-streaming calls over cleartext
HTTP/2 on a unix socket, and takes handlers the way grpcio's server does
(``add_generic_rpc_handlers``, ``add_registered_method_handlers``), so the
same generated registration code works on either.  A handler's context
offers ``abort`` and ``send_initial_metadata``, the two calls dockyardd's
handlers make, and ``set_code``/``set_details``, which grpc's generated base
servicer uses for a method nobody implemented.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from . import messages
from .connection import (
    Connection,
    ConnectionFailed,
    Request,
    RequestTooLarge,
    StreamReset,
    WindowOpened,
)

log = logging.getLogger("dockyard.cri.grpc_server")

# Response bytes a server stream may have waiting for the client's window
# before it stops taking items from its handler.
STREAM_BACKLOG = 1 << 20


def code_number(code: Any) -> int:
    """A grpc.StatusCode (its value is ``(number, name)``) or a plain number."""
    return code if isinstance(code, int) else int(code.value[0])


class AbortError(Exception):
    """Raised by ``CallContext.abort``: the call ends with this status."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _MethodDetails:
    """What a generic handler's ``service`` is asked with (grpc.HandlerCallDetails)."""

    __slots__ = ("invocation_metadata", "method")

    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata: tuple[Any, ...] = ()


class CallContext:
    """The part of grpc.aio.ServicerContext that dockyardd's handlers use."""

    __slots__ = ("_headers", "_protocol", "_stream_id", "code", "details")

    def __init__(self, protocol: _Protocol, stream_id: int, headers: Mapping[str, str]) -> None:
        self._protocol = protocol
        self._stream_id = stream_id
        self._headers = headers
        self.code: int | None = None  # set_code's, used when the handler ends
        self.details = ""

    async def abort(self, code: Any, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        raise AbortError(code_number(code), details)

    async def send_initial_metadata(self, initial_metadata: Any = ()) -> None:
        self._protocol.conn.send_headers(self._stream_id)
        self._protocol.flush()

    def set_code(self, code: Any) -> None:
        self.code = code_number(code)

    def set_details(self, details: str) -> None:
        self.details = details

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return tuple((k, v) for k, v in self._headers.items() if not k.startswith(":"))


class _Call:
    __slots__ = ("deadline", "expired", "started", "stream_id", "task")

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.task: asyncio.Task[None] | None = None
        self.deadline: float | None = None  # the loop's clock
        self.expired = False
        # Set by the task's first step: a task cancelled before it never runs
        # its coroutine, so whoever cancels it answers the call instead.
        self.started = False


# recv_into's buffer: reading into a kept buffer spares asyncio's default
# 256 KiB allocation per read (a mmap and munmap each, in a profile).
READ_BUFFER = 64 * 1024


class _Protocol(asyncio.BufferedProtocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.conn = Connection(max_body=server.max_receive + 5)
        self.calls: dict[int, _Call] = {}
        self.transport: asyncio.Transport | None = None
        self._window: asyncio.Future[None] | None = None
        self._read = bytearray(READ_BUFFER)
        self._flush_scheduled = False
        # One timer for the connection, at its calls' earliest deadline, not
        # one per call: kubelet gives nearly every call a deadline (2 minutes)
        # and nearly every call ends long before it, so a timer per call was
        # made and cancelled for nothing.
        self._deadline_timer: asyncio.TimerHandle | None = None

    # --- the transport's callbacks -----------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.conn.closed = True
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        for call in list(self.calls.values()):
            self._cancel(call)
        self._wake_writers()

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._read)

    def buffer_updated(self, nbytes: int) -> None:
        started = False
        for event in self.conn.receive(bytes(self._read[:nbytes])):
            if isinstance(event, Request):
                self._start(event)
                started = True
            elif isinstance(event, StreamReset):
                call = self.calls.pop(event.stream_id, None)
                if call is not None:
                    self._cancel(call)
            elif isinstance(event, WindowOpened):
                self._wake_writers()
            elif isinstance(event, RequestTooLarge):
                self.conn.end(event.stream_id, messages.RESOURCE_EXHAUSTED,
                              f"received message larger than max ({event.size - 5} vs. {self.server.max_receive})")
            elif isinstance(event, ConnectionFailed):
                log.info("closing a CRI connection: %s", event.reason)
        if self.conn.closed:
            self.flush()
            if self.transport is not None:
                self.transport.close()
        elif started:
            # The calls' tasks run next and most answer in their first step;
            # what this read queued (a PING's ACK, a WINDOW_UPDATE) goes out
            # with their answers, in one write, unless nothing else flushed.
            self._schedule_flush()
        else:
            self.flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # --- calls ------------------------------------------------------------------

    def _start(self, request: Request) -> None:
        sid, headers = request.stream_id, request.headers
        path = headers.get(":path", "")
        handler = self.server.lookup(path)
        if handler is None:
            self.conn.end(sid, messages.UNIMPLEMENTED, f"Method not found: {path}")
            return
        if handler.request_streaming:
            self.conn.end(sid, messages.UNIMPLEMENTED, f"{path} takes a stream of requests, which this socket does not serve")
            return
        try:
            message = messages.one_message(request.body, headers.get("grpc-encoding"), self.server.max_receive)
        except messages.BadRequest as err:
            self.conn.end(sid, err.code, err.message)
            return
        try:
            parsed = handler.request_deserializer(message) if handler.request_deserializer else message
        except Exception as err:  # noqa: BLE001  # protobuf's DecodeError, or whatever a deserializer raises
            self.conn.end(sid, messages.INTERNAL, f"could not parse the request of {path}: {err}")
            return
        call = _Call(sid)
        context = CallContext(self, sid, headers)
        if handler.response_streaming:
            coro = self._serve_stream(call, handler, parsed, context)
        else:
            coro = self._serve_unary(call, handler, parsed, context)
        self.calls[sid] = call
        call.task = asyncio.get_running_loop().create_task(coro)
        timeout = headers.get("grpc-timeout")
        if timeout is not None:
            seconds = messages.parse_timeout(timeout)
            if seconds is not None:
                call.deadline = asyncio.get_running_loop().time() + seconds
                timer = self._deadline_timer
                if timer is None or call.deadline < timer.when():
                    self._arm(call.deadline)

    async def _serve_unary(self, call: _Call, handler: Any, request: Any, context: CallContext) -> None:
        call.started = True
        try:
            response = await handler.unary_unary(request, context)
            payload = handler.response_serializer(response) if handler.response_serializer else response
        except BaseException as err:  # noqa: BLE001  # every way a call ends is answered (or, cancelled, let go)
            self._failed(call, err, context)
            return
        if context.code:  # set_code with an error, then a return: grpc sends the status alone
            self._end(call, context.code, context.details)
            return
        if len(payload) > self.server.max_send:
            self._end(call, messages.RESOURCE_EXHAUSTED,
                      f"Sent message larger than max ({len(payload)} vs. {self.server.max_send})")
            return
        self.conn.send_message(call.stream_id, payload)
        self._end(call, messages.OK, "")

    async def _serve_stream(self, call: _Call, handler: Any, request: Any, context: CallContext) -> None:
        call.started = True
        sid = call.stream_id
        serialize = handler.response_serializer
        try:
            async for item in handler.unary_stream(request, context):
                payload = serialize(item) if serialize else item
                if len(payload) > self.server.max_send:
                    self._end(call, messages.RESOURCE_EXHAUSTED,
                              f"Sent message larger than max ({len(payload)} vs. {self.server.max_send})")
                    return
                self.conn.send_message(sid, payload)
                self.flush()
                while self.conn.pending_bytes(sid) > STREAM_BACKLOG and not self.conn.closed:
                    await self._writable()
        except BaseException as err:  # noqa: BLE001  # as in _serve_unary
            self._failed(call, err, context)
            return
        self._end(call, context.code or messages.OK, context.details)

    def _failed(self, call: _Call, err: BaseException, context: CallContext) -> None:
        if isinstance(err, AbortError):
            self._end(call, err.code, err.details)
        elif isinstance(err, asyncio.CancelledError):
            if call.expired:
                self._end(call, messages.DEADLINE_EXCEEDED, "Deadline Exceeded")
            else:  # the client reset the stream or left, or the server is stopping
                self._end(call, messages.CANCELLED, "Cancelled")
        elif isinstance(err, Exception) and context.code:
            # grpc's generated base servicer: set_code(UNIMPLEMENTED), then raise
            self._end(call, context.code, context.details)
        elif isinstance(err, Exception):
            log.error("call on stream %d failed outside the RPC wrapper", call.stream_id, exc_info=err)
            self._end(call, messages.UNKNOWN, f"Unexpected {type(err).__name__}: {err}")
        else:  # KeyboardInterrupt, SystemExit: not the call's to swallow
            self._end(call, messages.CANCELLED, "Cancelled")
            raise err

    def _end(self, call: _Call, code: int, message: str) -> None:
        self.calls.pop(call.stream_id, None)
        self.conn.end(call.stream_id, code, message)
        if self.calls:
            # Calls still in flight on this connection may answer in this
            # same loop iteration (a client's burst arrives in one read):
            # their answers then leave in one write.
            self._schedule_flush()
        else:
            self.flush()

    def _arm(self, when: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_timer = asyncio.get_running_loop().call_at(when, self._expire_due)

    def _expire_due(self) -> None:
        """Expire the calls whose deadline has come; re-arm for the next one."""
        self._deadline_timer = None
        now = asyncio.get_running_loop().time()
        following: float | None = None
        for call in list(self.calls.values()):
            if call.deadline is None or call.expired:
                continue
            if call.deadline <= now:
                self._expire(call)
            elif following is None or call.deadline < following:
                following = call.deadline
        if following is not None:
            self._arm(following)

    def _expire(self, call: _Call) -> None:
        call.expired = True
        if call.task is not None:
            call.task.cancel()
        if not call.started:
            self._end(call, messages.DEADLINE_EXCEEDED, "Deadline Exceeded")

    def _cancel(self, call: _Call, *, answer: bool = False) -> None:
        """Cancel a call's task; ``answer`` ends a call whose task never
        started with CANCELLED (a started one answers for itself)."""
        if call.task is not None:
            call.task.cancel()
        if answer and not call.started:
            self._end(call, messages.CANCELLED, "Cancelled")

    def cancel_calls(self) -> None:
        """Cancel every call on this connection, answering those not yet started."""
        for call in list(self.calls.values()):
            self._cancel(call, answer=True)

    async def _writable(self) -> None:
        if self._window is None:
            self._window = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._window)

    def _wake_writers(self) -> None:
        if self._window is not None:
            if not self._window.done():
                self._window.set_result(None)
            self._window = None

    def tasks(self) -> list[asyncio.Task[None]]:
        return [call.task for call in self.calls.values() if call.task is not None]

    def goaway(self) -> None:
        self.conn.goaway()
        self.flush()


class Server:
    """A subset of grpc.aio.Server: register handlers, bind unix sockets, start, stop."""

    def __init__(self, *, max_receive_message_length: int, max_send_message_length: int) -> None:
        self.max_receive = max_receive_message_length
        self.max_send = max_send_message_length
        self.connections: set[_Protocol] = set()
        self._methods: dict[str, Any] = {}
        self._generic: list[Any] = []
        self._sockets: list[socket.socket] = []
        self._listeners: list[asyncio.AbstractServer] = []

    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        for name, handler in handlers.items():
            self._methods[f"/{service}/{name}"] = handler

    def lookup(self, path: str) -> Any:
        handler = self._methods.get(path)
        if handler is None:
            for generic in self._generic:
                handler = generic.service(_MethodDetails(path))
                if handler is not None:
                    self._methods[path] = handler  # only paths that exist are kept
                    break
        return handler

    def add_insecure_port(self, address: str) -> int:
        """Bind ``unix://PATH`` (or ``unix:PATH``) now, under the caller's umask."""
        for prefix in ("unix://", "unix:"):
            if address.startswith(prefix):
                path = address[len(prefix):]
                break
        else:
            raise ValueError(f"{address}: this server binds unix sockets only (unix://PATH)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
        except OSError:
            sock.close()
            raise
        self._sockets.append(sock)
        return 1

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            self._listeners.append(await loop.create_unix_server(lambda: _Protocol(self), sock=sock, backlog=1024))
        self._sockets.clear()

    async def stop(self, grace: float | None) -> None:
        """Refuse new connections and streams; let open calls finish for up to
        ``grace`` seconds, then cancel them and close the connections."""
        for listener in self._listeners:
            listener.close()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()
        for protocol in list(self.connections):
            protocol.goaway()
        tasks = [task for protocol in self.connections for task in protocol.tasks()]
        if tasks and grace:
            await asyncio.wait(tasks, timeout=grace)
        for protocol in list(self.connections):
            protocol.cancel_calls()
        tasks = [task for protocol in self.connections for task in protocol.tasks()]
        if tasks:
            await asyncio.wait(tasks)
        for protocol in list(self.connections):
            if protocol.transport is not None:
                protocol.transport.close()
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                await listener.wait_closed()
        self._listeners.clear()

"""The one wrapper every CRI RPC passes through.

It (1) answers UNAVAILABLE until startup recovery has finished, (2) logs each
call with method, duration and code (never the request: a PullImageRequest
carries registry credentials), (3) records the RPC metrics and (4) turns the
daemon's typed errors into gRPC codes with ``CODE_TABLE`` -- the only place in
the daemon that knows gRPC codes.  An exception outside the CriError family
is a bug: it becomes INTERNAL and is logged with its traceback.

Handlers are plain coroutines ``request -> response``; they never see the
gRPC context, so they can be unit-tested without a server.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, Protocol

import grpc  # type: ignore[import-untyped]  # grpcio ships no stubs; types-grpcio is not a dependency

from dockyard.cri import errors

log = logging.getLogger("dockyard.cri.rpc")

Handler = Callable[[Any], Awaitable[Any]]
GrpcHandler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
StreamHandler = Callable[[Any], AsyncIterator[Any]]
GrpcStreamHandler = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]

# Domain error -> gRPC code.  Checked in order, so a class must come before
# any of its bases (only CriError itself is a base here).
CODE_TABLE: tuple[tuple[type[errors.CriError], grpc.StatusCode], ...] = (
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Internal, grpc.StatusCode.INTERNAL),
    (errors.Cancelled, grpc.StatusCode.CANCELLED),
    (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
)
_BY_NAME: dict[str, grpc.StatusCode] = {cls.__name__: code for cls, code in CODE_TABLE}


def grpc_code(err: errors.CriError) -> grpc.StatusCode:
    """The gRPC code of a domain error (a PullError by its ``code`` group)."""
    if isinstance(err, errors.PullError):
        return _BY_NAME.get(err.code, grpc.StatusCode.UNKNOWN)
    for cls, code in CODE_TABLE:
        if isinstance(err, cls):
            return code
    return grpc.StatusCode.UNKNOWN


class RpcMetrics(Protocol):
    def rpc_done(self, method: str, grpc_code: str, seconds: float) -> None: ...


class Readiness:
    """Set once startup recovery is done; until then every RPC is UNAVAILABLE."""

    def __init__(self) -> None:
        self._ready = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def set_ready(self) -> None:
        self._ready.set()


class _Abort(Exception):
    """Carries a code and message from the classifier to context.abort."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _classify(method: str, err: BaseException) -> _Abort:
    if isinstance(err, errors.CriError):
        return _Abort(grpc_code(err), errors.shorten(err.message, MAX_MESSAGE))
    if isinstance(err, asyncio.CancelledError):
        return _Abort(grpc.StatusCode.CANCELLED, f"{method} cancelled")
    text = errors.shorten(f"{type(err).__name__}: {err}", MAX_MESSAGE)
    # The frames, and the message cut as in the status (not exc_info, which
    # would print the exception's whole text).
    log.error("%s: internal error: %s\n%s", method, text, "".join(traceback.format_tb(err.__traceback__)).rstrip())
    return _Abort(grpc.StatusCode.INTERNAL, f"{method}: internal error: {text}")


# The longest status message (and so log line) one call can produce.  Errors
# cut each value they echo already (errors.shorten); this bounds what several
# values, or a message built elsewhere, add up to.  A hostile request once
# put 1 MiB into one status and one log line.
MAX_MESSAGE = 1024


class Instrument:
    def __init__(self, readiness: Readiness, metrics: RpcMetrics) -> None:
        self.readiness = readiness
        self.metrics = metrics

    def _done(self, method: str, start: float, code: grpc.StatusCode, message: str) -> None:
        # Recorded before the answer leaves (context.abort sends the status
        # at once): a client that reads /metrics right after its call sees it.
        seconds = time.monotonic() - start
        self.metrics.rpc_done(method, code.name, seconds)
        if code == grpc.StatusCode.OK:
            log.debug("%s ok in %.3fs", method, seconds)
        else:
            log.info("%s %s in %.3fs: %s", method, code.name, seconds, message)

    def _require_ready(self, method: str) -> None:
        if not self.readiness.ready:
            raise errors.Unavailable(f"dockyardd is starting (recovery not finished); retry {method}")

    def _cancelled(self, method: str, start: float, err: asyncio.CancelledError) -> None:
        # The client went away or the server is stopping: there is nobody
        # to answer, so record it and let the cancel proceed.
        self._done(method, start, grpc.StatusCode.CANCELLED, _classify(method, err).message)

    async def _failed(self, method: str, start: float, err: Exception, context: grpc.aio.ServicerContext) -> NoReturn:
        abort = _classify(method, err)  # every failure is classified, none swallowed
        self._done(method, start, abort.code, abort.message)
        await _abort(context, abort)

    # One call of ``method``: gated on readiness, recorded and logged once,
    # every failure mapped to its status.  Written out in each wrapper, not
    # as an async context manager: kubelet polls unary calls, and entering and
    # leaving the manager took a few percent of a status call's CPU in a
    # profile of bench/percall.py.

    def wrap(self, method: str, handler: Handler) -> GrpcHandler:
        """A unary handler (or one taking a stream of requests) behind the wrapper."""

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.monotonic()
            try:
                self._require_ready(method)
                response = await handler(request)
            except asyncio.CancelledError as err:
                self._cancelled(method, start, err)
                raise
            except Exception as err:  # noqa: BLE001  # none swallowed: _failed answers its status
                await self._failed(method, start, err, context)
            self._done(method, start, grpc.StatusCode.OK, "")
            return response

        call.__name__ = method
        return call

    def wrap_stream(self, method: str, handler: StreamHandler) -> GrpcStreamHandler:
        """A handler answering with a stream of responses, behind the same wrapper."""

        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            start = time.monotonic()
            try:
                self._require_ready(method)
                async for item in handler(request):
                    yield item
            except asyncio.CancelledError as err:
                self._cancelled(method, start, err)
                raise
            except Exception as err:  # noqa: BLE001  # none swallowed: _failed answers its status
                await self._failed(method, start, err, context)
            self._done(method, start, grpc.StatusCode.OK, "")

        call.__name__ = method
        return call


async def _abort(context: grpc.aio.ServicerContext, abort: _Abort) -> NoReturn:
    await context.abort(abort.code, abort.message)
    raise AssertionError("context.abort returned")  # abort always raises

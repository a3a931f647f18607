"""The instrumented RPC wrapper: readiness gate, error table, metrics, logs."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from dockyard.cri import errors
from dockyard.cri.metrics import Metrics
from dockyard.cri.server.instrument import CODE_TABLE, Instrument, Readiness, grpc_code


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class FakeContext:
    """Stands in for grpc.aio.ServicerContext: abort raises, like the real one."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)


def make(ready: bool = True) -> tuple[Instrument, Metrics]:
    readiness = Readiness()
    if ready:
        readiness.set_ready()
    metrics = Metrics()
    return Instrument(readiness, metrics), metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_unavailable_until_ready() -> None:
    """Before recovery finishes every RPC is UNAVAILABLE and the handler never runs."""
    instrument, metrics = make(ready=False)
    called = []

    async def handler(request: Any) -> str:
        called.append(request)
        return "answer"

    wrapped = instrument.wrap("ListImages", handler)
    with pytest.raises(Aborted) as info:
        run(wrapped("req", FakeContext()))
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert "ListImages" in info.value.details
    assert called == []
    assert sample(metrics, "dockyard_grpc_server_errors_total", method="ListImages", grpc_code="UNAVAILABLE") == 1
    instrument.readiness.set_ready()
    assert run(wrapped("req", FakeContext())) == "answer"
    assert called == ["req"]


# Every domain error class (PullError carries its own code).
DOMAIN_ERRORS = sorted(
    (obj for obj in vars(errors).values()
     if isinstance(obj, type) and issubclass(obj, errors.CriError) and obj not in (errors.CriError, errors.PullError)),
    key=lambda cls: cls.__name__)


def code_named_like(cls: type[errors.CriError]) -> grpc.StatusCode:
    """The gRPC code a domain error is named after: NotFound -> NOT_FOUND."""
    return grpc.StatusCode[re.sub(r"(?<=[a-z])(?=[A-Z])", "_", cls.__name__).upper()]


@pytest.mark.parametrize("cls", DOMAIN_ERRORS, ids=lambda cls: cls.__name__)
def test_error_table(cls: type[errors.CriError]) -> None:
    """Each domain error class maps to the gRPC code it is named after and keeps its message."""
    code = code_named_like(cls)
    instrument, metrics = make()

    async def handler(request: Any) -> Any:
        raise cls("image docker.io/library/nope:latest")

    with pytest.raises(Aborted) as info:
        run(instrument.wrap("ImageStatus", handler)(None, FakeContext()))
    assert info.value.code == code
    assert info.value.details == "image docker.io/library/nope:latest"
    assert sample(metrics, "dockyard_grpc_server_handled_total", method="ImageStatus", grpc_code=code.name) == 1


def test_table_covers_every_error_class() -> None:
    """No CriError subclass is left out of the one table."""
    mapped = {cls for cls, _ in CODE_TABLE}
    assert set(DOMAIN_ERRORS) == mapped


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("not_found", grpc.StatusCode.NOT_FOUND),
        ("unauthorized", grpc.StatusCode.UNAUTHENTICATED),
        ("digest_mismatch", grpc.StatusCode.INVALID_ARGUMENT),
        ("bad_media_type", grpc.StatusCode.INVALID_ARGUMENT),
        ("bad_layer", grpc.StatusCode.INVALID_ARGUMENT),
        ("registry_error", grpc.StatusCode.UNAVAILABLE),
        ("timeout", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("no_progress", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("cancelled", grpc.StatusCode.CANCELLED),
    ],
)
def test_pull_errors_map_by_code_group(reason: str, code: grpc.StatusCode) -> None:
    """A PullError's gRPC code comes from its code group, not its class."""
    assert grpc_code(errors.PullError("pull x", reason=reason)) == code


def test_unknown_exception_is_internal_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A non-domain exception is a bug: INTERNAL, with the message and a traceback in the log."""
    instrument, _ = make()

    async def handler(request: Any) -> Any:
        raise KeyError("layers")

    with caplog.at_level(logging.INFO), pytest.raises(Aborted) as info:
        run(instrument.wrap("PullImage", handler)(None, FakeContext()))
    assert info.value.code == grpc.StatusCode.INTERNAL
    assert "KeyError" in info.value.details
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1 and "KeyError: 'layers'" in logged[0] and "in handler" in logged[0], logged


def test_huge_messages_are_cut_in_status_and_log(caplog: pytest.LogCaptureFixture) -> None:
    """A domain error or a bug whose text echoes 1 MiB puts at most about 1 KiB into the
    status and the log line (one hostile request made the log grow 80 MB in minutes)."""
    instrument, _ = make()
    for exc in (errors.InvalidArgument("cmd[0]: " + "A" * (1 << 20)), ValueError("B" * (1 << 20))):
        async def handler(request: Any, exc: Exception = exc) -> Any:
            raise exc

        caplog.clear()
        with caplog.at_level(logging.INFO), pytest.raises(Aborted) as info:
            run(instrument.wrap("ExecSync", handler)(None, FakeContext()))
        assert len(info.value.details) < 1200 and info.value.details.endswith(" characters)"), info.value.details[-80:]
        assert all(len(r.getMessage()) < 4000 for r in caplog.records), [len(r.getMessage()) for r in caplog.records]


def test_success_metrics_and_no_request_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    """An OK call counts as OK, has a latency sample, and the request (credentials) is never logged."""
    instrument, metrics = make()

    async def handler(request: Any) -> str:
        return "ok"

    async def failing(request: Any) -> str:
        raise errors.Unauthenticated("registry 127.0.0.1:5443 refused the credentials for a/b")

    with caplog.at_level(logging.DEBUG):
        run(instrument.wrap("PullImage", handler)({"password": "hunter2"}, FakeContext()))
        with pytest.raises(Aborted):
            run(instrument.wrap("PullImage", failing)({"password": "hunter2"}, FakeContext()))
    assert "hunter2" not in caplog.text
    assert "PullImage" in caplog.text
    assert sample(metrics, "dockyard_grpc_server_handled_total", method="PullImage", grpc_code="OK") == 1
    assert sample(metrics, "dockyard_grpc_server_errors_total", method="PullImage", grpc_code="OK") == 0
    assert sample(metrics, "dockyard_grpc_server_handling_seconds_count", method="PullImage", grpc_code="OK") == 1
    assert sample(metrics, "dockyard_grpc_server_errors_total", method="PullImage", grpc_code="UNAUTHENTICATED") == 1


def test_cancelled_call_is_counted_and_propagates() -> None:
    """A call cancelled by its client re-raises CancelledError and counts as CANCELLED."""
    instrument, metrics = make()

    async def handler(request: Any) -> Any:
        await asyncio.sleep(10)

    async def scenario() -> None:
        task = asyncio.create_task(instrument.wrap("PullImage", handler)(None, FakeContext()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert sample(metrics, "dockyard_grpc_server_handled_total", method="PullImage", grpc_code="CANCELLED") == 1


def test_an_error_is_counted_before_the_client_gets_it() -> None:
    """context.abort sends the status at once: the metric must already be there, or a client
    reading /metrics right after its failed call may not find it (seen once in the suite)."""
    instrument, metrics = make()
    seen_at_abort: list[float] = []

    class RecordingContext(FakeContext):
        async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
            seen_at_abort.append(sample(metrics, "dockyard_grpc_server_handled_total",
                                        method="PullImage", grpc_code="NOT_FOUND"))
            await super().abort(code, details)

    async def handler(request: Any) -> str:
        raise errors.NotFound("image x not found")

    with pytest.raises(Aborted):
        run(instrument.wrap("PullImage", handler)("req", RecordingContext()))
    assert seen_at_abort == [1.0]


def test_stream_handler_behind_the_same_wrapper() -> None:
    """A server-streaming handler is gated, counted and mapped as a unary one: its items
    pass through, a failure after some of them becomes its status, success counts OK."""
    instrument, metrics = make()

    async def events(request: Any) -> AsyncIterator[int]:
        yield 1
        yield 2
        if request == "fail":
            raise errors.NotFound("container c1 not found")

    async def collect(request: Any, got: list[int]) -> None:
        async for item in instrument.wrap_stream("GetContainerEvents", events)(request, FakeContext()):
            got.append(item)

    got: list[int] = []
    run(collect("ok", got))
    assert got == [1, 2]
    assert sample(metrics, "dockyard_grpc_server_handled_total", method="GetContainerEvents", grpc_code="OK") == 1
    got = []
    with pytest.raises(Aborted) as info:
        run(collect("fail", got))
    assert got == [1, 2] and info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.details == "container c1 not found"
    assert sample(metrics, "dockyard_grpc_server_handled_total", method="GetContainerEvents", grpc_code="NOT_FOUND") == 1
    starting, _ = make(ready=False)
    with pytest.raises(Aborted) as info:
        run(starting.wrap_stream("GetContainerEvents", events)("ok", FakeContext()).__anext__())
    assert info.value.code == grpc.StatusCode.UNAVAILABLE

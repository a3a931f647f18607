"""StopContainer: the stop signal (the image's StopSignal, else SIGTERM), wait up
to the timeout, then SIGKILL.  A container that is not running answers OK."""

from __future__ import annotations

import contextlib
import signal

from cri_api.v1 import api_pb2

from .. import errors, faults
from ..store.container import Container, ContainerState
from .cri_service import CriService

KILL_WAIT_S = 30.0


def stop_signal_number(name: str) -> int:
    """Image StopSignal ("SIGQUIT", "QUIT", "3") -> number; SIGTERM when unset (pure)."""
    if not name:
        return int(signal.SIGTERM)
    text = name.strip().upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < 65:
            return number
        raise errors.InvalidArgument(f"image StopSignal {name!r} is out of range")
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signal.Signals[text])
    except KeyError as err:
        raise errors.InvalidArgument(f"image StopSignal {name!r} is not a signal") from err


async def stop_container(cri: CriService, request: api_pb2.StopContainerRequest) -> api_pb2.StopContainerResponse:
    c = cri.containers.find(request.container_id)
    if c is None:
        # Stop is idempotent (CRI): a container already removed is stopped.
        return api_pb2.StopContainerResponse()
    async with cri.containers.index.lock(c.id):
        await stop_container_now(cri, c, timeout=max(0, request.timeout))
    faults.point("StopContainer/stopped")
    return api_pb2.StopContainerResponse()


def _exited(c: Container) -> bool:
    # A function, not an inline test: the state changes across the awaits above.
    return c.state is ContainerState.EXITED


async def stop_container_now(cri: CriService, c: Container, timeout: float) -> None:
    """Caller holds the container's lock."""
    if c.state not in (ContainerState.RUNNING, ContainerState.CREATED, ContainerState.UNKNOWN):
        return
    if not cri.shims.has(c.sandbox_id):
        return
    client = cri.shims.client(c.sandbox_id)
    if timeout > 0 and c.state is ContainerState.RUNNING:
        with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
            await client.call("kill", {"container_id": c.id, "signal": stop_signal_number(c.stop_signal)})
        faults.point("StopContainer/signalled")
        try:
            if await cri.wait_exit(c.sandbox_id, c.id, timeout) is not None or _exited(c):
                return
        except errors.DeadlineExceeded:
            pass
    await cri.kill_and_wait(c.sandbox_id, c.id, KILL_WAIT_S)

"""GetContainerEvents: a server stream of created/started/stopped/deleted events.

A streaming RPC cannot go through instrument.py's unary wrapper, so this
module gates on readiness itself; the stream ends when the client leaves or
when the fan-out drops it for not reading (cri/events.py).  The response
headers are sent as soon as the subscription exists, before any event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc  # type: ignore[import-untyped]  # grpcio ships no stubs
from cri_api.v1 import api_pb2

from .cri_service import CriService


def container_events_handler(
    cri: CriService, ready: Callable[[], bool]
) -> Callable[[api_pb2.GetEventsRequest, Any], AsyncIterator[api_pb2.ContainerEventResponse]]:
    async def get_container_events(
        request: api_pb2.GetEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[api_pb2.ContainerEventResponse]:
        if not ready():
            await context.abort(grpc.StatusCode.UNAVAILABLE, "dockyardd is starting (recovery not finished)")
        queue = cri.events.subscribe()
        try:
            # Headers go out once the subscription is in place: a client that
            # waits for them (initial_metadata()) knows it misses no later event.
            await context.send_initial_metadata(())
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield event
        finally:
            cri.events.unsubscribe(queue)

    return get_container_events

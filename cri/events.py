"""GetContainerEvents fan-out: every subscriber gets every event from its subscription on.

Each event carries the pod's sandbox status and the status of every
container of the pod as it is once the event happened (a deleted container
is no longer among them), as containerd sends them: kubelet's evented PLEG
needs the sandbox's metadata to know which pod to relist (1.37 drops an
event without it) and, up to 1.35, built the pod's whole status from the
event alone.

A subscriber is a bounded queue.  A client that stops reading must not make
the daemon hold events forever, so a full queue drops that subscriber (its
stream ends; kubelet's evented PLEG falls back to relisting and resubscribes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from cri_api.v1 import api_pb2

if TYPE_CHECKING:
    from .store.container import Container
    from .store.sandbox import Sandbox

log = logging.getLogger("dockyard.cri.events")

QUEUE_SIZE = 1024


class ContainerEvents:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[api_pb2.ContainerEventResponse | None]] = set()

    def subscribe(self) -> asyncio.Queue[api_pb2.ContainerEventResponse | None]:
        q: asyncio.Queue[api_pb2.ContainerEventResponse | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[api_pb2.ContainerEventResponse | None]) -> None:
        self._subscribers.discard(q)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def send(self, event: api_pb2.ContainerEventResponse) -> None:
        for q in list(self._subscribers):
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("dropping a GetContainerEvents subscriber that stopped reading")
                self._subscribers.discard(q)
                q.get_nowait()
                q.put_nowait(None)  # ends its stream

    def publish(self, cri: Any, container: Container, kind: api_pb2.ContainerEventType.ValueType) -> None:
        if not self._subscribers:
            return
        from .server.sandbox_status import sandbox_status

        sandbox = cri.sandboxes.find(container.sandbox_id)
        event = api_pb2.ContainerEventResponse(
            container_id=container.id, container_event_type=kind, created_at=time.time_ns(),
        )
        if sandbox is not None and sandbox.id == container.sandbox_id:
            event.pod_sandbox_status.CopyFrom(sandbox_status(cri, sandbox))
            event.containers_statuses.extend(_pod_container_statuses(cri, sandbox.id))
        self.send(event)

    def publish_sandbox(self, cri: Any, sandbox: Sandbox, kind: api_pb2.ContainerEventType.ValueType) -> None:
        if not self._subscribers:
            return
        from .server.sandbox_status import sandbox_status

        event = api_pb2.ContainerEventResponse(
            container_id=sandbox.id, container_event_type=kind, created_at=time.time_ns(),
        )
        event.pod_sandbox_status.CopyFrom(sandbox_status(cri, sandbox))
        event.containers_statuses.extend(_pod_container_statuses(cri, sandbox.id))
        self.send(event)


def _pod_container_statuses(cri: Any, sandbox_id: str) -> list[api_pb2.ContainerStatus]:
    """Every listed container of the pod (a half-made one is not listed yet)."""
    from .server.container_status import container_status
    from .store.container import ContainerState

    return [container_status(cri, c) for c in cri.containers.of_sandbox(sandbox_id)
            if c.state is not ContainerState.CREATING]

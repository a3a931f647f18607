"""A GetContainerEvents subscription for tests: events read in a thread, waited for by container and kind."""

from __future__ import annotations

import threading
import time

import grpc
from cri_api.v1 import api_pb2
from runtime_service_fixture import Pods


class Events:
    """A GetContainerEvents subscription read in a thread; in place when the constructor returns."""

    def __init__(self, pods: Pods) -> None:
        self.channel = pods.daemon.channel()
        self.stream = pods.daemon.runtime(self.channel).GetContainerEvents(api_pb2.GetEventsRequest())
        self.stream.initial_metadata()  # the daemon sends its headers once it has subscribed us
        self.seen: list[api_pb2.ContainerEventResponse] = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            for event in self.stream:
                with self.changed:
                    self.seen.append(event)
                    self.changed.notify_all()
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise

    def wait(self, container_id: str, kind: int, timeout: float = 30) -> api_pb2.ContainerEventResponse:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for e in self.seen:
                    if e.container_id == container_id and e.container_event_type == kind:
                        return e
                left = deadline - time.monotonic()
                assert left > 0, f"no event {kind} for {container_id}"
                self.changed.wait(left)

    def close(self) -> None:
        self.stream.cancel()
        self.reader.join(10)
        self.channel.close()

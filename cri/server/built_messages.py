"""Answers built from a record, kept until what they are built from changes.

kubelet asks for every pod's and every container's status each second and
lists them all as often (the generic PLEG relist), while a record changes a
few times in its life.  Building a status decodes the stored config (base64,
then protobuf) and fills a fresh message: about 50 us of the 300 us a
ContainerStatus costs the daemon.  A kept message costs a comparison of its
inputs.

Each caller passes the inputs its builder reads, as a tuple of immutable
values taken now (a list is passed as a tuple of its items, so a change made
to it in place is seen); when they equal the last ones, the message built
then is returned.  The same message is handed to every caller: copy it into
an answer (protobuf's constructors, ``append`` and ``CopyFrom`` copy), never
change it.  tests/unit/test_built_messages.py changes each field of a record
in turn and checks that the kept answer follows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from cri_api.v1 import api_pb2

M = TypeVar("M")


class BuiltMessages(Generic[M]):
    """One kept message per object id."""

    def __init__(self) -> None:
        self._built: dict[str, tuple[tuple[object, ...], M]] = {}

    def get(self, object_id: str, inputs: tuple[object, ...], build: Callable[[], M]) -> M:
        kept = self._built.get(object_id)
        if kept is not None and kept[0] == inputs:
            return kept[1]
        message = build()
        self._built[object_id] = (inputs, message)
        return message

    def forget(self, object_id: str) -> None:
        self._built.pop(object_id, None)

    def __len__(self) -> int:
        return len(self._built)


@dataclass(slots=True)
class KeptAnswers:
    """The kept status and list-item messages of the node's containers and pods."""

    container_status: BuiltMessages[api_pb2.ContainerStatus] = field(default_factory=BuiltMessages)
    container_item: BuiltMessages[api_pb2.Container] = field(default_factory=BuiltMessages)
    sandbox_status: BuiltMessages[api_pb2.PodSandboxStatus] = field(default_factory=BuiltMessages)
    sandbox_item: BuiltMessages[api_pb2.PodSandbox] = field(default_factory=BuiltMessages)

    def forget(self, object_id: str) -> None:
        """A container or pod is gone."""
        for kept in (self.container_status, self.container_item, self.sandbox_status, self.sandbox_item):
            kept.forget(object_id)

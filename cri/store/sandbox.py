"""Pod sandbox metadata and its store.

States (persisted; the RPC that moves one is on the arrow)::

    (none) --RunPodSandbox begins--> INIT --all steps done--> READY
    READY --StopPodSandbox / pause exit--> NOTREADY --RemovePodSandbox--> (none)
    INIT --a step failed (undo ran) / recovery finds it--> (none)

INIT is written *before* the first resource is taken, so a daemon killed in
the middle of RunPodSandbox leaves a record that tells recovery which pod's
netns, snapshot, mounts, cgroup and shim to look for and remove.  The config
is kept as the serialized protobuf (base64), the most faithful form of it.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass, field
from typing import Any

from cri_api.v1 import api_pb2

from .record_store import RecordStore, StateRecord

VERSION = 1


class SandboxState(str, enum.Enum):
    INIT = "init"
    READY = "ready"
    NOTREADY = "notready"


TRANSITIONS: dict[SandboxState, frozenset[SandboxState]] = {
    SandboxState.INIT: frozenset({SandboxState.READY}),
    SandboxState.READY: frozenset({SandboxState.NOTREADY}),
    SandboxState.NOTREADY: frozenset(),
}


def unique_name(meta: api_pb2.PodSandboxMetadata) -> str:
    """The name two sandboxes may not share (containerd's makeSandboxName)."""
    return f"{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}"


@dataclass(slots=True)
class Sandbox(StateRecord):
    STATE = SandboxState

    id: str
    name: str
    config_b64: str
    runtime_handler: str  # as the caller gave it ("" for the default)
    handler: str  # the resolved handler name
    state: SandboxState = SandboxState.INIT
    created_at: int = 0  # unix ns
    netns_path: str = ""
    ips: list[str] = field(default_factory=list)
    pid: int = 0  # the pause process
    cgroup_parent: str = ""  # the pod's cgroup (cgroupfs path)
    pause_image_id: str = ""
    pause_exit_code: int | None = None
    cni_result: dict[str, Any] = field(default_factory=dict)
    host_network: bool = False
    # The last UpdatePodSandboxResources accepted (its request, serialized,
    # base64); "" = none since RunPodSandbox, whose config holds the first.
    resources_update_b64: str = ""

    @property
    def resources_update(self) -> api_pb2.UpdatePodSandboxResourcesRequest | None:
        if not self.resources_update_b64:
            return None
        req = api_pb2.UpdatePodSandboxResourcesRequest()
        req.ParseFromString(base64.b64decode(self.resources_update_b64))
        return req

    @property
    def config(self) -> api_pb2.PodSandboxConfig:
        cfg = api_pb2.PodSandboxConfig()
        cfg.ParseFromString(base64.b64decode(self.config_b64))
        return cfg

    @staticmethod
    def encode_config(config: api_pb2.PodSandboxConfig) -> str:
        return base64.b64encode(config.SerializeToString()).decode()


class SandboxStore(RecordStore[Sandbox]):
    """Sandboxes by id and unique name, persisted under ``<root>/sandboxes``."""

    def __init__(self, root_dir: str) -> None:
        super().__init__(root_dir, "sandboxes", VERSION, "sandbox", Sandbox.from_json)

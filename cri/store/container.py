"""Container metadata and its store.

States (persisted)::

    (none) --CreateContainer begins--> CREATING --bundle written--> CREATED (no task yet)
    CREATED --StartContainer: shim create+start--> RUNNING --exit event / shim state--> EXITED
    CREATED --start failed, shim died--> EXITED
    any --shim gone, state unprovable--> EXITED with reason ShimDied
    CREATING --a step failed (undo ran) / recovery finds it--> (none)

As containerd's CRI does, CreateContainer prepares everything but the
process: the snapshot, the mounted rootfs and the bundle.  The runtime's
``create`` and ``start`` run as one call (``run --detach``) at StartContainer,
which saves a runtime process per container.  Until then the container has
no task: nothing to kill at stop, nothing in the shim to delete at removal,
and a resource update goes into the bundle's config.json.  Such a container
is CREATED with no pid (``task_pending``); a record from before this order is
CREATED with the pid of the task made with it.

CREATING is written while the first resources (bundle dir, snapshot, rootfs
mount) are taken, not before as for sandboxes: every one of them is named by
the container's id, so recovery removes them whether it finds the CREATING
record (rolled back) or no record at all (orphans; cri/restart.py,
assumption 7).  CREATED is on disk before CreateContainer answers, and so is
the snapshot's metadata, written beside it: a CREATED record with no task
whose snapshot the snapshotter does not know is rolled back as a CREATING one
(cri/restart.py, assumption 6).
"""

from __future__ import annotations

import base64
import builtins
import enum
import os
from dataclasses import dataclass, field
from typing import Any

from cri_api.v1 import api_pb2

from .record_store import RecordStore, StateRecord

VERSION = 1


class ContainerState(str, enum.Enum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


CRI_STATE: dict[ContainerState, api_pb2.ContainerState.ValueType] = {
    ContainerState.CREATING: api_pb2.CONTAINER_UNKNOWN,
    ContainerState.CREATED: api_pb2.CONTAINER_CREATED,
    ContainerState.RUNNING: api_pb2.CONTAINER_RUNNING,
    ContainerState.EXITED: api_pb2.CONTAINER_EXITED,
    ContainerState.UNKNOWN: api_pb2.CONTAINER_UNKNOWN,
}


def unique_name(sandbox_meta: api_pb2.PodSandboxMetadata, meta: api_pb2.ContainerMetadata) -> str:
    """containerd's makeContainerName: container + pod identity + attempt."""
    return f"{meta.name}_{sandbox_meta.name}_{sandbox_meta.namespace}_{sandbox_meta.uid}_{meta.attempt}"


@dataclass(slots=True)
class Container(StateRecord):
    STATE = ContainerState

    id: str
    name: str
    sandbox_id: str
    config_b64: str
    image_id: str  # config digest
    image_ref: str  # what the caller asked for (ContainerStatus.image)
    image_repo_digest: str  # ContainerStatus.image_ref
    log_path: str  # absolute ("" = no log)
    state: ContainerState = ContainerState.CREATING
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    pid: int = 0
    reason: str = ""
    message: str = ""
    snapshot_key: str = ""
    bundle: str = ""
    stop_signal: str = ""
    mounts: list[dict[str, Any]] = field(default_factory=list)
    oom_killed: bool = False
    # A container restored from a checkpoint archive: its CRIU images (in its
    # bundle); StartContainer restores the task from them.  "" otherwise.
    restore_from: str = ""

    @property
    def config(self) -> api_pb2.ContainerConfig:
        cfg = api_pb2.ContainerConfig()
        cfg.ParseFromString(base64.b64decode(self.config_b64))
        return cfg

    @staticmethod
    def encode_config(config: api_pb2.ContainerConfig) -> str:
        return base64.b64encode(config.SerializeToString()).decode()

    @property
    def task_pending(self) -> bool:
        """CREATED without a task: the runtime's create runs at StartContainer."""
        return self.state is ContainerState.CREATED and self.pid == 0

    @property
    def rootfs(self) -> str:
        return os.path.join(self.bundle, "rootfs")


class ContainerStore(RecordStore[Container]):
    def __init__(self, root_dir: str) -> None:
        super().__init__(root_dir, "containers", VERSION, "container", Container.from_json)

    def of_sandbox(self, sandbox_id: str) -> builtins.list[Container]:
        return [c for c in self.index if c.sandbox_id == sandbox_id]

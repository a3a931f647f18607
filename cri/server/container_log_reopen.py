"""ReopenContainerLog: the shim closes and reopens the log file (after kubelet rotated it)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from .. import errors
from ..store.container import ContainerState
from .cri_service import CriService


async def reopen_container_log(cri: CriService, request: api_pb2.ReopenContainerLogRequest) -> api_pb2.ReopenContainerLogResponse:
    c = cri.container(request.container_id)
    if c.state is not ContainerState.RUNNING:
        raise errors.FailedPrecondition(f"container {c.id} is {c.state.value}, not running: no log to reopen")
    await cri.shims.client(c.sandbox_id).call("reopen_log", {"container_id": c.id})
    return api_pb2.ReopenContainerLogResponse()

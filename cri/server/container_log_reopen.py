"""ReopenContainerLog: the shim closes and reopens the log file (after kubelet rotated it)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from .cri_service import CriService


async def reopen_container_log(cri: CriService, request: api_pb2.ReopenContainerLogRequest) -> api_pb2.ReopenContainerLogResponse:
    c = cri.running_container(request.container_id, "no log to reopen")
    await cri.shims.client(c.sandbox_id).call("reopen_log", {"container_id": c.id})
    return api_pb2.ReopenContainerLogResponse()

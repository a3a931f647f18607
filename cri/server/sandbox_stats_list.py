"""ListPodSandboxStats: stats of every ready pod matching the filter (id prefix, labels)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from ..store.sandbox import SandboxState
from .container_list import labels_match
from .cri_service import CriService
from .sandbox_stats import sandbox_stats_many


async def list_pod_sandbox_stats(cri: CriService, request: api_pb2.ListPodSandboxStatsRequest) -> api_pb2.ListPodSandboxStatsResponse:
    f = request.filter if request.HasField("filter") else None
    chosen = []
    for s in cri.sandboxes.list():
        if s.state is not SandboxState.READY:
            continue
        if f is not None and ((f.id and not s.id.startswith(f.id)) or not labels_match(f.label_selector, s.config.labels)):
            continue
        chosen.append(s)
    return api_pb2.ListPodSandboxStatsResponse(stats=await sandbox_stats_many(cri, chosen))

"""ListPodSandboxStats: stats of every ready pod matching the filter (id prefix, labels)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from ..store.sandbox import SandboxState
from .cri_service import CriService
from .sandbox_list import sandbox_matches
from .sandbox_stats import sandbox_stats_many


async def list_pod_sandbox_stats(cri: CriService, request: api_pb2.ListPodSandboxStatsRequest) -> api_pb2.ListPodSandboxStatsResponse:
    f = request.filter if request.HasField("filter") else None
    chosen = []
    for s in cri.sandboxes.list():
        if s.state is not SandboxState.READY:
            continue
        if f is None or sandbox_matches(s, f, s.config.labels):
            chosen.append(s)
    return api_pb2.ListPodSandboxStatsResponse(stats=await sandbox_stats_many(cri, chosen))

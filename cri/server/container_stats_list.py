"""ListContainerStats: stats of every running container matching the filter (id, pod, labels)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from ..store.container import ContainerState
from .container_list import labels_match
from .container_stats import stats_many
from .cri_service import CriService


async def list_container_stats(cri: CriService, request: api_pb2.ListContainerStatsRequest) -> api_pb2.ListContainerStatsResponse:
    f = request.filter if request.HasField("filter") else None
    chosen = []
    for c in cri.containers.list():
        if c.state is not ContainerState.RUNNING:
            continue
        if f is not None:
            if f.id and not c.id.startswith(f.id):
                continue
            if f.pod_sandbox_id and not c.sandbox_id.startswith(f.pod_sandbox_id):
                continue
            if not labels_match(f.label_selector, c.config.labels):
                continue
        chosen.append(c)
    return api_pb2.ListContainerStatsResponse(stats=await stats_many(cri, chosen))

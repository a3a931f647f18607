"""ListContainerStats: stats of every running container matching the filter (id, pod, labels)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from ..store.container import ContainerState
from .container_list import container_matches
from .container_stats import stats_many
from .cri_service import CriService


async def list_container_stats(cri: CriService, request: api_pb2.ListContainerStatsRequest) -> api_pb2.ListContainerStatsResponse:
    f = request.filter if request.HasField("filter") else None
    chosen = []
    for c in cri.containers.list():
        if c.state is not ContainerState.RUNNING:
            continue
        if f is None or container_matches(c, f, c.config.labels):
            chosen.append(c)
    return api_pb2.ListContainerStatsResponse(stats=await stats_many(cri, chosen))

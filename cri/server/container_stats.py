"""ContainerStats: one container's cpu, memory and writable layer usage."""

from __future__ import annotations

import asyncio
import json
import os

from cri_api.v1 import api_pb2

from ..stats import cpu_usage, memory_message, writable_layer
from ..store.container import Container
from .cri_service import CriService


def cgroups_path_of(c: Container) -> str:
    try:
        with open(os.path.join(c.bundle, "config.json"), encoding="utf-8") as f:
            return str(json.load(f).get("linux", {}).get("cgroupsPath", ""))
    except (OSError, ValueError):
        return ""


async def stats_of(cri: CriService, c: Container) -> api_pb2.ContainerStats:
    config = c.config
    attributes = api_pb2.ContainerAttributes(
        id=c.id, metadata=config.metadata, labels=config.labels, annotations=config.annotations,
    )
    path = cgroups_path_of(c)
    stats, at, cores = await cri.sampler.sample(path, c.id) if path else (None, 0, 0)
    layer = await asyncio.to_thread(writable_layer, cri.snapshotter, c.snapshot_key, at)
    return api_pb2.ContainerStats(
        attributes=attributes, cpu=cpu_usage(stats, at, cores), memory=memory_message(stats, at), writable_layer=layer,
    )


async def container_stats(cri: CriService, request: api_pb2.ContainerStatsRequest) -> api_pb2.ContainerStatsResponse:
    c = cri.container(request.container_id)
    return api_pb2.ContainerStatsResponse(stats=await stats_of(cri, c))

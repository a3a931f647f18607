"""ContainerStats: one container's cpu, memory and writable layer usage.

``stats_many`` serves the list RPCs too: every container's cgroup is read in
one worker-thread call and every writable layer in another (cri/stats.py
says why)."""

from __future__ import annotations

import asyncio
import base64

from cri_api.v1 import api_pb2

from ..stats import cpu_usage, io_message, memory_message, writable_layer
from ..store.container import Container
from .cri_service import CriService


def cgroups_path_of(cri: CriService, c: Container) -> str:
    facts = cri.bundle_facts.get(c.id, c.bundle)
    return facts.cgroups_path if facts is not None else ""


async def stats_many(cri: CriService, containers: list[Container]) -> list[api_pb2.ContainerStats]:
    samples = await cri.sampler.sample_many([(cgroups_path_of(cri, c), c.id) for c in containers])
    # The layers are measured and the messages built in a worker thread too:
    # for 110 containers that is tens of milliseconds the event loop would
    # otherwise spend in one go while every other call waits (the thread
    # yields the GIL every few milliseconds).  It reads the records only.
    snapshot = [(c.id, c.config_b64, c.snapshot_key) for c in containers]
    return await asyncio.to_thread(_build, cri.snapshotter, snapshot, samples)


def _build(snapshotter: object, containers: list[tuple[str, str, str]],
           samples: list[tuple[dict[str, object] | None, int, int]]) -> list[api_pb2.ContainerStats]:
    out = []
    for (cid, config_b64, key), (stats, at, cores) in zip(containers, samples):
        config = api_pb2.ContainerConfig.FromString(base64.b64decode(config_b64))
        attributes = api_pb2.ContainerAttributes(
            id=cid, metadata=config.metadata, labels=config.labels, annotations=config.annotations,
        )
        out.append(api_pb2.ContainerStats(
            attributes=attributes, cpu=cpu_usage(stats, at, cores), memory=memory_message(stats, at),
            writable_layer=writable_layer(snapshotter, key, at), io=io_message(stats, at),
        ))
    return out


async def stats_of(cri: CriService, c: Container) -> api_pb2.ContainerStats:
    return (await stats_many(cri, [c]))[0]


async def container_stats(cri: CriService, request: api_pb2.ContainerStatsRequest) -> api_pb2.ContainerStatsResponse:
    c = cri.container(request.container_id)
    return api_pb2.ContainerStatsResponse(stats=await stats_of(cri, c))

"""PodSandboxStats: the pod cgroup's cpu/memory, the netns counters, process count, and each container's stats."""

from __future__ import annotations

import asyncio

from cri_api.v1 import api_pb2

from ..stats import cpu_usage, memory_message, network_usage
from ..store.container import ContainerState
from ..store.sandbox import Sandbox
from .container_stats import stats_of
from .cri_service import CriService


async def sandbox_stats_of(cri: CriService, s: Sandbox) -> api_pb2.PodSandboxStats:
    config = s.config
    attributes = api_pb2.PodSandboxAttributes(
        id=s.id, metadata=config.metadata, labels=config.labels, annotations=config.annotations,
    )
    stats, at, cores = await cri.sampler.sample(s.cgroup_parent, s.id)
    linux = api_pb2.LinuxPodSandboxStats(cpu=cpu_usage(stats, at, cores), memory=memory_message(stats, at))
    net = await asyncio.to_thread(network_usage, s.netns_path, at)
    if net is not None:
        linux.network.CopyFrom(net)
    if stats is not None:
        linux.process.CopyFrom(api_pb2.ProcessUsage(
            timestamp=at, process_count=api_pb2.UInt64Value(value=int(stats.get("pids", {}).get("current", 0))),
        ))
    running = [c for c in cri.containers.of_sandbox(s.id) if c.state is ContainerState.RUNNING]
    for cs in await asyncio.gather(*(stats_of(cri, c) for c in running)):
        linux.containers.append(cs)
    return api_pb2.PodSandboxStats(attributes=attributes, linux=linux)


async def pod_sandbox_stats(cri: CriService, request: api_pb2.PodSandboxStatsRequest) -> api_pb2.PodSandboxStatsResponse:
    s = cri.sandbox(request.pod_sandbox_id)
    return api_pb2.PodSandboxStatsResponse(stats=await sandbox_stats_of(cri, s))

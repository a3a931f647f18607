"""PodSandboxStats: the pod cgroup's cpu/memory, the netns counters, process count, and each container's stats.

``sandbox_stats_many`` serves ListPodSandboxStats too: the pods' cgroups,
their netns counters and their containers are each read in one
worker-thread call for all pods (cri/stats.py says why)."""

from __future__ import annotations

import asyncio

from cri_api.v1 import api_pb2

from ..stats import cpu_usage, memory_message, network_counters_many, network_message
from ..store.container import ContainerState
from ..store.sandbox import Sandbox
from .container_stats import stats_many
from .cri_service import CriService


async def sandbox_stats_many(cri: CriService, sandboxes: list[Sandbox]) -> list[api_pb2.PodSandboxStats]:
    samples = await cri.sampler.sample_many([(s.cgroup_parent, s.id) for s in sandboxes])
    counters = await asyncio.to_thread(network_counters_many, [s.netns_path for s in sandboxes])
    running = [[c for c in cri.containers.of_sandbox(s.id) if c.state is ContainerState.RUNNING] for s in sandboxes]
    container_stats = iter(await stats_many(cri, [c for pod in running for c in pod]))
    out = []
    for s, (stats, at, cores), net, pod in zip(sandboxes, samples, counters, running):
        config = s.config
        attributes = api_pb2.PodSandboxAttributes(
            id=s.id, metadata=config.metadata, labels=config.labels, annotations=config.annotations,
        )
        linux = api_pb2.LinuxPodSandboxStats(cpu=cpu_usage(stats, at, cores), memory=memory_message(stats, at))
        usage = network_message(net, at)
        if usage is not None:
            linux.network.CopyFrom(usage)
        if stats is not None:
            linux.process.CopyFrom(api_pb2.ProcessUsage(
                timestamp=at, process_count=api_pb2.UInt64Value(value=int(stats.get("pids", {}).get("current", 0))),
            ))
        for _ in pod:
            linux.containers.append(next(container_stats))
        out.append(api_pb2.PodSandboxStats(attributes=attributes, linux=linux))
    return out


async def sandbox_stats_of(cri: CriService, s: Sandbox) -> api_pb2.PodSandboxStats:
    return (await sandbox_stats_many(cri, [s]))[0]


async def pod_sandbox_stats(cri: CriService, request: api_pb2.PodSandboxStatsRequest) -> api_pb2.PodSandboxStatsResponse:
    s = cri.sandbox(request.pod_sandbox_id)
    return api_pb2.PodSandboxStatsResponse(stats=await sandbox_stats_of(cri, s))

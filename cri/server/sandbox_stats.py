"""PodSandboxStats: the pod cgroup's cpu/memory, the netns counters, process count, and each container's stats.

``sandbox_stats_many`` serves ListPodSandboxStats too: the pods' cgroups,
their netns counters and their containers are each read in one
worker-thread call for all pods (cri/stats.py says why)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from cri_api.v1 import api_pb2

from ..stats import cpu_usage, io_message, memory_message, network_counters_many, network_message
from ..store.container import ContainerState
from ..store.sandbox import Sandbox
from .container_stats import stats_many
from .cri_service import CriService


async def sandbox_stats_many(cri: CriService, sandboxes: list[Sandbox]) -> list[api_pb2.PodSandboxStats]:
    samples = await cri.sampler.sample_many([(s.cgroup_parent, s.id) for s in sandboxes])
    counters = await asyncio.to_thread(network_counters_many, [s.netns_path for s in sandboxes])
    running = [[c for c in cri.containers.of_sandbox(s.id) if c.state is ContainerState.RUNNING] for s in sandboxes]
    containers = await stats_many(cri, [c for pod in running for c in pod])
    pods = [(s.id, s.config_b64, len(pod)) for s, pod in zip(sandboxes, running)]
    # Built in a worker thread, as stats_many does: the loop keeps serving.
    return await asyncio.to_thread(_build, pods, samples, counters, containers)


def _build(pods: list[tuple[str, str, int]], samples: list[tuple[dict[str, Any] | None, int, int]],
           counters: list[dict[str, dict[str, int]] | None],
           containers: list[api_pb2.ContainerStats]) -> list[api_pb2.PodSandboxStats]:
    out = []
    taken = iter(containers)
    for (pod_id, config_b64, n), (stats, at, cores), net in zip(pods, samples, counters):
        config = api_pb2.PodSandboxConfig.FromString(base64.b64decode(config_b64))
        attributes = api_pb2.PodSandboxAttributes(
            id=pod_id, metadata=config.metadata, labels=config.labels, annotations=config.annotations,
        )
        linux = api_pb2.LinuxPodSandboxStats(cpu=cpu_usage(stats, at, cores), memory=memory_message(stats, at),
                                             io=io_message(stats, at))
        usage = network_message(net, at)
        if usage is not None:
            linux.network.CopyFrom(usage)
        if stats is not None:
            linux.process.CopyFrom(api_pb2.ProcessUsage(
                timestamp=at, process_count=api_pb2.UInt64Value(value=int(stats.get("pids", {}).get("current", 0))),
            ))
        for _ in range(n):
            linux.containers.append(next(taken))
        out.append(api_pb2.PodSandboxStats(attributes=attributes, linux=linux))
    return out


async def sandbox_stats_of(cri: CriService, s: Sandbox) -> api_pb2.PodSandboxStats:
    return (await sandbox_stats_many(cri, [s]))[0]


async def pod_sandbox_stats(cri: CriService, request: api_pb2.PodSandboxStatsRequest) -> api_pb2.PodSandboxStatsResponse:
    s = cri.sandbox(request.pod_sandbox_id)
    return api_pb2.PodSandboxStatsResponse(stats=await sandbox_stats_of(cri, s))

"""ListPodSandboxMetrics: cpu, memory and network per ready pod (and cpu/memory per running container)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from ..store.sandbox import SandboxState
from .metric_descriptors import DESCRIPTORS
from .cri_service import CriService
from .sandbox_stats import sandbox_stats_of


def _metric(name: str, at: int, value: int, labels: tuple[str, ...] = ()) -> api_pb2.Metric:
    return api_pb2.Metric(
        name=name, timestamp=at, metric_type=DESCRIPTORS[name][2], label_values=list(labels),
        value=api_pb2.UInt64Value(value=value),
    )


def usage_metrics(cpu: api_pb2.CpuUsage, memory: api_pb2.MemoryUsage) -> list[api_pb2.Metric]:
    at = cpu.timestamp
    return [
        _metric("container_cpu_usage_seconds_total", at, cpu.usage_core_nano_seconds.value // 1_000_000_000),
        _metric("container_memory_usage_bytes", at, memory.usage_bytes.value),
        _metric("container_memory_working_set_bytes", at, memory.working_set_bytes.value),
        _metric("container_memory_rss", at, memory.rss_bytes.value),
    ]


def network_metrics(net: api_pb2.NetworkUsage) -> list[api_pb2.Metric]:
    out = []
    ifaces = ([net.default_interface] if net.HasField("default_interface") else []) + list(net.interfaces)
    for i in ifaces:
        out += [
            _metric("container_network_receive_bytes_total", net.timestamp, i.rx_bytes.value, (i.name,)),
            _metric("container_network_transmit_bytes_total", net.timestamp, i.tx_bytes.value, (i.name,)),
            _metric("container_network_receive_errors_total", net.timestamp, i.rx_errors.value, (i.name,)),
            _metric("container_network_transmit_errors_total", net.timestamp, i.tx_errors.value, (i.name,)),
        ]
    return out


async def list_pod_sandbox_metrics(
    cri: CriService, request: api_pb2.ListPodSandboxMetricsRequest
) -> api_pb2.ListPodSandboxMetricsResponse:
    out = api_pb2.ListPodSandboxMetricsResponse()
    for s in cri.sandboxes.list():
        if s.state is not SandboxState.READY:
            continue
        stats = await sandbox_stats_of(cri, s)
        linux = stats.linux
        pm = api_pb2.PodSandboxMetrics(pod_sandbox_id=s.id, metrics=usage_metrics(linux.cpu, linux.memory))
        if linux.HasField("network"):
            pm.metrics.extend(network_metrics(linux.network))
        for cs in linux.containers:
            pm.container_metrics.append(api_pb2.ContainerMetrics(
                container_id=cs.attributes.id, metrics=usage_metrics(cs.cpu, cs.memory),
            ))
        out.pod_metrics.append(pm)
    return out

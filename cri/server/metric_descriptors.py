"""ListMetricDescriptors: the cAdvisor-named metrics ListPodSandboxMetrics reports."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from .cri_service import CriService

# name -> (help, label keys, type)
DESCRIPTORS: dict[str, tuple[str, tuple[str, ...], api_pb2.MetricType.ValueType]] = {
    "container_cpu_usage_seconds_total": ("Cumulative cpu time consumed in seconds.", (), api_pb2.COUNTER),
    "container_memory_usage_bytes": ("Current memory usage in bytes, including all memory regardless of when it was accessed.", (), api_pb2.GAUGE),
    "container_memory_working_set_bytes": ("Current working set in bytes.", (), api_pb2.GAUGE),
    "container_memory_rss": ("Size of RSS in bytes.", (), api_pb2.GAUGE),
    "container_network_receive_bytes_total": ("Cumulative count of bytes received.", ("interface",), api_pb2.COUNTER),
    "container_network_transmit_bytes_total": ("Cumulative count of bytes transmitted.", ("interface",), api_pb2.COUNTER),
    "container_network_receive_errors_total": ("Cumulative count of errors encountered while receiving.", ("interface",), api_pb2.COUNTER),
    "container_network_transmit_errors_total": ("Cumulative count of errors encountered while transmitting.", ("interface",), api_pb2.COUNTER),
}


async def list_metric_descriptors(
    cri: CriService, request: api_pb2.ListMetricDescriptorsRequest
) -> api_pb2.ListMetricDescriptorsResponse:
    return api_pb2.ListMetricDescriptorsResponse(descriptors=[
        api_pb2.MetricDescriptor(name=name, help=help_text, label_keys=list(labels))
        for name, (help_text, labels, _) in DESCRIPTORS.items()
    ])

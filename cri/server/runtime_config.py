"""RuntimeConfig: the cgroup driver kubelet must match (cgroupfs: the daemon writes cgroupfs paths)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from .cri_service import CriService


async def runtime_config(cri: CriService, request: api_pb2.RuntimeConfigRequest) -> api_pb2.RuntimeConfigResponse:
    return api_pb2.RuntimeConfigResponse(linux=api_pb2.LinuxRuntimeConfiguration(cgroup_driver=api_pb2.CGROUPFS))

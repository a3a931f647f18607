"""RuntimeConfig: the cgroup driver kubelet must match (KEP-4033): the one the daemon's runtimes use."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from .cri_service import CriService

DRIVERS = {"cgroupfs": api_pb2.CGROUPFS, "systemd": api_pb2.SYSTEMD}


async def runtime_config(cri: CriService, request: api_pb2.RuntimeConfigRequest) -> api_pb2.RuntimeConfigResponse:
    driver = DRIVERS[cri.config.cgroup_driver]
    return api_pb2.RuntimeConfigResponse(linux=api_pb2.LinuxRuntimeConfiguration(cgroup_driver=driver))

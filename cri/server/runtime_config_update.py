"""UpdateRuntimeConfig: kubelet hands over the node's pod CIDR.

Kept (and shown in Status verbose info); the conflist's IPAM decides
addresses, as with containerd when the CNI config is not templated.
"""

from __future__ import annotations

import ipaddress

from cri_api.v1 import api_pb2

from .. import errors
from .cri_service import CriService


async def update_runtime_config(
    cri: CriService, request: api_pb2.UpdateRuntimeConfigRequest
) -> api_pb2.UpdateRuntimeConfigResponse:
    cidr = request.runtime_config.network_config.pod_cidr
    if cidr:
        for part in cidr.split(","):
            try:
                ipaddress.ip_network(part.strip(), strict=False)
            except ValueError as err:
                raise errors.InvalidArgument(f"runtime_config.network_config.pod_cidr {cidr!r}: {err}") from err
    cri.pod_cidr = cidr
    return api_pb2.UpdateRuntimeConfigResponse()

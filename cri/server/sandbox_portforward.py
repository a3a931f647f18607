"""PortForward: a URL on the streaming server for connections to ports inside a pod.

The pod must exist (NotFound) and be ready (FailedPrecondition: a stopped
pod's network namespace is gone); the ports must be TCP ports
(InvalidArgument).  Each connection is dialled inside the pod's network
namespace when the client asks for it (streaming_backend.py).
"""

from __future__ import annotations

from cri_api.v1 import api_pb2

from ..streaming.requests import validate_port_forward
from ..streaming.server import StreamServer
from .cri_service import CriService


async def port_forward_rpc(cri: CriService, server: StreamServer,
                           request: api_pb2.PortForwardRequest) -> api_pb2.PortForwardResponse:
    validate_port_forward(request.pod_sandbox_id, list(request.port))
    sandbox = cri.ready_sandbox(request.pod_sandbox_id, "cannot forward ports")
    resolved = api_pb2.PortForwardRequest()
    resolved.CopyFrom(request)
    resolved.pod_sandbox_id = sandbox.id
    return api_pb2.PortForwardResponse(url=server.get_portforward_url(resolved))

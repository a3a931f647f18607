"""Attach: a URL on the streaming server for the stdio of a running container.

Validation as for Exec; the container must exist (NotFound) and run
(FailedPrecondition).  Stdin is attached only when the container was created
with ``stdin`` (else what the client types is dropped, as containerd does);
its ``stdin_once`` closes the container's stdin when the first attach that
used stdin detaches (the shim does it).
"""

from __future__ import annotations

from cri_api.v1 import api_pb2

from ..streaming.requests import validate_attach
from ..streaming.server import StreamServer
from .cri_service import CriService


async def attach_rpc(cri: CriService, server: StreamServer, request: api_pb2.AttachRequest) -> api_pb2.AttachResponse:
    validate_attach(request)
    c = cri.running_container(request.container_id, "cannot attach to it")
    resolved = api_pb2.AttachRequest()
    resolved.CopyFrom(request)
    resolved.container_id = c.id
    return api_pb2.AttachResponse(url=server.get_attach_url(resolved))

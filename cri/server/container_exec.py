"""Exec: a URL on the streaming server for running a command in a container, interactively.

The request is validated (tty with stderr, no stream, empty cmd: InvalidArgument),
the container must exist (NotFound) and run (FailedPrecondition); the URL's
single-use token carries the request with the container's full id.  The
session itself (the shim's ``exec`` with handed-over stdio) starts when the
client opens the URL: see streaming_backend.py.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2

from ..streaming.requests import validate_exec
from ..streaming.server import StreamServer
from .cri_service import CriService


async def exec_rpc(cri: CriService, server: StreamServer, request: api_pb2.ExecRequest) -> api_pb2.ExecResponse:
    validate_exec(request, list(request.cmd))
    c = cri.running_container(request.container_id, "cannot exec in it")
    resolved = api_pb2.ExecRequest()
    resolved.CopyFrom(request)
    resolved.container_id = c.id
    return api_pb2.ExecResponse(url=server.get_exec_url(resolved))

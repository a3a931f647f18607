"""Admin.ListPods: every pod sandbox the daemon knows, in any state, oldest first."""

from __future__ import annotations

from dockyard.api import admin_pb2 as pb
from dockyard.cri.server.cri_service import CriService


async def list_pods(cri: CriService, request: pb.ListPodsRequest) -> pb.ListPodsResponse:
    pods = []
    for s in sorted(cri.sandboxes.list(), key=lambda s: (s.created_at, s.id)):
        meta = s.config.metadata
        pods.append(pb.Pod(id=s.id, name=meta.name, namespace=meta.namespace, uid=meta.uid, state=s.state.value,
                           created_at=s.created_at, runtime_handler=s.handler, ip=s.ips[0] if s.ips else ""))
    return pb.ListPodsResponse(pods=pods)

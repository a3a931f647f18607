"""Admin.ListContainers: every container the daemon knows, in any state, oldest first."""

from __future__ import annotations

from dockyard.api import admin_pb2 as pb
from dockyard.cri.server.cri_service import CriService


async def list_containers(cri: CriService, request: pb.ListContainersRequest) -> pb.ListContainersResponse:
    return pb.ListContainersResponse(containers=[
        pb.Container(id=c.id, name=c.name, pod_id=c.sandbox_id, image=c.image_ref, image_id=c.image_id,
                     state=c.state.value, created_at=c.created_at, pid=c.pid)
        for c in sorted(cri.containers.list(), key=lambda c: (c.created_at, c.id))
    ])

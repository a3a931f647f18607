"""RemoveContainer: a running container is killed first (force); then the shim
forgets it, its rootfs is unmounted and its snapshot and bundle removed.
Idempotent: an unknown id answers OK.  The log file stays (kubelet owns it)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from .. import faults
from ..store.container import Container, ContainerState
from .container_stop import stop_container_now
from .cri_service import CriService


async def remove_container(cri: CriService, request: api_pb2.RemoveContainerRequest) -> api_pb2.RemoveContainerResponse:
    c = cri.containers.find(request.container_id)
    if c is None:
        return api_pb2.RemoveContainerResponse()
    async with cri.containers.index.lock(c.id):
        await remove_container_now(cri, c)
    return api_pb2.RemoveContainerResponse()


async def remove_container_now(cri: CriService, c: Container) -> None:
    """Caller holds the container's lock."""
    if c.id not in cri.containers.index:
        return
    if c.state in (ContainerState.RUNNING, ContainerState.CREATED, ContainerState.UNKNOWN):
        await stop_container_now(cri, c, timeout=0)
    await cri.release_container(c)
    faults.point("RemoveContainer/released")
    await cri.containers.delete(c.id)
    cri.forget_caches(c.id)
    cri.events.publish(cri, c, api_pb2.CONTAINER_DELETED_EVENT)

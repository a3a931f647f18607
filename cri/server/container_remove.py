"""RemoveContainer: a running container is killed first (force); then the shim
forgets it, its rootfs is unmounted and its snapshot and bundle removed.
Idempotent: an unknown id answers OK.  The log file stays (kubelet owns it)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from .. import faults
from ..store.container import Container, ContainerState
from .container_stop import stop_container_now
from .runtime import Runtime


async def remove_container(rt: Runtime, request: api_pb2.RemoveContainerRequest) -> api_pb2.RemoveContainerResponse:
    c = rt.containers.find(request.container_id)
    if c is None:
        return api_pb2.RemoveContainerResponse()
    async with rt.containers.index.lock(c.id):
        await remove_container_now(rt, c)
    return api_pb2.RemoveContainerResponse()


async def remove_container_now(rt: Runtime, c: Container) -> None:
    """Caller holds the container's lock."""
    if c.id not in rt.containers.index:
        return
    if c.state in (ContainerState.RUNNING, ContainerState.CREATED, ContainerState.UNKNOWN):
        await stop_container_now(rt, c, timeout=0)
    await rt.release_container(c)
    faults.point("RemoveContainer/released")
    rt.containers.delete(c.id)
    rt.exited.pop(c.id, None)
    rt.events.publish(rt, c, api_pb2.CONTAINER_DELETED_EVENT)

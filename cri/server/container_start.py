"""StartContainer: CREATED -> RUNNING through the shim's start."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from .. import errors
from ..store.container import ContainerState
from .runtime import Runtime, now_ns


async def start_container(rt: Runtime, request: api_pb2.StartContainerRequest) -> api_pb2.StartContainerResponse:
    c = rt.container(request.container_id)
    async with rt.containers.index.lock(c.id):
        if c.state is not ContainerState.CREATED:
            raise errors.FailedPrecondition(f"container {c.id} is {c.state.value}, not created: cannot start it")
        try:
            result = await rt.shims.client(c.sandbox_id).call("start", {"container_id": c.id})
        except errors.CriError as err:
            rt.record_exit(c, 128, now_ns(), reason="StartError", message=err.message)
            raise
        c.pid = int(result.get("pid", c.pid))
        c.started_at = now_ns()
        if c.state is ContainerState.CREATED:  # an exit may already have been recorded
            c.state = ContainerState.RUNNING
        rt.containers.save(c)
    rt.events.publish(rt, c, api_pb2.CONTAINER_STARTED_EVENT)
    return api_pb2.StartContainerResponse()

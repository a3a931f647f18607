"""UpdateContainerResources: CRI LinuxContainerResources -> OCI linux.resources -> the shim's runtime update."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from .. import errors
from ..oci.resources import linux_resources
from ..store.container import ContainerState
from .runtime import Runtime


async def update_container_resources(
    rt: Runtime, request: api_pb2.UpdateContainerResourcesRequest
) -> api_pb2.UpdateContainerResourcesResponse:
    c = rt.container(request.container_id)
    if c.state not in (ContainerState.CREATED, ContainerState.RUNNING):
        raise errors.FailedPrecondition(f"container {c.id} is {c.state.value}: cannot update its resources")
    # the same rules as at create: zero means unset, values are validated
    resources = linux_resources(request.linux, "linux")
    if resources:
        await rt.shims.client(c.sandbox_id).call("update", {"container_id": c.id, "resources": resources})
        config = c.config
        merged = config.linux.resources
        merged.MergeFrom(request.linux)
        c.config_b64 = c.encode_config(config)
        rt.containers.save(c)
    return api_pb2.UpdateContainerResourcesResponse()

"""UpdateContainerResources: CRI LinuxContainerResources -> OCI linux.resources -> the shim's runtime update."""

from __future__ import annotations

from typing import Any

from cri_api.v1 import api_pb2

from .. import errors
from ..store.container import ContainerState
from .runtime import Runtime


def oci_resources(r: api_pb2.LinuxContainerResources) -> dict[str, Any]:
    """Only the values the caller set (0 / empty = leave as is), as ``runtime update --resources`` reads them (pure)."""
    cpu: dict[str, Any] = {}
    if r.cpu_shares:
        cpu["shares"] = r.cpu_shares
    if r.cpu_quota:
        cpu["quota"] = r.cpu_quota
    if r.cpu_period:
        cpu["period"] = r.cpu_period
    if r.cpuset_cpus:
        cpu["cpus"] = r.cpuset_cpus
    if r.cpuset_mems:
        cpu["mems"] = r.cpuset_mems
    out: dict[str, Any] = {}
    if cpu:
        out["cpu"] = cpu
    memory: dict[str, Any] = {}
    if r.memory_limit_in_bytes:
        memory["limit"] = r.memory_limit_in_bytes
    if r.memory_swap_limit_in_bytes:
        memory["swap"] = r.memory_swap_limit_in_bytes
    if memory:
        out["memory"] = memory
    if r.hugepage_limits:
        out["hugepageLimits"] = [{"pageSize": h.page_size, "limit": h.limit} for h in r.hugepage_limits]
    if r.unified:
        out["unified"] = dict(r.unified)
    return out


async def update_container_resources(
    rt: Runtime, request: api_pb2.UpdateContainerResourcesRequest
) -> api_pb2.UpdateContainerResourcesResponse:
    c = rt.container(request.container_id)
    if c.state not in (ContainerState.CREATED, ContainerState.RUNNING):
        raise errors.FailedPrecondition(f"container {c.id} is {c.state.value}: cannot update its resources")
    resources = oci_resources(request.linux)
    if resources:
        await rt.shims.client(c.sandbox_id).call("update", {"container_id": c.id, "resources": resources})
        config = c.config
        merged = config.linux.resources
        merged.MergeFrom(request.linux)
        c.config_b64 = c.encode_config(config)
        rt.containers.save(c)
    return api_pb2.UpdateContainerResourcesResponse()

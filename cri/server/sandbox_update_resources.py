"""UpdatePodSandboxResources: the pod's new resources during an in-place resize.

kubelet calls it before it changes the pod cgroup itself, and takes an error
as the resize refused (kuberuntime_manager.go, doPodResizeAction).  The
values are checked as a container's are (InvalidArgument naming
``resources.<field>`` or ``overhead.<field>``), written into the pod cgroup
(resources plus overhead; cri/pod_cgroup.py has the rules and the files),
and recorded, so PodSandboxStatus's verbose info shows them.

A pod that is not ready has no processes to limit: FailedPrecondition.
"""

from __future__ import annotations

import asyncio
import base64

from cri_api.v1 import api_pb2

from .. import errors
from ..oci.resources import linux_resources
from ..pod_cgroup import apply_pod_resources, resource_writes, with_overhead
from ..store.sandbox import SandboxState
from .cri_service import CriService


async def update_pod_sandbox_resources(
    cri: CriService, request: api_pb2.UpdatePodSandboxResourcesRequest
) -> api_pb2.UpdatePodSandboxResourcesResponse:
    if not request.pod_sandbox_id:
        raise errors.InvalidArgument("pod_sandbox_id is required")
    sandbox = cri.sandbox(request.pod_sandbox_id)
    # Checked field by field as sent, so an error names what the caller wrote.
    linux_resources(request.resources, "resources", cri.node)
    linux_resources(request.overhead, "overhead", cri.node)
    total = linux_resources(with_overhead(request.resources, request.overhead), "resources", cri.node)
    async with cri.sandboxes.index.lock(sandbox.id):
        if sandbox.state is not SandboxState.READY:
            raise errors.FailedPrecondition(
                f"pod sandbox {sandbox.id} is {sandbox.state.value}: cannot update its resources")
        await asyncio.to_thread(apply_pod_resources, sandbox.cgroup_parent, resource_writes(total), "resources")
        recorded = api_pb2.UpdatePodSandboxResourcesRequest()
        recorded.CopyFrom(request)
        recorded.pod_sandbox_id = ""
        sandbox.resources_update_b64 = base64.b64encode(recorded.SerializeToString()).decode()
        cri.sandboxes.save(sandbox)
    return api_pb2.UpdatePodSandboxResourcesResponse()

"""StopPodSandbox: stop every container, stop the pause container, CNI DEL.

Idempotent: a stopped pod, or one that no longer exists, answers OK (the CRI
asks that Stop not fail once the resources are reclaimed).  The netns stays
pinned until RemovePodSandbox, so a repeated DEL still finds it.
"""

from __future__ import annotations

import contextlib
import logging

from cri_api.v1 import api_pb2

from .. import errors, faults
from ..store.container import ContainerState
from ..store.sandbox import Sandbox, SandboxState
from .container_stop import stop_container_now
from .cri_service import CriService
from .sandbox_run import port_mappings

log = logging.getLogger("dockyard.cri.sandbox_stop")

PAUSE_STOP_TIMEOUT_S = 10.0


async def stop_pod_sandbox(cri: CriService, request: api_pb2.StopPodSandboxRequest) -> api_pb2.StopPodSandboxResponse:
    sandbox = cri.sandboxes.find(request.pod_sandbox_id)
    if sandbox is None:
        return api_pb2.StopPodSandboxResponse()
    await stop_sandbox(cri, sandbox)
    return api_pb2.StopPodSandboxResponse()


async def stop_sandbox(cri: CriService, sandbox: Sandbox) -> None:
    for c in cri.containers.of_sandbox(sandbox.id):
        if c.state in (ContainerState.RUNNING, ContainerState.CREATED):
            async with cri.containers.index.lock(c.id):
                await stop_container_now(cri, c, timeout=0)
    faults.point("StopPodSandbox/containers-stopped")
    async with cri.sandboxes.index.lock(sandbox.id):
        if cri.shims.has(sandbox.id) and sandbox.pause_exit_code is None:
            await cri.kill_and_wait(sandbox.id, sandbox.id, PAUSE_STOP_TIMEOUT_S)
        faults.point("StopPodSandbox/pause-stopped")
        if sandbox.netns_path or not sandbox.host_network:
            config = sandbox.config
            await cri.cni.teardown(
                sandbox.id, sandbox.netns_path, k8s_namespace=config.metadata.namespace,
                k8s_name=config.metadata.name, k8s_uid=config.metadata.uid, port_mappings=port_mappings(config),
            )
        faults.point("StopPodSandbox/network-down")
        was_ready = sandbox.state is SandboxState.READY
        if sandbox.state is not SandboxState.NOTREADY:
            sandbox.state = SandboxState.NOTREADY
            await cri.sandboxes.save(sandbox)
        if was_ready:
            with contextlib.suppress(errors.CriError):
                cri.publish_sandbox(sandbox, api_pb2.CONTAINER_STOPPED_EVENT)

"""RemovePodSandbox: stop if needed, remove every container, the pause container,
the shim, the netns, the pod files and /dev/shm, the pod cgroup, the record.

Idempotent: an unknown id answers OK.  Every step tolerates its resource being
gone already, so a Remove interrupted by a daemon crash can simply be retried
(recovery does exactly that for records it finds half removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil

from cri_api.v1 import api_pb2

from .. import errors, faults
from ..network import netns as netns_mod
from ..pod_cgroup import pod_cgroup_parent, remove_pod_cgroup
from ..store.sandbox import Sandbox, SandboxState
from .container_remove import remove_container_now
from ..bundle import release_rootfs, unmount_all
from .cri_service import CriService
from .sandbox_stop import stop_sandbox

log = logging.getLogger("dockyard.cri.sandbox_remove")


async def remove_pod_sandbox(cri: CriService, request: api_pb2.RemovePodSandboxRequest) -> api_pb2.RemovePodSandboxResponse:
    sandbox = cri.sandboxes.find(request.pod_sandbox_id)
    if sandbox is None:
        return api_pb2.RemovePodSandboxResponse()
    await remove_sandbox(cri, sandbox)
    return api_pb2.RemovePodSandboxResponse()


async def remove_sandbox(cri: CriService, sandbox: Sandbox) -> None:
    if sandbox.state is not SandboxState.NOTREADY:
        await stop_sandbox(cri, sandbox)
    elif not sandbox.host_network:
        # NOTREADY without a StopPodSandbox (recovery marked it after a reboot
        # or a dead shim): an ADD whose DEL never ran still holds its address
        # in host-local's on-disk store.  Its record says so; none, nothing to do.
        await cri.cni.teardown(sandbox.id, sandbox.netns_path, if_recorded=True)
    for c in cri.containers.of_sandbox(sandbox.id):
        async with cri.containers.index.lock(c.id):
            await remove_container_now(cri, c)
    faults.point("RemovePodSandbox/containers-removed")
    async with cri.sandboxes.index.lock(sandbox.id):
        if cri.shims.has(sandbox.id):
            with contextlib.suppress(errors.NotFound):
                await cri.shims.client(sandbox.id).call("delete", {"container_id": sandbox.id})
        await cri.shims.shutdown(sandbox.id)
        faults.point("RemovePodSandbox/shim-gone")
        await asyncio.to_thread(release_sandbox_files, cri, sandbox)
        await cri.images.rootfs_released()
        faults.point("RemovePodSandbox/released")
        await cri.sandboxes.delete(sandbox.id)
        cri.forget_caches(sandbox.id)
    with contextlib.suppress(errors.CriError):
        cri.publish_sandbox(sandbox, api_pb2.CONTAINER_DELETED_EVENT)
    log.info("pod sandbox %s removed", sandbox.id)


def release_sandbox_files(cri: CriService, sandbox: Sandbox) -> None:
    """Blocking, idempotent: pause rootfs + snapshot, /dev/shm, netns, files, pod cgroup."""
    bundle = cri.pause_bundle(sandbox.id)
    release_rootfs(cri.snapshotter, os.path.join(bundle, "rootfs"), sandbox.id, bundle)
    sdir = cri.sandbox_dir(sandbox.id)
    shm = os.path.join(sdir, "shm")
    if os.path.isdir(shm):
        unmount_all(shm)
    netns_mod.remove(cri.netns_path(sandbox.id))
    shutil.rmtree(sdir, ignore_errors=True)
    if not sandbox.config.linux.cgroup_parent:
        remove_pod_cgroup(sandbox.cgroup_parent or pod_cgroup_parent(
            cri.config.cgroup_driver, cri.config.cgroup_parent, sandbox.id))

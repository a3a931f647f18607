"""StartContainer: CREATED -> RUNNING.

A container created the usual way has no task yet (cri/store/container.py):
the shim runs the runtime's create and start as one call.  If that fails,
the container is EXITED with reason StartError, and the runtime is told to
forget whatever it had made, since the shim keeps nothing of a failed
create.  A container made from a checkpoint archive (CreateContainer with
the archive as its image) gets its task from the runtime's restore instead,
in the same call.  A container whose task was created with it (a record from before)
is started through the shim's start.  A running container answers OK: the
caller is retrying a start whose answer it lost (its daemon may have died
after the shim started the container; restart adopts such tasks)."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from cri_api.v1 import api_pb2

from .. import errors, faults
from ..store.container import Container, ContainerState
from ..store.sandbox import SandboxState
from .cri_service import CriService, now_ns

# The shim gives the runtime's restore 600 s (shim/oci_runtime.py); its answer may come a little later.
RESTORE_TIMEOUT_S = 630.0


async def start_container(cri: CriService, request: api_pb2.StartContainerRequest) -> api_pb2.StartContainerResponse:
    c = cri.container(request.container_id)
    async with cri.containers.index.lock(c.id):
        if c.state is ContainerState.RUNNING:
            # A retry: the first call (or its shim, after the daemon died) started it.
            return api_pb2.StartContainerResponse()
        if c.state is not ContainerState.CREATED:
            raise errors.FailedPrecondition(f"container {c.id} is {c.state.value}, not created: cannot start it")
        sandbox = cri.sandbox(c.sandbox_id)
        task_pending = c.task_pending  # an exit recorded during the call changes it
        if task_pending and sandbox.state is not SandboxState.READY:
            raise errors.FailedPrecondition(
                f"pod sandbox {sandbox.id} is {sandbox.state.value}, not ready: cannot start container {c.id}")
        faults.point("StartContainer/starting")
        try:
            result = await (_create_and_start(cri, c) if task_pending else
                            cri.shims.client(c.sandbox_id).call("start", {"container_id": c.id}))
        except errors.CriError as err:
            if task_pending:
                await cri.shims.force_delete(sandbox.handler, c.id)
            cri.record_exit(c, 128, now_ns(), reason="StartError", message=err.message)
            raise
        faults.point("StartContainer/started")
        c.pid = int(result.get("pid", c.pid))
        c.started_at = now_ns()
        if c.state is ContainerState.CREATED:  # an exit may already have been recorded
            c.state = ContainerState.RUNNING
        if task_pending:
            # Not awaited before answering: the shim made this task and keeps
            # it, so a daemon killed before RUNNING is on disk learns it back
            # from the shim at restart (restart.py assumption 8, adopt_task).
            # Two fsyncs off the call: 10 ms at p50 with ten pods starting.
            cri.containers.save(c)
        else:
            await cri.containers.save(c)
        faults.point("StartContainer/saved")
        cri.metrics.container_started(sandbox.handler, max(0, c.started_at - c.created_at) / 1e9)
    cri.events.publish(cri, c, api_pb2.CONTAINER_STARTED_EVENT)
    return api_pb2.StartContainerResponse()


async def _create_and_start(cri: CriService, c: Container) -> dict[str, Any]:
    config = c.config
    params: dict[str, Any] = {
        "container_id": c.id, "bundle": c.bundle, "stdin": config.stdin, "stdin_once": config.stdin_once,
        "tty": config.tty, "log_path": c.log_path, "start": True,
    }
    if c.restore_from:  # a restore puts back every page of the dumped memory: it may take minutes
        params["restore"] = c.restore_from
        try:
            return await cri.shims.client(c.sandbox_id).call("create", params, timeout=RESTORE_TIMEOUT_S)
        finally:
            # The images are as big as the dumped memory and serve one restore; criu's log
            # (restore-work beside them) stays with the bundle.
            await asyncio.to_thread(shutil.rmtree, c.restore_from, True)
    return await cri.shims.client(c.sandbox_id).call("create", params)

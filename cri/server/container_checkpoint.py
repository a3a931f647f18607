"""CheckpointContainer: a running container's processes and files, into an archive at ``location``.

The runtime dumps the processes with CRIU (``checkpoint --leave-running``: a
checkpoint taken through kubelet's API leaves the container running, as
CRI-O does); the daemon adds the container's config, spec and changed files
and writes the archive (cri/checkpoint_archive.py has the layout) beside
``location`` and renames it into place, so a failed call leaves no archive,
and no scratch files (under <state_dir>/checkpoints).  A daemon killed
meanwhile leaves its scratch dir, which recovery removes (cri/restart.py),
and perhaps the archive's temp file (``.checkpoint-*.tar``) beside
``location``, which the daemon cannot find again.

Errors: no ``location``, a relative one or an existing directory is
InvalidArgument naming it; an unknown container NotFound; one that is not
running, or has a terminal, FailedPrecondition; what CRIU reports comes
back as the runtime's error (Internal, with criu's own error lines).
``timeout`` (seconds, 0 = the shim's limit of 10 minutes) bounds the dump:
the shim kills the runtime then, and the daemon waits a little longer for
that answer.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile

from cri_api.v1 import api_pb2

from .. import checkpoint_archive as archive
from .. import errors, faults
from ..store.container import ContainerState
from .cri_service import CriService, now_ns

# The shim's own limit for a dump with no timeout (shim/oci_runtime.py CHECKPOINT_TIMEOUT_S), and
# how much longer the daemon waits for the shim's answer than the shim waits for the runtime.
SHIM_LIMIT_S = 600
ANSWER_MARGIN_S = 30.0


def check_request(request: api_pb2.CheckpointContainerRequest) -> None:
    """The request's own fields (blocking only for the directory test)."""
    location = request.location
    if not location:
        raise errors.InvalidArgument("location is required (where the checkpoint archive goes)")
    if not os.path.isabs(location):
        raise errors.InvalidArgument(f"location {errors.shorten(location)!r} must be an absolute path")
    if os.path.isdir(location):
        raise errors.InvalidArgument(f"location {errors.shorten(location)!r} is a directory: it names the archive file")
    if request.timeout < 0:
        raise errors.InvalidArgument(f"timeout {request.timeout} must not be negative")


async def checkpoint_container(cri: CriService, request: api_pb2.CheckpointContainerRequest) -> api_pb2.CheckpointContainerResponse:
    check_request(request)
    location = request.location
    c = cri.container(request.container_id)
    async with cri.containers.index.lock(c.id):
        if c.state is not ContainerState.RUNNING:
            raise errors.FailedPrecondition(f"container {c.id} is {c.state.value}: only a running container "
                                            "can be checkpointed")
        config = c.config
        if config.tty:
            raise errors.FailedPrecondition(f"container {c.id} has a terminal (config.tty): it cannot be checkpointed")
        sandbox = cri.sandbox(c.sandbox_id)
        base = os.path.join(cri.config.state_dir, "checkpoints")
        os.makedirs(base, mode=0o700, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix=c.id[:12] + "-", dir=base)
        try:
            faults.point("CheckpointContainer/dumping")
            image_dir, work_dir = os.path.join(scratch, archive.CHECKPOINT_DIR), os.path.join(scratch, "work")
            await cri.shims.client(c.sandbox_id).call(
                "checkpoint", {"container_id": c.id, "image_path": image_dir, "work_path": work_dir,
                               "leave_running": True, "timeout": int(request.timeout)},
                timeout=(request.timeout or SHIM_LIMIT_S) + ANSWER_MARGIN_S)
            meta = archive.CheckpointMeta(container_id=c.id, name=config.metadata.name, image_ref=c.image_id,
                                          image_name=c.image_ref, runtime=sandbox.handler)
            upper = archive.writable_layer(await asyncio.to_thread(cri.snapshotter.mounts, c.snapshot_key))
            await asyncio.to_thread(archive.write_archive, location, image_dir, work_dir, upper,
                                    os.path.join(c.bundle, "config.json"),
                                    archive.config_dump(meta, c.created_at, now_ns()))
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
    return api_pb2.CheckpointContainerResponse()

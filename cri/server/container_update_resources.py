"""UpdateContainerResources: CRI LinuxContainerResources -> OCI linux.resources.

A running container (or one whose task was created with it) is updated
through the shim's runtime ``update``.  A container that has no task yet
(cri/store/container.py) gets the values merged into its bundle's
config.json, so its task starts with them, as containerd does.  A running
container's config.json takes them too, once the runtime has applied them:
ContainerStatus reports the resources from it (a daemon that dies in
between reports the old values, and kubelet, seeing its resize not done,
sends the update again)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from cri_api.v1 import api_pb2

from .. import errors
from ..content.durable import write_atomic
from ..oci.resources import linux_resources
from ..store.container import ContainerState
from .cri_service import CriService


def merge_resources(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``current``, one level deep, the way the runtime's
    ``update`` changes only the values it is given (pure)."""
    merged = dict(current)
    for key, value in update.items():
        old = merged.get(key)
        merged[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


def _update_bundle(bundle: str, resources: dict[str, Any]) -> None:
    path = os.path.join(bundle, "config.json")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    linux = spec.setdefault("linux", {})
    linux["resources"] = merge_resources(linux.get("resources") or {}, resources)
    write_atomic(path, json.dumps(spec, indent=1).encode(), 0o644)


async def update_container_resources(
    cri: CriService, request: api_pb2.UpdateContainerResourcesRequest
) -> api_pb2.UpdateContainerResourcesResponse:
    c = cri.container(request.container_id)
    async with cri.containers.index.lock(c.id):
        if c.state not in (ContainerState.CREATED, ContainerState.RUNNING):
            raise errors.FailedPrecondition(f"container {c.id} is {c.state.value}: cannot update its resources")
        # the same rules as at create: zero means unset, values are validated
        resources = linux_resources(request.linux, "linux", cri.node)
        if not resources:
            return api_pb2.UpdateContainerResourcesResponse()
        if not c.task_pending:
            await cri.shims.client(c.sandbox_id).call("update", {"container_id": c.id, "resources": resources})
        await asyncio.to_thread(_update_bundle, c.bundle, resources)
        cri.bundle_facts.forget(c.id)  # ContainerStatus reports the new resources
        config = c.config
        config.linux.resources.MergeFrom(request.linux)
        c.config_b64 = c.encode_config(config)
        await cri.containers.save(c)
    return api_pb2.UpdateContainerResourcesResponse()

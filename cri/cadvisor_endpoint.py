"""The containerd API subset cAdvisor reads (api/cadvisor_containerd.py), answered from
dockyardd's records, on the socket ``cadvisor.socket`` names (off when empty).

A kubelet's cAdvisor watches every cgroup; one whose last path element holds
a 64-character id it offers to its containerd factory, which asks containerd
(its ``--containerd`` socket, /run/containerd/containerd.sock by default) for
that container.  Answered here, dockyardd's pods and containers become
labelled cAdvisor containers: the kubelet's Summary API then has each pod's
network (from the pause's /proc/<pid>/net/dev) and process stats, and
/metrics/cadvisor has their series, as on a containerd node.  Point the
socket there only on a node where no containerd serves it.

What cAdvisor uses of the answers:
* Containers/Get: ``labels`` (the CRI labels kubelet set: pod name,
  namespace, uid, container name; plus ``io.cri-containerd.kind``, "sandbox"
  for a pause, whose network cAdvisor then reads), ``image``, ``spec`` (the
  OCI config; only its JSON has to decode), ``created_at``.  An unknown id is
  NOT_FOUND: cAdvisor then treats the cgroup as a raw one.
* Tasks/Get: ``process.pid`` and ``status``. cAdvisor builds a container's
  handler once, with that pid; UNKNOWN (or NOT_FOUND) makes it retry for
  about 3 s, so an object whose pid is not known yet says UNKNOWN.
* Version/Version: once, when the kubelet starts; the factory registers
  only if it answers.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from dockyard.api import cadvisor_containerd as api
from dockyard.api import cadvisor_containerd_pb2 as pb
from google.protobuf import any_pb2, timestamp_pb2  # type: ignore[import-untyped]

from . import errors
from .server.cri_service import CriService
from .server.instrument import Instrument
from .server.version import dockyard_version
from .store.container import Container, ContainerState
from .store.sandbox import Sandbox, SandboxState

_TASK_STATUS = {
    ContainerState.CREATING: pb.CREATED, ContainerState.CREATED: pb.CREATED,
    ContainerState.RUNNING: pb.RUNNING, ContainerState.EXITED: pb.STOPPED, ContainerState.UNKNOWN: pb.UNKNOWN,
}


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def _exact(found: Any, wanted: str) -> Any:
    """The stores also find by id prefix; cAdvisor always asks by a whole id."""
    return found if found is not None and found.id == wanted else None


def container_message(c: Container, spec_json: bytes) -> pb.Container:
    """A container as containerd's CRI describes it to cAdvisor (pure)."""
    config = c.config
    labels = dict(config.labels)
    labels[api.KIND_LABEL] = "container"
    return pb.Container(
        id=c.id, labels=labels, image=c.image_ref, spec=any_pb2.Any(type_url=api.SPEC_TYPE_URL, value=spec_json),
        runtime=pb.Container.Runtime(name="dockyard"), snapshotter="overlayfs", snapshot_key=c.snapshot_key,
        created_at=_timestamp(c.created_at), sandbox=c.sandbox_id,
    )


def sandbox_message(s: Sandbox, spec_json: bytes) -> pb.Container:
    """A pod's pause as containerd's CRI describes it to cAdvisor (pure)."""
    labels = dict(s.config.labels)
    labels[api.KIND_LABEL] = "sandbox"
    return pb.Container(
        id=s.id, labels=labels, spec=any_pb2.Any(type_url=api.SPEC_TYPE_URL, value=spec_json),
        runtime=pb.Container.Runtime(name="dockyard"), created_at=_timestamp(s.created_at), sandbox=s.id,
    )


def container_process(c: Container) -> pb.Process:
    """The container's task. Without a pid yet (dockyardd creates the runtime's
    container in StartContainer, and cAdvisor sees its cgroup as soon as the
    runtime makes it) the status is UNKNOWN, which cAdvisor retries for about
    3 s: a handler built with no pid would never report the container's
    processes or network."""
    if c.pid <= 0:
        return pb.Process(container_id=c.id, id=c.id, status=pb.UNKNOWN)
    status = _TASK_STATUS[c.state]
    process = pb.Process(container_id=c.id, id=c.id, pid=c.pid, status=status)
    if status == pb.STOPPED:
        process.exit_status = c.exit_code & 0xFFFFFFFF
        process.exited_at.CopyFrom(_timestamp(c.finished_at))
    return process


def sandbox_process(s: Sandbox) -> pb.Process:
    """The pause's task: running from its create (the pid is known then, before the pod's
    network is up and the sandbox READY), UNKNOWN before (cAdvisor retries), STOPPED after."""
    if s.pid <= 0:
        return pb.Process(container_id=s.id, id=s.id, status=pb.UNKNOWN)
    if s.state is SandboxState.NOTREADY:
        return pb.Process(container_id=s.id, id=s.id, pid=s.pid, status=pb.STOPPED,
                          exit_status=(s.pause_exit_code or 0) & 0xFFFFFFFF)
    return pb.Process(container_id=s.id, id=s.id, pid=s.pid, status=pb.RUNNING)


def _read_spec(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b"{}"  # a bundle gone meanwhile: cAdvisor only needs JSON that decodes


class CadvisorEndpoint:
    def __init__(self, cri: CriService) -> None:
        self.cri = cri

    async def get_container(self, request: pb.GetContainerRequest) -> pb.GetContainerResponse:
        c = _exact(self.cri.containers.find(request.id), request.id)
        if c is not None:
            spec = await asyncio.to_thread(_read_spec, os.path.join(c.bundle, "config.json"))
            return pb.GetContainerResponse(container=container_message(c, spec))
        s = _exact(self.cri.sandboxes.find(request.id), request.id)
        if s is not None:
            spec = await asyncio.to_thread(_read_spec, os.path.join(self.cri.pause_bundle(s.id), "config.json"))
            return pb.GetContainerResponse(container=sandbox_message(s, spec))
        raise errors.NotFound(f"container {request.id!r} not found")

    async def get_task(self, request: pb.GetTaskRequest) -> pb.GetTaskResponse:
        c = _exact(self.cri.containers.find(request.container_id), request.container_id)
        if c is not None:
            return pb.GetTaskResponse(process=container_process(c))
        s = _exact(self.cri.sandboxes.find(request.container_id), request.container_id)
        if s is not None:
            return pb.GetTaskResponse(process=sandbox_process(s))
        raise errors.NotFound(f"task {request.container_id!r} not found")

    async def version(self, request: Any) -> pb.VersionResponse:
        return pb.VersionResponse(version=dockyard_version(), revision="dockyard")


def cadvisor_handlers(instrument: Instrument, cri: CriService) -> list[Any]:
    """The grpc generic handlers of the endpoint, behind the instrument wrapper (methods ``cAdvisor/...``)."""
    endpoint = CadvisorEndpoint(cri)
    behaviour = {
        "containerd.services.containers.v1.Containers/Get": ("cAdvisor/Containers.Get", endpoint.get_container),
        "containerd.services.tasks.v1.Tasks/Get": ("cAdvisor/Tasks.Get", endpoint.get_task),
        "containerd.services.version.v1.Version/Version": ("cAdvisor/Version", endpoint.version),
    }
    return api.generic_handlers({key: instrument.wrap(name, h) for key, (name, h) in behaviour.items()})

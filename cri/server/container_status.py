"""ContainerStatus: the record as CRI sees it, plus verbose info (pid, spec, runtime).

``user`` and ``resources`` come from the bundle's config.json (read once,
cri/bundle_facts.py), which UpdateContainerResources keeps current
(containerd reports the spec's resources too): kubelet compares
``resources`` with what it asked for to tell whether an in-place resize is
done.

``image`` is the image's first tag *now*, as containerd reports it, not the
image id kubelet passed to CreateContainer: kubelet copies it into the pod's
status.containerStatuses[].image, which users (and the node e2e specs that
change a container's image) compare with the image the pod spec names."""

from __future__ import annotations

import json
import os

from cri_api.v1 import api_pb2

from .. import errors
from ..bundle_facts import BundleFacts
from ..image.store import ImageRecord
from ..oci.resources import cri_resources
from ..store.container import CRI_STATE, Container, ContainerState
from .cri_service import CriService

OOM_KILLED = "OOMKilled"
COMPLETED = "Completed"
ERROR = "Error"


def exit_reason(c: Container) -> str:
    """Completed / Error / OOMKilled (or a reason recorded at the exit, e.g. ShimDied) (pure)."""
    if c.state is not ContainerState.EXITED:
        return ""
    if c.reason:
        return c.reason
    if c.oom_killed:
        return OOM_KILLED
    return COMPLETED if c.exit_code == 0 else ERROR


def reported_image(c: Container, image: ImageRecord | None) -> tuple[str, str]:
    """(ContainerStatus.image.image, .image_ref) for a container of ``image`` (None: removed since) (pure).

    The image's first tag, else what CreateContainer was given (an id, when
    kubelet creates it); its first repo digest, else the one recorded at
    create."""
    if image is None or image.id != c.image_id:
        return c.image_ref, c.image_repo_digest
    return (image.repo_tags[0] if image.repo_tags else c.image_ref,
            image.repo_digests[0] if image.repo_digests else c.image_repo_digest)


def _image_record(cri: CriService, c: Container) -> ImageRecord | None:
    if not c.image_id:
        return None
    try:
        record: ImageRecord = cri.images.get(c.image_id)
    except errors.NotFound:
        return None
    return record


def container_status(cri: CriService, c: Container) -> api_pb2.ContainerStatus:
    """The status, kept until one of its inputs changes (built_messages.py:
    copy it into an answer, never change it)."""
    image = reported_image(c, _image_record(cri, c))
    facts = cri.bundle_facts.get(c.id, c.bundle)
    inputs = (c.config_b64, c.state, c.created_at, c.started_at, c.finished_at, c.exit_code, c.reason,
              c.oom_killed, c.message, c.log_path, c.image_id, image, facts)
    return cri.kept.container_status.get(c.id, inputs, lambda: build_container_status(c, image, facts))


def build_container_status(c: Container, reported: tuple[str, str], facts: BundleFacts | None) -> api_pb2.ContainerStatus:
    """(pure) ``reported``: reported_image's answer; ``facts``: the bundle's."""
    config = c.config
    image, image_ref = reported
    status = api_pb2.ContainerStatus(
        id=c.id, metadata=config.metadata, state=CRI_STATE[c.state], created_at=c.created_at,
        started_at=c.started_at, finished_at=c.finished_at if c.state is ContainerState.EXITED else 0,
        exit_code=c.exit_code if c.state is ContainerState.EXITED else 0,
        image=api_pb2.ImageSpec(image=image, annotations=config.image.annotations),
        image_ref=image_ref, image_id=c.image_id, reason=exit_reason(c), message=c.message,
        labels=config.labels, annotations=config.annotations, log_path=c.log_path,
    )
    for m in config.mounts:
        status.mounts.append(m)
    # The identity the process runs as, from its OCI spec (as containerd
    # reports it): the SupplementalGroupsPolicy result shows here.
    if facts is not None and facts.has_user:
        status.user.CopyFrom(api_pb2.ContainerUser(linux=api_pb2.LinuxContainerUser(
            uid=facts.uid, gid=facts.gid, supplemental_groups=facts.additional_gids)))
    if facts is not None:
        resources = spec_resources(facts)
        if resources is not None:
            status.resources.linux.CopyFrom(resources)
    return status


def spec_resources(facts: BundleFacts) -> api_pb2.LinuxContainerResources | None:
    """The container's linux resources as its spec holds them now (pure)."""
    try:
        return cri_resources(facts.resources or {}, facts.oom_score_adj)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def verbose_info(cri: CriService, c: Container) -> dict[str, str]:
    spec: object = None
    try:
        with open(os.path.join(c.bundle, "config.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        spec = None
    sandbox = cri.sandboxes.find(c.sandbox_id)
    info = {
        "sandboxID": c.sandbox_id, "pid": c.pid, "removing": False, "snapshotKey": c.snapshot_key,
        "snapshotter": "overlayfs", "runtimeType": "dockyard-shim",
        "runtimeHandler": sandbox.handler if sandbox else "", "bundle": c.bundle, "runtimeSpec": spec,
        "state": c.state.value,
    }
    return {"info": json.dumps(info)}


async def container_status_rpc(cri: CriService, request: api_pb2.ContainerStatusRequest) -> api_pb2.ContainerStatusResponse:
    c = cri.container(request.container_id)
    resp = api_pb2.ContainerStatusResponse(status=container_status(cri, c))
    if request.verbose:
        resp.info.update(verbose_info(cri, c))
    return resp

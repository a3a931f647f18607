"""ListContainers with the CRI filter: id (prefix), state, pod sandbox id (prefix), labels."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from cri_api.v1 import api_pb2

from ..store.container import CRI_STATE, Container, ContainerState
from .cri_service import CriService


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def container_matches(c: Container, f: api_pb2.ContainerFilter | api_pb2.ContainerStatsFilter | None,
                      labels: Mapping[str, str]) -> bool:
    """The CRI filter rules (pure), for ListContainers and ListContainerStats: every
    set field must match (ids by prefix; an unset one is "", a prefix of all)."""
    if f is None:
        return True
    if isinstance(f, api_pb2.ContainerFilter) and f.HasField("state") and CRI_STATE[c.state] != f.state.state:
        return False
    return c.id.startswith(f.id) and c.sandbox_id.startswith(f.pod_sandbox_id) and labels_match(f.label_selector, labels)


async def list_containers(cri: CriService, request: api_pb2.ListContainersRequest) -> api_pb2.ListContainersResponse:
    f = request.filter if request.HasField("filter") else None
    out = api_pb2.ListContainersResponse()
    for c in sorted(cri.containers.list(), key=lambda c: c.created_at):
        if c.state is ContainerState.CREATING:
            continue  # not yet a container anyone can act on
        inputs = (c.config_b64, c.state, c.created_at, c.sandbox_id, c.image_ref, c.image_repo_digest, c.image_id)
        item = cri.kept.container_item.get(c.id, inputs, partial(build_container_item, c))
        if container_matches(c, f, item.labels):
            out.containers.append(item)
    return out


def build_container_item(c: Container) -> api_pb2.Container:
    """ListContainers' entry for ``c`` (pure); kept as built_messages.py says."""
    config = c.config
    return api_pb2.Container(
        id=c.id, pod_sandbox_id=c.sandbox_id, metadata=config.metadata,
        image=api_pb2.ImageSpec(image=c.image_ref), image_ref=c.image_repo_digest, image_id=c.image_id,
        state=CRI_STATE[c.state], created_at=c.created_at, labels=config.labels, annotations=config.annotations,
    )

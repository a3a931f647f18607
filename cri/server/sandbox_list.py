"""ListPodSandbox with the CRI filter: id (prefix), state, labels."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from cri_api.v1 import api_pb2

from ..store.sandbox import Sandbox, SandboxState
from .container_list import labels_match
from .cri_service import CriService
from .sandbox_status import CRI_SANDBOX_STATE


def sandbox_matches(s: Sandbox, f: api_pb2.PodSandboxFilter | api_pb2.PodSandboxStatsFilter | None,
                    labels: Mapping[str, str]) -> bool:
    """As container_matches, for ListPodSandbox and ListPodSandboxStats."""
    if f is None:
        return True
    if isinstance(f, api_pb2.PodSandboxFilter) and f.HasField("state") and CRI_SANDBOX_STATE[s.state] != f.state.state:
        return False
    return s.id.startswith(f.id) and labels_match(f.label_selector, labels)


async def list_pod_sandbox(cri: CriService, request: api_pb2.ListPodSandboxRequest) -> api_pb2.ListPodSandboxResponse:
    f = request.filter if request.HasField("filter") else None
    out = api_pb2.ListPodSandboxResponse()
    for s in sorted(cri.sandboxes.list(), key=lambda s: s.created_at):
        if s.state is SandboxState.INIT:
            continue
        inputs = (s.config_b64, s.state, s.created_at, s.runtime_handler)
        item = cri.kept.sandbox_item.get(s.id, inputs, partial(build_sandbox_item, s))
        if sandbox_matches(s, f, item.labels):
            out.items.append(item)
    return out


def build_sandbox_item(s: Sandbox) -> api_pb2.PodSandbox:
    """ListPodSandbox's entry for ``s`` (pure); kept as built_messages.py says."""
    config = s.config
    return api_pb2.PodSandbox(
        id=s.id, metadata=config.metadata, state=CRI_SANDBOX_STATE[s.state], created_at=s.created_at,
        labels=config.labels, annotations=config.annotations, runtime_handler=s.runtime_handler,
    )

"""What the daemon asks of a container's config.json again and again, read once.

kubelet asks for every container's status every second and runs an exec
probe in each every few seconds; each of those read and parsed the bundle's
config.json (the user for ContainerStatus, the process for ExecSync, the
cgroupsPath for stats).  With 110 pods that was 2 to 3 ms of the event loop
per container and second, for values that change only through one RPC:
UpdateContainerResources rewrites ``linux.resources`` (which
ContainerStatus reports) and then forgets the container's facts.

So the cache holds a container's facts from its first use until
``forget(id)``, which container removal (cri_service.forget_caches) and
UpdateContainerResources call.
A config.json that cannot be read is not cached: the next call tries again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class BundleFacts:
    cgroups_path: str
    process: dict[str, Any] | None  # the spec's process (ExecSync copies it); treat as read-only
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    has_user: bool
    resources: dict[str, Any] | None = None  # linux.resources; treat as read-only
    oom_score_adj: int = 0


def facts_of(spec: Any) -> BundleFacts:
    """The facts of a parsed OCI spec (pure); missing parts are empty, never an error."""
    spec = spec if isinstance(spec, dict) else {}
    linux = spec.get("linux") if isinstance(spec.get("linux"), dict) else {}
    process = spec.get("process") if isinstance(spec.get("process"), dict) else None
    user = process.get("user") if process is not None and isinstance(process.get("user"), dict) else None
    try:
        uid, gid = (int(user.get("uid", 0)), int(user.get("gid", 0))) if user else (0, 0)
        gids = tuple(int(g) for g in user.get("additionalGids", []) or []) if user else ()
    except (TypeError, ValueError):
        user, uid, gid, gids = None, 0, 0, ()
    resources = linux.get("resources") if isinstance(linux.get("resources"), dict) else None
    try:
        oom = int(process.get("oomScoreAdj", 0) or 0) if process is not None else 0
    except (TypeError, ValueError):
        oom = 0
    return BundleFacts(cgroups_path=str(linux.get("cgroupsPath", "") or ""), process=process,
                       uid=uid, gid=gid, additional_gids=gids, has_user=user is not None,
                       resources=resources, oom_score_adj=oom)


class BundleFactsCache:
    """Container id -> BundleFacts of its bundle's config.json."""

    def __init__(self) -> None:
        self._facts: dict[str, BundleFacts] = {}

    def get(self, container_id: str, bundle: str) -> BundleFacts | None:
        """The facts, read from ``bundle``/config.json on first use; None if it cannot be read."""
        facts = self._facts.get(container_id)
        if facts is not None:
            return facts
        try:
            with open(os.path.join(bundle, "config.json"), "rb") as f:
                spec = json.loads(f.read())
        except (OSError, ValueError):
            return None
        facts = self._facts[container_id] = facts_of(spec)
        return facts

    def forget(self, container_id: str) -> None:
        self._facts.pop(container_id, None)

    def __len__(self) -> int:
        return len(self._facts)

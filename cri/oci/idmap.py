"""CRI IDMapping lists -> OCI ``{containerID, hostID, size}`` lists."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cri_api.v1 import api_pb2

from ..errors import InvalidArgument


def oci_idmaps(maps: Iterable[api_pb2.IDMapping], field: str) -> list[dict[str, Any]]:
    out = []
    for i, m in enumerate(maps):
        if m.length == 0:
            raise InvalidArgument(f"{field}[{i}].length: must be at least 1")
        out.append({"containerID": m.container_id, "hostID": m.host_id, "size": m.length})
    return out

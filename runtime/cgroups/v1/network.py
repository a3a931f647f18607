"""linux.resources.network -> cgroup v1 net_cls.classid and net_prio.ifpriomap.

These hierarchies are often not mounted (they are not on this project's test
machine); the manager reports a write to a missing hierarchy as Unsupported
naming the field.
"""

from __future__ import annotations

from ...kernel.errors import InvalidSpec
from .. import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.network"


def classid_writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    net = sv.section(resources, "network", FIELD)
    classid = sv.integer(net, "classID", f"{FIELD}.classID", minimum=0, maximum=(1 << 32) - 1)
    return [] if classid is None else [("net_cls.classid", str(classid))]


def priority_writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    net = sv.section(resources, "network", FIELD)
    out: list[tuple[str, str]] = []
    for i, raw in enumerate(sv.items(net, "priorities", f"{FIELD}.priorities")):
        field = f"{FIELD}.priorities[{i}]"
        item = sv.entry(raw, field)
        name = sv.string(item, "name", f"{field}.name")
        if not name or any(c.isspace() for c in name) or "/" in name:
            raise InvalidSpec(f"{field}.name", f"{name!r} is not an interface name")
        prio = sv.required_integer(item, "priority", f"{field}.priority", minimum=0, maximum=(1 << 32) - 1)
        out.append(("net_prio.ifpriomap", f"{name} {prio}"))
    return out

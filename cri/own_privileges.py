"""What the daemon itself holds, read from /proc/self: its capabilities and
its oom_score_adj.  A container can be given no more than this, so the spec
builders are told (privileged containers get the daemon's bounding set, as
with containerd; restrict_oom_score_adj clamps to the daemon's own score)."""

from __future__ import annotations

from dockyard.runtime.kernel.capabilities import CAPABILITIES, to_names

CAP_SYS_RESOURCE = CAPABILITIES["CAP_SYS_RESOURCE"]


def _status_mask(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    return 0


def own_oom_score_adj() -> int:
    with open("/proc/self/oom_score_adj") as f:
        return int(f.read().strip())


def has_cap_sys_resource() -> bool:
    return bool(_status_mask("CapEff") >> CAP_SYS_RESOURCE & 1)


def held_capabilities() -> list[str]:
    """The capability names in the daemon's bounding set."""
    return to_names(_status_mask("CapBnd"))

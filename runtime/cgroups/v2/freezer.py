"""The v2 freezer: writing 1 to ``cgroup.freeze`` asks for a freeze, which
is done only when ``cgroup.events`` reads ``frozen 1`` (Linux 5.2 and
later); the manager polls for that."""

from __future__ import annotations

from ...kernel.cgroupfs.files import parse_flat_keyed

CONTROL = "cgroup.freeze"
EVENTS = "cgroup.events"


def is_frozen(events: str) -> bool:
    """Whether ``cgroup.events`` text says the cgroup is frozen."""
    return parse_flat_keyed(events).get("frozen", 0) == 1

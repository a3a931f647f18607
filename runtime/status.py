"""The container's lifecycle, as data.

::

    creating --> created --start--> running <--pause/resume--> paused
        |           |                  |                          |
        +-----------+------(init exits)+-------------------------> stopped --delete--> (gone)

The status is never stored: it is derived each time from the init process
(alive? which start time?), the exec fifo (present until ``start``) and the
freezer.  Storing it would go stale the moment the init exits.
"""

from __future__ import annotations

import enum

from .errors import FailedPrecondition


class Status(enum.Enum):
    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


# verb -> the states in which it is legal
_ALLOWED: dict[str, frozenset[Status]] = {
    "start": frozenset({Status.CREATED}),
    "kill": frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    "pause": frozenset({Status.RUNNING}),
    "resume": frozenset({Status.PAUSED}),
    "exec": frozenset({Status.CREATED, Status.RUNNING}),
    "update": frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    "delete": frozenset({Status.STOPPED, Status.CREATED}),
    "ps": frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
    "events": frozenset({Status.CREATED, Status.RUNNING, Status.PAUSED}),
}


def can(verb: str, status: Status) -> bool:
    return status in _ALLOWED[verb]


def require(verb: str, status: Status, container_id: str) -> None:
    """Raise a FailedPrecondition that names the verb and the state."""
    if not can(verb, status):
        raise FailedPrecondition(f"cannot {verb} container", container_id,
                                 f"container is in {status.value} state")

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

from .kernel.errors import FailedPrecondition

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import ClassVar


class Status:
    """One of five singletons with a ``value`` (runc's word for it).

    Not an enum.Enum: ``enum`` stays off the hot paths
    (runtime/kernel/lean/README.md).  Compare with ``==`` or ``is``."""

    __slots__ = ("value",)
    CREATING: ClassVar[Status]
    CREATED: ClassVar[Status]
    RUNNING: ClassVar[Status]
    PAUSED: ClassVar[Status]
    STOPPED: ClassVar[Status]
    ALL: ClassVar[tuple[Status, ...]]  # in lifecycle order

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"<Status.{self.value.upper()}>"


Status.CREATING = Status("creating")
Status.CREATED = Status("created")
Status.RUNNING = Status("running")
Status.PAUSED = Status("paused")
Status.STOPPED = Status("stopped")
Status.ALL = (Status.CREATING, Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED)


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
    # runc checkpoints a paused container too (criu freezes it anyway)
    "checkpoint": frozenset({Status.RUNNING, Status.PAUSED}),
}


def can(verb: str, status: Status) -> bool:
    return status in _ALLOWED[verb]


def require(verb: str, status: Status, container_id: str) -> None:
    """Raise a FailedPrecondition that names the verb and the state."""
    if not can(verb, status):
        raise FailedPrecondition(f"cannot {verb} container", container_id,
                                 f"container is in {status.value} state")

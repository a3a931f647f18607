"""The v1 freezer: ``freezer.state`` takes FROZEN or THAWED and reads back
FREEZING while the kernel is still stopping tasks (a task in an
uninterruptible sleep can hold it there).  A freeze is done only when the
file reads FROZEN; the manager polls for that."""

from __future__ import annotations

CONTROLLER = "freezer"
FILE = "freezer.state"
FROZEN = "FROZEN"
THAWED = "THAWED"


def state_value(frozen: bool) -> str:
    return FROZEN if frozen else THAWED


def is_frozen(text: str) -> bool:
    return text.strip() == FROZEN

"""Which verb is legal in which container status, and the error for an illegal one."""

from __future__ import annotations

import pytest

from dockyard.runtime.kernel.errors import FailedPrecondition
from dockyard.runtime.status import Status, can, require

C, R, P, S, N = Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED, Status.CREATING

# runc's rules, written out per verb: the states in which each verb may run.
LEGAL: dict[str, set[Status]] = {
    "start": {C},
    "kill": {C, R, P},
    "pause": {R},
    "resume": {P},
    "exec": {C, R},
    "update": {C, R, P},
    "delete": {S, C},
    "ps": {C, R, P},
    "events": {C, R, P},
}

TABLE = [(verb, status, status in legal) for verb, legal in LEGAL.items() for status in Status.ALL]


@pytest.mark.parametrize(("verb", "status", "allowed"), TABLE,
                         ids=[f"{v}-{s.value}" for v, s, _ in TABLE])
def test_can(verb: str, status: Status, allowed: bool) -> None:
    assert can(verb, status) is allowed


@pytest.mark.parametrize(("verb", "status", "allowed"), TABLE,
                         ids=[f"{v}-{s.value}" for v, s, _ in TABLE])
def test_require(verb: str, status: Status, allowed: bool) -> None:
    if allowed:
        require(verb, status, "c1")
        return
    with pytest.raises(FailedPrecondition) as info:
        require(verb, status, "c1")
    text = str(info.value)
    assert f"cannot {verb}" in text
    assert f"{status.value} state" in text
    assert info.value.target == "c1"


def test_nothing_is_legal_while_creating() -> None:
    assert not any(can(verb, N) for verb in LEGAL)


def test_status_values_are_runc_strings() -> None:
    """`state` prints these; tools compare them as strings."""
    assert [s.value for s in Status.ALL] == ["creating", "created", "running", "paused", "stopped"]

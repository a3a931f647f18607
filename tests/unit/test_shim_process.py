"""shim/process.py: which action each process state allows, and its transitions."""

from __future__ import annotations

import pytest

from dockyard.api.shim import Code, ShimError
from dockyard.shim import process
from dockyard.shim.process import CREATED, RUNNING, STOPPED

ALLOWED = {
    #          start  kill   kill_all delete exec   update checkpoint
    CREATED: (True, True, True, True, False, False, False),
    RUNNING: (False, True, True, False, True, True, True),
    STOPPED: (False, False, True, True, False, False, False),
}
ACTIONS = ("start", "kill", "kill_all", "delete", "exec", "update", "checkpoint")


@pytest.mark.parametrize("state", list(ALLOWED))
@pytest.mark.parametrize("index, action", list(enumerate(ACTIONS)))
def test_predicates(state: process.State, index: int, action: str) -> None:
    if ALLOWED[state][index]:
        process.check(state, action)
    else:
        with pytest.raises(ShimError) as info:
            process.check(state, action)
        assert info.value.code is Code.FAILED_PRECONDITION
        assert f"in {state.name} state" in info.value.message


@pytest.mark.parametrize("state, action, message", [
    (RUNNING, "start", "cannot start a container in running state"),
    (STOPPED, "start", "cannot start a container in stopped state"),
    (RUNNING, "delete", "cannot delete a container in running state"),
    (STOPPED, "kill", "cannot kill a container in stopped state"),
    (CREATED, "exec", "cannot exec a container in created state"),
])
def test_errors_name_action_and_state(state: process.State, action: str, message: str) -> None:
    with pytest.raises(ShimError, match=message):
        process.check(state, action)


def test_errors_name_the_kind_of_process() -> None:
    with pytest.raises(ShimError, match="cannot kill a process in stopped state"):
        process.check(STOPPED, "kill", "process")


@pytest.mark.parametrize("state, event, after", [
    (CREATED, "start", RUNNING),
    (CREATED, "exit", STOPPED),
    (RUNNING, "exit", STOPPED),
])
def test_legal_transitions(state: process.State, event: str, after: process.State) -> None:
    assert process.advance(state, event) is after


@pytest.mark.parametrize("state, event", [(RUNNING, "start"), (STOPPED, "start"), (STOPPED, "exit")])
def test_illegal_transitions_name_both(state: process.State, event: str) -> None:
    with pytest.raises(ShimError, match=f"{event} in {state.name} state"):
        process.advance(state, event)


@pytest.mark.parametrize("wait_status, code", [
    (0, 0), (3 << 8, 3), (255 << 8, 255), (9, 137), (15, 143), (6 | 0x80, 134),  # 0x80: core dumped
])
def test_exit_status_like_a_shell(wait_status: int, code: int) -> None:
    assert process.exit_status(wait_status) == code

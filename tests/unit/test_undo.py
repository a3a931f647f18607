"""runtime/undo.py: create's rollback, ExitStack's contract without contextlib."""

from __future__ import annotations

import pytest

from dockyard.runtime.undo import Undo


def test_a_failed_block_undoes_newest_first_and_keeps_its_error() -> None:
    done: list[str] = []
    with pytest.raises(KeyError), Undo() as undo:
        undo.callback(done.append, "a")
        undo.callback(done.append, "b")
        raise KeyError("step 3")
    assert done == ["b", "a"]


def test_pop_all_keeps_everything() -> None:
    done: list[str] = []
    with Undo() as undo:
        undo.callback(done.append, "a")
        undo.pop_all()
    assert done == []


def test_a_block_left_without_pop_all_is_undone() -> None:
    done: list[int] = []
    with Undo() as undo:
        undo.callback(done.append, 1)
    assert done == [1]


def test_every_step_runs_even_after_one_fails_and_the_last_failure_is_raised() -> None:
    done: list[str] = []

    def fail(what: str) -> None:
        raise OSError(what)

    with pytest.raises(OSError, match="older") as info, Undo() as undo:
        undo.callback(done.append, "oldest")
        undo.callback(fail, "older")
        undo.callback(fail, "newer")
        raise ValueError("body")
    assert done == ["oldest"]
    # the chain keeps every failure: older <- newer <- body
    assert str(info.value.__context__) == "newer"
    assert isinstance(info.value.__context__.__context__, ValueError)

"""The test session's subreaper (bundle.Subreaper) keeps reaping whatever a
round meets: a process may exit between the open and the read of its /proc
files, which read(2) answers with ESRCH.  That error once killed the reaper
thread for the rest of a session, under load, after which every container
init waited forever for the zombies of its pid namespace to be reaped (the
'pid N still alive after 10 s' failures of `make test` on a busy machine)."""

from __future__ import annotations

from pathlib import Path

import bundle
import pytest


def test_a_process_gone_mid_read_is_no_zombie_and_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(self: Path, *args: object, **kwargs: object) -> str:
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(Path, "read_text", gone)
    assert bundle._is_zombie(1) is False
    assert bundle._children(1) == []


def test_the_reaper_loop_outlives_a_failed_round() -> None:
    """A round that raises is recorded and the loop goes on to the next round
    (run here in this thread, on a reaper of its own, for two rounds)."""
    rounds: list[int] = []

    def flaky(pid: int) -> list[int]:
        rounds.append(pid)
        if len(rounds) == 1:
            raise ProcessLookupError(3, "No such process")
        reaper._stop.set()  # the second round ends the loop
        return []

    reaper = bundle.Subreaper(children=flaky)
    reaper._loop()
    assert len(rounds) == 2
    assert reaper.failures == ["ProcessLookupError(3, 'No such process')"]

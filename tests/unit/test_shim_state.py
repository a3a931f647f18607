"""shim/state.py: the container records a shim writes, read back in every version it has written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dockyard.shim import state

V1 = {"version": 1, "container_id": "c1", "bundle": "/b", "pid": 42, "status": "stopped", "exit_status": 3,
      "created_at": 1, "started_at": 2, "exited_at": 3, "log_path": "", "tty": False, "stdin": False,
      "oom_killed": False}


@pytest.mark.parametrize(("record", "runtime_deleted"), [
    (V1, False),  # written before the shim deleted containers at their exit: it never did
    ({**V1, "version": 2, "runtime_deleted": True}, True),
    ({**V1, "version": 2, "runtime_deleted": False}, False),  # the delete at the exit failed
])
def test_parse_reads_every_version_as_the_current_one(record: dict[str, Any], runtime_deleted: bool) -> None:
    parsed = state.parse(record, "c1.json")
    assert parsed["version"] == state.RECORD_VERSION
    assert parsed["runtime_deleted"] is runtime_deleted
    assert {k: parsed[k] for k in V1 if k != "version"} == {k: v for k, v in V1.items() if k != "version"}


@pytest.mark.parametrize("version", [0, 3, None, "2", True])
def test_parse_refuses_an_unknown_version(version: object) -> None:
    with pytest.raises(ValueError, match=r"c1\.json: record version"):
        state.parse({**V1, "version": version}, "c1.json")


def test_save_writes_the_current_version_and_load_all_reads_it(tmp_path: Path) -> None:
    (tmp_path / "containers").mkdir()
    state.save(str(tmp_path), {**V1, "runtime_deleted": True})
    assert state.load_all(str(tmp_path)) == [{**V1, "version": state.RECORD_VERSION, "runtime_deleted": True}]
    (tmp_path / "containers" / "old.json").write_text('{"version": 1, "container_id": "old"}')
    assert state.load_all(str(tmp_path))[1] == {"version": state.RECORD_VERSION, "container_id": "old",
                                                "runtime_deleted": False}

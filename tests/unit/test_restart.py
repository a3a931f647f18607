"""Startup recovery runs its steps in order and reports what it removed."""

from __future__ import annotations

from dockyard.cri.restart import RecoveryReport, recover


class Recorder:
    def __init__(self, log: list[str], name: str, result: object) -> None:
        self.log, self.name, self.result = log, name, result

    def clean_temporary(self) -> int:
        self.log.append(self.name)
        assert isinstance(self.result, int)
        return self.result

    def collect_garbage(self) -> tuple[int, int]:
        self.log.append(self.name)
        assert isinstance(self.result, tuple)
        return self.result


def test_temps_are_cleaned_before_gc() -> None:
    """Temporary files go first, so GC never looks at half-written data; counts are reported."""
    log: list[str] = []
    report = recover(Recorder(log, "content", 2), Recorder(log, "snapshots", 1), Recorder(log, "gc", (3, 4)), image_count=5)
    assert log == ["content", "snapshots", "gc"]
    assert report == RecoveryReport(content_temps=2, snapshot_temps=1, blobs_collected=3, snapshots_collected=4, images=5)

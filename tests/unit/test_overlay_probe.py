"""cri/snapshot/overlay.py: the overlayfs probe runs once, however many threads ask at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dockyard.cri.snapshot import overlay
from dockyard.cri.snapshot.overlay import Snapshotter


def test_concurrent_first_asks_probe_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Six containers created at once (a kubelet starting pods in parallel) asked for the probe
    together; each run tore down the others' scratch layers in the same dir, they all failed,
    and the daemon copied every image into every container's snapshot for its whole life (a
    14 MB writable layer for busybox, the node e2e Summary API spec's Rootfs check)."""
    calls: list[int] = []
    gate = threading.Event()

    def probe(root: str) -> bool:
        calls.append(1)
        gate.wait(5)  # keep the first probe running while the others ask
        time.sleep(0.05)
        return len(calls) == 1  # a second, overlapping run would fail, as the real one did

    monkeypatch.setattr(overlay, "_probe_overlay", probe)
    snapshotter = Snapshotter(str(tmp_path / "snapshots"))
    answers: list[bool] = []
    threads = [threading.Thread(target=lambda: answers.append(snapshotter.overlay_supported())) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(10)
    assert calls == [1] and answers == [True] * 6

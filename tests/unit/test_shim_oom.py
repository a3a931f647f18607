"""The shim's OOM-kill detection (counter parsing, counter locations) and the
reboot recovery's choice of mount points to detach."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dockyard.cri.restart import mounts_under
from dockyard.shim.oom import container_oom_killed, counter_files, oom_kills


@pytest.mark.parametrize(("text", "expected"), [
    ("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", 2),  # v1 memory.oom_control
    ("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n", 1),  # v2 memory.events
    ("oom_kill_disable 0\nunder_oom 0\n", 0),  # kernel < 4.13: no counter
    ("oom_kill 0\n", 0),
    ("oom_kill x\n", 0),
    ("", 0),
])
def test_oom_kills(text: str, expected: int) -> None:
    """The oom_kill counter is read from its own line; oom_kill_disable/oom_group_kill do not count."""
    assert oom_kills(text) == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("/dockyard/pod-a/c1", ["/r/memory/dockyard/pod-a/c1/memory.oom_control", "/r/dockyard/pod-a/c1/memory.events"]),
    ("dockyard/c1", ["/r/memory/dockyard/c1/memory.oom_control", "/r/dockyard/c1/memory.events"]),
    ("", []),
    ("system.slice:dockyard:c1", ["/r/system.slice/dockyard-c1.scope/memory.events"]),
    ("kube-pod1.slice:dockyard:c1", ["/r/kube.slice/kube-pod1.slice/dockyard-c1.scope/memory.events"]),
    ("bad:path", []),
    ("/a/../../etc", []),
])
def test_counter_files(path: str, expected: list[str]) -> None:
    """v1 memory hierarchy first, then the v2 file; a systemd path is its scope's v2 file; no path,
    a malformed systemd path and '..' give nothing."""
    assert counter_files(path, "/r", "c1") == expected


def test_container_oom_killed_reads_the_bundles_cgroup(tmp_path: Path) -> None:
    """The bundle's linux.cgroupsPath names the cgroup whose counter decides."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": "/p/c"}}))
    cg = tmp_path / "cg" / "memory" / "p" / "c"
    assert not container_oom_killed(str(bundle), str(tmp_path / "cg"))
    cg.mkdir(parents=True)
    (cg / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not container_oom_killed(str(bundle), str(tmp_path / "cg"))
    (cg / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert container_oom_killed(str(bundle), str(tmp_path / "cg"))
    (bundle / "config.json").write_text("{not json")
    assert not container_oom_killed(str(bundle), str(tmp_path / "cg"))


MOUNTINFO = """\
22 1 0:21 / / rw - ext4 /dev/sda1 rw
30 22 0:4 net:[4026532] /tmp/s/netns/aa rw - nsfs nsfs rw
31 22 0:40 / /tmp/s/sandboxes/aa/shm rw - tmpfs shm rw
32 22 0:41 / /tmp/s/sandboxes/aa/bundle/rootfs rw - overlay overlay rw
33 31 0:42 / /tmp/s/sandboxes/aa/shm/x\\040y rw - tmpfs t rw
34 22 0:43 / /tmp/s rw - tmpfs t rw
35 22 0:44 / /tmp/sx/q rw - tmpfs t rw
"""


def test_mounts_under() -> None:
    """Only mounts strictly below the dir (not the dir itself, not a sibling with the same prefix),
    deepest first, with mountinfo's octal escapes decoded."""
    assert mounts_under(MOUNTINFO, "/tmp/s/") == [
        "/tmp/s/sandboxes/aa/bundle/rootfs", "/tmp/s/sandboxes/aa/shm/x y",
        "/tmp/s/sandboxes/aa/shm", "/tmp/s/netns/aa",
    ]


def test_watched_counter_reads_from_the_start(tmp_path: Path) -> None:
    """read_kills reads the whole file again on each wakeup; a removed file ends the watch with OSError."""
    from dockyard.shim.oom import open_events, read_kills

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": "p.slice:dy:c1"}}))
    events = tmp_path / "cg" / "p.slice" / "dy-c1.scope" / "memory.events"
    assert open_events(str(bundle), "c1", str(tmp_path / "cg")) == -1
    events.parent.mkdir(parents=True)
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    fd = open_events(str(bundle), "c1", str(tmp_path / "cg"))
    try:
        assert read_kills(fd) == 0
        events.write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n")
        assert read_kills(fd) == 1
    finally:
        os.close(fd)

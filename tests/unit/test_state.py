"""Container state on disk: ids, the versioned record, atomic writes, and the
status derived from the init's pid, start time, exec fifo and freezer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.runtime.kernel.errors import AlreadyExists, InvalidArgument, InvalidSpec, NotFound, shorten
from dockyard.runtime.state import (
    STATE_VERSION, ContainerState, Store, process_start_time, validate_id, write_atomic,
)
from dockyard.runtime.status import Status


@pytest.mark.parametrize("good", ["a", "a.b-c_D9", "..a", "a..", "-", "x" * 1024])
def test_validate_id_accepts(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../x", "/abs", "a b", "a\nb", "a\x00b", "é",
                                 "x" * 1025])
def test_validate_id_refuses(bad: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_id(bad)
    assert info.value.target == shorten(repr(bad))  # a 1 KiB id is echoed as its head and length


def make_state(cid: str = "c1", **overrides: object) -> ContainerState:
    values: dict[str, object] = dict(
        id=cid, bundle="/bundles/c1", rootfs="/bundles/c1/rootfs", pid=0, pid_start=0,
        created="2024-01-02T03:04:05.000000006Z", cgroup_path="/dockyard/c1",
        annotations={"k": "v"},
    )
    values.update(overrides)
    return ContainerState(**values)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    # a root that does not exist yet: create_dir must make it
    return Store(str(tmp_path / "root"))


def test_create_dir_twice(store: Store) -> None:
    path = store.create_dir("c1")
    assert os.path.isdir(path) and path == os.path.join(store.root, "c1")
    with pytest.raises(AlreadyExists) as info:
        store.create_dir("c1")
    assert info.value.target == "c1"


def test_create_dir_validates_id(store: Store) -> None:
    with pytest.raises(InvalidArgument):
        store.create_dir("../escape")
    assert not os.path.exists(os.path.join(os.path.dirname(store.root), "escape"))


def test_save_load_round_trip(store: Store) -> None:
    store.create_dir("c1")
    state = make_state(pid=1234, pid_start=99, owner="me", private_pidns=False)
    store.save(state)
    loaded = store.load("c1")
    assert loaded == state
    assert loaded.annotations == {"k": "v"}
    assert loaded.version == STATE_VERSION
    with open(os.path.join(store.dir("c1"), "state.json"), "rb") as f:
        assert json.load(f)["version"] == STATE_VERSION


def test_load_missing(store: Store) -> None:
    with pytest.raises(NotFound) as info:
        store.load("nope")
    assert info.value.target == "nope"


def _write_state(store: Store, cid: str, data: bytes) -> None:
    store.create_dir(cid)
    with open(os.path.join(store.dir(cid), "state.json"), "wb") as f:
        f.write(data)


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b'{"id": "c1",'])
def test_load_corrupt(store: Store, data: bytes) -> None:
    _write_state(store, "c1", data)
    with pytest.raises(InvalidSpec):
        store.load("c1")


@pytest.mark.parametrize("version", [None, 0, 3, "1", "2", True])
def test_load_wrong_version(store: Store, version: object) -> None:
    raw = make_state().to_json()
    raw["version"] = version
    _write_state(store, "c1", json.dumps(raw).encode())
    with pytest.raises(InvalidSpec) as info:
        store.load("c1")
    assert info.value.field.endswith("state.json.version")


def test_load_version_1_record(store: Store) -> None:
    """A record an older runtime wrote (version 1, no "cgroups") still loads:
    containers outlive a runtime upgrade.  Its manager is then worked out
    from the host again (container.load)."""
    raw = make_state().to_json()
    del raw["cgroups"]
    raw["version"] = 1
    _write_state(store, "c1", json.dumps(raw).encode())
    loaded = store.load("c1")
    assert loaded.cgroups == {} and loaded.version == 1 and loaded.pid == raw["pid"]


def test_load_unknown_key(store: Store) -> None:
    raw = make_state().to_json()
    raw["surprise"] = 1
    _write_state(store, "c1", json.dumps(raw).encode())
    with pytest.raises(InvalidSpec):
        store.load("c1")


def test_load_missing_key(store: Store) -> None:
    raw = make_state().to_json()
    del raw["pid"]
    _write_state(store, "c1", json.dumps(raw).encode())
    with pytest.raises(InvalidSpec):
        store.load("c1")


@pytest.mark.parametrize("data", [b"[]", b"null", b"1"])
def test_load_not_an_object(store: Store, data: bytes) -> None:
    _write_state(store, "c1", data)
    with pytest.raises(InvalidSpec):
        store.load("c1")


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_atomic(str(target), b"old contents, longer")
    write_atomic(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["f.json"]
    assert target.stat().st_mode & 0o777 == 0o600


def test_write_atomic_failure_leaves_target(tmp_path: Path) -> None:
    from dockyard.runtime.kernel.errors import SyscallError

    target = tmp_path / "d"
    target.mkdir()
    (target / "keep").write_bytes(b"x")
    # rename of a file over a non-empty directory fails: EISDIR
    with pytest.raises(SyscallError) as info:
        write_atomic(str(target), b"data")
    assert info.value.target == str(target) and info.value.errno != 0
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_state_writes_rename_without_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's records describe what a reboot ends (see state.py), so
    they skip the fsyncs; durable.write_atomic's default keeps them for the
    daemon's stores."""
    from dockyard.runtime.kernel import durable
    from dockyard.runtime.kernel.lean import leanos

    synced: list[int] = []
    monkeypatch.setattr(leanos, "fsync", lambda fd: synced.append(fd))  # the runtime's os
    write_atomic(str(tmp_path / "state.json"), b"{}")
    assert synced == []
    durable.write_atomic(str(tmp_path / "store.json"), b"{}")
    assert len(synced) == 2  # the file, then its directory
    assert sorted(os.listdir(tmp_path)) == ["state.json", "store.json"]


def test_ids_lists_only_containers_with_state(store: Store) -> None:
    assert store.ids() == []  # root does not exist yet
    for cid in ("b", "a", "half"):
        store.create_dir(cid)
    for cid in ("b", "a"):
        store.save(make_state(cid))
    with open(os.path.join(store.root, "stray-file"), "w") as f:
        f.write("x")
    assert store.ids() == ["a", "b"]


def test_remove_dir(store: Store) -> None:
    store.create_dir("c1")
    store.save(make_state())
    store.remove_dir("c1")
    assert store.ids() == []
    with pytest.raises(NotFound):
        store.load("c1")


def test_config_round_trip(store: Store) -> None:
    store.create_dir("c1")
    with pytest.raises(NotFound):
        store.load_config("c1")
    store.save_config("c1", {"ociVersion": "1.2.0"})
    assert store.load_config("c1") == {"ociVersion": "1.2.0"}


def test_lock_missing_container(store: Store) -> None:
    with pytest.raises(NotFound):
        with store.lock("nope"):
            pass


# --- status ---------------------------------------------------------------

def _own_start() -> int:
    proc = process_start_time(os.getpid())
    assert proc is not None
    return proc[0]


def _status(store: Store, *, pid: int, pid_start: int, fifo: bool, frozen: bool) -> Status:
    store.create_dir("c1")
    if fifo:
        os.mkfifo(store.fifo("c1"), 0o600)
    return store.status(make_state(pid=pid, pid_start=pid_start), frozen)


@pytest.mark.parametrize(("pid", "start_delta", "fifo", "frozen", "expected"), [
    (0, 0, True, False, Status.STOPPED),
    (0, 0, False, True, Status.STOPPED),
    (-1, 0, False, False, Status.STOPPED),
    ("self", 0, True, False, Status.CREATED),
    ("self", 0, False, False, Status.RUNNING),
    ("self", 0, False, True, Status.PAUSED),
    ("self", 0, True, True, Status.PAUSED),
    ("self", 1, True, False, Status.STOPPED),   # pid reused by another process
    ("self", -1, False, True, Status.STOPPED),
])
def test_status(store: Store, pid: int | str, start_delta: int, fifo: bool, frozen: bool,
                expected: Status) -> None:
    real_pid = os.getpid() if pid == "self" else int(pid)
    start = _own_start() + start_delta if pid == "self" else 0
    assert _status(store, pid=real_pid, pid_start=start, fifo=fifo, frozen=frozen) is expected


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_status_of_dead_pid(store: Store) -> None:
    pid = _dead_pid()
    assert _status(store, pid=pid, pid_start=1, fifo=True, frozen=False) is Status.STOPPED


def test_status_of_zombie(store: Store) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # wait for it to exit without reaping it
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        proc = process_start_time(child.pid)
        assert proc is not None and proc[1] == "Z"
        assert _status(store, pid=child.pid, pid_start=proc[0], fifo=False, frozen=False) is Status.STOPPED
    finally:
        child.wait()


def test_process_start_time_self() -> None:
    proc = process_start_time(os.getpid())
    assert proc is not None
    start, letter = proc
    assert start > 0 and letter == "R"  # we are the one reading it


def test_process_start_time_comm_with_parentheses() -> None:
    """comm is free text: the fields after it are found after the last ')'."""
    code = "open('/proc/self/comm', 'w').write('a) Q 1 (b'); print(flush=True); import time; time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"\n"
        with open(f"/proc/{child.pid}/comm") as f:
            assert f.read() == "a) Q 1 (b\n"
        proc = process_start_time(child.pid)
        assert proc is not None
        assert proc[1] in ("R", "S")  # a parse after the first ')' would say Q
        assert proc[0] >= _own_start()
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_process_start_time_dead() -> None:
    assert process_start_time(_dead_pid()) is None

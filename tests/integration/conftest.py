"""Fixtures for the runtime's integration tests: bundles, and the leak check.

Facts the leak check relies on:
- The runtime must leave nothing behind in the host's namespaces once a
  container is deleted (or once `create` has failed): no mount in our mount
  namespace, no cgroup directory, no process, and no fd in the caller.
- This machine is shared with other sessions that create cgroups (the sandbox
  makes one memory cgroup per command, as siblings of ours) and sometimes
  mounts, at any time, some of them below the same `dockyard-test` cgroup
  parent. So the check snapshots the whole tree (cgroups to depth 2 below each
  hierarchy) but only *reports* what it can pin on the test: a path naming one
  of its container ids (each test container's cgroupsPath is
  /dockyard-test/<id>), its tmp dir or its rootfs.
- pytest makes itself a child subreaper that reaps at once, the way containerd's
  shim does (bundle.Subreaper), so a detached container's init is re-parented
  to pytest when the runtime exits. That makes "a live child of pytest" a
  reliable sign of a leaked container process.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bundle import CGROUP_PARENT, SUBREAPER, TEST_ID_ENV, Bundle, make_bundle, runtime_binary, shared_rootfs

CGROUP_ROOT = Path("/sys/fs/cgroup")
GRACE_SECONDS = 3.0

BundleFactory = Callable[..., Bundle]


@pytest.fixture(scope="session")
def runtime() -> Path:
    path = runtime_binary()
    if not os.access(path, os.X_OK):
        pytest.fail(f"runtime under test {path} is not an executable (set DOCKYARD_TEST_RUNTIME)")
    return path


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_rootfs(tmp_path_factory.mktemp("rootfs-cache"))


@pytest.fixture(scope="session", autouse=True)
def _subreaper_and_cgroup_parent() -> Iterator[None]:
    SUBREAPER.start()
    yield
    SUBREAPER.stop()
    assert not SUBREAPER.failures, f"the session's subreaper failed to reap: {SUBREAPER.failures[:5]}"
    # Only this session's cgroups: other sessions on the machine use the same
    # parent, and removing their empty cgroup mid-create would break them.
    for hierarchy in _hierarchies():
        parent = hierarchy / CGROUP_PARENT
        for cid in _SESSION_IDS:
            if (parent / cid).is_dir():
                _rmdir_tree(parent / cid)
        try:
            parent.rmdir()
        except OSError as err:
            # Still in use by another session (EBUSY), or never made here (ENOENT).
            if err.errno not in (errno.ENOENT, errno.EBUSY):
                raise


# Every container id this session made, for the session-end cgroup sweep.
_SESSION_IDS: set[str] = set()


@pytest.fixture
def _bundles() -> list[Bundle]:
    return []


@pytest.fixture
def new_bundle(
    tmp_path: Path, rootfs: Path, runtime: Path, request: pytest.FixtureRequest, _bundles: list[Bundle]
) -> BundleFactory:
    """Make a fresh bundle; `writable=True` gives it its own rootfs copy."""

    def factory(*, writable: bool = False) -> Bundle:
        made = make_bundle(tmp_path, rootfs, runtime, request.node.name, writable=writable)
        _bundles.append(made)
        _SESSION_IDS.add(made.id)
        return made

    return factory


@pytest.fixture
def bundle(new_bundle: BundleFactory) -> Bundle:
    """A fresh bundle on the shared, read-only rootfs."""
    return new_bundle()


@pytest.fixture
def writable_bundle(new_bundle: BundleFactory) -> Bundle:
    """A fresh bundle with its own writable copy of the rootfs."""
    return new_bundle(writable=True)


@dataclass(frozen=True)
class Snapshot:
    mounts: frozenset[tuple[str, str, str, str]]
    cgroups: frozenset[Path]
    processes: frozenset[tuple[int, str]]
    fds: frozenset[tuple[int, str]]


@dataclass(frozen=True)
class Leaks:
    mounts: list[tuple[str, str, str, str]]
    cgroups: list[Path]
    processes: list[tuple[int, str]]
    fds: list[tuple[int, str]]

    def found(self) -> dict[str, list[object]]:
        kinds: dict[str, list[object]] = {
            "mounts": list(self.mounts),
            "cgroups": list(self.cgroups),
            "processes": list(self.processes),
            "fds": list(self.fds),
        }
        return {kind: items for kind, items in kinds.items() if items}


@pytest.fixture(autouse=True)
def leak_check(_bundles: list[Bundle], tmp_path: Path, rootfs: Path) -> Iterator[None]:
    """After each test: no container, mount, cgroup, process or fd the test made is left."""
    before = _snapshot(ids=())
    yield
    ids = tuple(b.id for b in _bundles)
    markers = (str(tmp_path), str(rootfs), *ids)
    leftover_state = [b.id for b in _bundles if b.state_root.is_dir() and any(b.state_root.iterdir())]
    deadline = time.monotonic() + GRACE_SECONDS
    while True:
        SUBREAPER.reap_adopted()
        after = _snapshot(ids=ids)
        leaks = _attributable(before, after, ids, markers)
        if not leaks.found() or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    _clean_up(_bundles, leaks)
    report = leaks.found()
    if "fds" in report:  # name a leaked socket's ends, so that a rare leak says whose it is
        report["fds"] = [(fd, target, _socket_details(target)) for fd, target in leaks.fds]
    if leftover_state:
        report["containers left in --root"] = list(leftover_state)
    assert not report, f"test left resources behind: {report}"


def _attributable(
    before: Snapshot, after: Snapshot, ids: tuple[str, ...], markers: tuple[str, ...]
) -> Leaks:
    def ours(path: str) -> bool:
        return any(marker in path for marker in markers)

    mounts = [m for m in after.mounts - before.mounts if ours(m[0]) or ours(m[1])]
    # The shared parent is created on demand and removed at session end.
    parents = {h / CGROUP_PARENT for h in _hierarchies()}
    cgroups = sorted(c for c in after.cgroups - before.cgroups - parents if ours(str(c)))
    # The test's own cgroupsPath may sit deeper than the depth-2 scan.
    for hierarchy in _hierarchies():
        for cid in ids:
            for found in (hierarchy / CGROUP_PARENT / cid, hierarchy / cid):
                if found.is_dir() and found not in cgroups:
                    cgroups.append(found)
    return Leaks(
        mounts=mounts,
        cgroups=cgroups,
        processes=sorted(after.processes - before.processes),
        fds=sorted(after.fds - before.fds),
    )


def _snapshot(ids: tuple[str, ...]) -> Snapshot:
    return Snapshot(
        mounts=frozenset(_mounts()),
        cgroups=frozenset(_cgroup_dirs()),
        processes=frozenset(_suspect_processes(ids)),
        fds=frozenset(_fds()),
    )


def _mounts() -> Iterator[tuple[str, str, str, str]]:
    # mountinfo: id parent maj:min root mountpoint opts [optional...] - fstype source superopts
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype, source = right.split()[:2]
        yield (fields[4], fields[3], fstype, source)


def _hierarchies() -> list[Path]:
    return [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]


def _cgroup_dirs() -> Iterator[Path]:
    for hierarchy in _hierarchies():
        for first in _subdirs(hierarchy):
            yield first
            yield from _subdirs(first)


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _suspect_processes(ids: tuple[str, ...]) -> Iterator[tuple[int, str]]:
    me = os.getpid()
    env_markers = [f"{TEST_ID_ENV}={cid}".encode() for cid in ids]
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            stat = Path(entry.path, "stat").read_text()
            cgroup = Path(entry.path, "cgroup").read_text()
            environ = Path(entry.path, "environ").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        suspect = (
            ppid == me
            or any(f"/{CGROUP_PARENT}/{cid}" in cgroup for cid in ids)
            or any(cid.encode() in cmdline for cid in ids)
            or any(marker in environ for marker in env_markers)
        )
        if suspect:
            yield pid, cmdline.replace(b"\0", b" ").decode(errors="replace").strip()


def _fds() -> Iterator[tuple[int, str]]:
    listing = os.listdir("/proc/self/fd")
    for name in listing:
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            continue  # the fd that listdir itself used
        yield int(name), target


def _socket_details(target: str) -> str:
    """For ``socket:[inode]``: its protocol, ends and state from /proc/net; else ''."""
    if not target.startswith("socket:["):
        return ""
    inode = target[len("socket:["):-1]
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[9] == inode:
                return f"{proto} {_inet(f[1])} -> {_inet(f[2])} state {f[3]}"
    try:
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            f = line.split()
            if len(f) > 6 and f[6] == inode:
                return f"unix {f[7] if len(f) > 7 else '(unnamed)'}"
    except OSError:
        pass
    return "socket not in /proc/net"


def _inet(hex_addr: str) -> str:
    addr, _, port = hex_addr.partition(":")
    host = ".".join(str(b) for b in reversed(bytes.fromhex(addr))) if len(addr) == 8 else addr
    return f"{host}:{int(port, 16)}"


def _clean_up(bundles: list[Bundle], leaks: Leaks) -> None:
    """Undo what a failed test left, so one failure does not cascade into the next tests."""
    for b in bundles:
        if b.state_root.is_dir() and any(b.state_root.iterdir()):
            b.invoke("delete", "--force", b.id)
    for pid, _cmd in leaks.processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.1)
    SUBREAPER.reap_adopted()
    for mountpoint, *_ in sorted(leaks.mounts, key=lambda m: -len(m[0])):
        SUBREAPER.run(["umount", "-l", mountpoint], timeout=10)
    for cgroup in sorted(leaks.cgroups, key=lambda c: -len(str(c))):
        _rmdir_tree(cgroup)
    for fd, _target in leaks.fds:
        os.close(fd)


def _rmdir_tree(path: Path) -> None:
    for child in _subdirs(path):
        _rmdir_tree(child)
    try:
        path.rmdir()
    except OSError as err:
        if err.errno not in (errno.ENOENT, errno.EBUSY):
            raise


@pytest.fixture
def pods_extra_config() -> dict[str, object]:
    """More daemon config for runtime_service_fixture's ``pods``; a test module
    defines a fixture of this name to add some (a runtime handler, say)."""
    return {}

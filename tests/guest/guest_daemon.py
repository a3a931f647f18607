"""dockyardd inside the test guest, with the local registry and a pod network.

Facts this relies on:
- The guest's root is the host's under a tmpfs overlay: the registry's
  storage (build/registry) and the test images pushed to it are there, and
  whatever the guest writes stays in the guest.
- The guest has no network device but ``lo``, in a network namespace of its
  own: the registry listens on 127.0.0.1:5000 there, the pods' bridge and
  addresses (10.88.0.0/16, no masquerade) exist only in the guest, and
  nothing can route out.
- systemd is PID 1 and the suite runs in a unit with Delegate=yes.
- The guest's /, /tmp and /var/tmp are tmpfs (or overlayfs on it), which
  6.1 cannot idmap-mount (tmpfs gained it in 6.3): each daemon's root and
  state dirs are on an ext4 file system of their own (``scratch_fs``), as a
  node's /var/lib is, so hostUsers:false pods get idmapped layers and critest
  finds idmap support where it probes (the state dir's parent).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import guest_env  # noqa: F401 (puts tests/integration on sys.path)
import pytest
from bundle import SUBREAPER
from daemon_fixture import Daemon, write_hosts_dir

REPO = Path(__file__).resolve().parents[2]
CONFLIST = REPO / "deploy" / "cni" / "10-dockyard.conflist"
START_TIMEOUT_S = 300
MIRRORED = ("registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io", "registry-1.docker.io", "quay.io",
            "127.0.0.1:5000")


def write_mirrors(config_path: Path) -> None:
    write_hosts_dir(config_path, "127.0.0.1:5000", MIRRORED)


def run(*argv: str) -> str:
    done = SUBREAPER.run(list(argv), timeout=300, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


SCRATCH_FS_BYTES = 8 << 30  # sparse, and discard gives freed blocks back to the tmpfs below


def scratch_fs() -> Path:
    """A fresh ext4 file system loop-mounted at /dyg<random> (short: shim
    sockets live under it), its image in the guest's /var/tmp."""
    mount_point = Path(tempfile.mkdtemp(prefix="dyg", dir="/"))
    image = Path("/var/tmp") / f"{mount_point.name}.ext4"
    with open(image, "wb") as f:
        f.truncate(SCRATCH_FS_BYTES)
    run("modprobe", "-a", "loop", "ext4")
    # No journal: a throwaway file system, and journal blocks would fill the tmpfs.
    run("mkfs.ext4", "-q", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard", str(image))
    run("mount", "-o", "loop,discard", str(image), str(mount_point))
    return mount_point


def remove_scratch_fs(mount_point: Path) -> None:
    # Lazily, with whatever a test left mounted below (a shim still exiting
    # must not fail the teardown); the loop device (autoclear) goes with its last user.
    run("umount", "-l", str(mount_point))
    mount_point.rmdir()
    (Path("/var/tmp") / f"{mount_point.name}.ext4").unlink()


def start_daemon(tmp_path_factory: pytest.TempPathFactory, **config: object) -> Daemon:
    """A dockyardd with the guest's registry and a pod bridge; ``config`` overrides its config."""
    run("ip", "link", "set", "lo", "up")
    run(str(REPO / "hack" / "registry.sh"), "start")
    tmp = tmp_path_factory.mktemp("dockyardd")
    fs = scratch_fs()
    state = fs / "state"
    certs = tmp / "certs.d"
    write_mirrors(certs)
    cni = tmp / "cni"
    cni.mkdir()
    shutil.copy(CONFLIST, cni / CONFLIST.name)
    daemon = Daemon(
        tmp,
        registry={"config_path": str(certs)},
        cni={"conf_dir": str(cni), "cache_dir": str(tmp / "cni-cache")},
        root_dir=str(fs / "root"),
        state_dir=str(state),
        log_level="info",
        **config,
    )
    daemon.socket = state / "dockyard.sock"
    daemon.config["socket"] = {"path": str(daemon.socket)}
    try:
        start_and_wait(daemon)
    except BaseException:
        daemon.stop()
        remove_scratch_fs(fs)
        raise
    return daemon


def start_and_wait(daemon: Daemon) -> None:
    """Daemon.start, with a deadline for TCG: the host fixture's 30 s is short
    for a loaded host (seen: more)."""
    daemon.start(wait_ready=False)
    ready = daemon.tmp / "ready"
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready.exists():
        assert daemon.proc is not None
        if daemon.proc.poll() is not None:
            raise AssertionError(f"dockyardd exited {daemon.proc.returncode}:\n{daemon.log_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"dockyardd not ready after {START_TIMEOUT_S} s:\n{daemon.log_text()}")
        time.sleep(0.1)


def stop_daemon(daemon: Daemon) -> None:
    daemon.stop_emptied()
    # The guest's /tmp dies with it: keep the daemon's log beside the run's results.
    out = Path(os.environ.get("DOCKYARD_GUEST_OUT", "/nonexistent"))
    fs = Path(daemon.config["root_dir"]).parent  # start_daemon's scratch_fs()
    if out.is_dir() and Path(daemon.log).exists():
        shutil.copy(daemon.log, out / f"dockyardd-{fs.name}.log")
    remove_scratch_fs(fs)


@pytest.fixture(scope="module")
def guest_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A dockyardd with the cgroupfs driver, its pods on a bridge of the guest's own."""
    daemon = start_daemon(tmp_path_factory, cgroup_parent=f"/dockyard-guest-{secrets.token_hex(4)}")
    try:
        yield daemon
    finally:
        stop_daemon(daemon)


@pytest.fixture(scope="module")
def systemd_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A dockyardd with the systemd cgroup driver: each pod a slice below a
    slice of its own (``dyg<hex>.slice``), each container a scope in it."""
    parent = f"dyg{secrets.token_hex(4)}.slice"
    daemon = start_daemon(tmp_path_factory, cgroup_driver="systemd", cgroup_parent=parent)
    daemon.slice = parent  # type: ignore[attr-defined]
    try:
        yield daemon
    finally:
        stop_daemon(daemon)
        run("systemctl", "stop", parent)

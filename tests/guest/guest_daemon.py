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


def start_daemon(tmp_path_factory: pytest.TempPathFactory, **config: object) -> Daemon:
    """A dockyardd with the guest's registry and a pod bridge; ``config`` overrides its config."""
    run("ip", "link", "set", "lo", "up")
    run(str(REPO / "hack" / "registry.sh"), "start")
    tmp = tmp_path_factory.mktemp("dockyardd")
    state = Path(tempfile.mkdtemp(prefix="dyg", dir="/tmp"))  # shim sockets need a short path
    certs = tmp / "certs.d"
    write_mirrors(certs)
    cni = tmp / "cni"
    cni.mkdir()
    shutil.copy(CONFLIST, cni / CONFLIST.name)
    daemon = Daemon(
        tmp,
        registry={"config_path": str(certs)},
        cni={"conf_dir": str(cni), "cache_dir": str(tmp / "cni-cache")},
        state_dir=str(state),
        log_level="info",
        **config,
    )
    daemon.socket = state / "dockyard.sock"
    daemon.config["socket"] = {"path": str(daemon.socket)}
    start_and_wait(daemon)
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
    if out.is_dir() and Path(daemon.log).exists():
        shutil.copy(daemon.log, out / f"dockyardd-{Path(daemon.config['state_dir']).name}.log")


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

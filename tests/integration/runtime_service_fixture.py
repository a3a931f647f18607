"""A dockyardd with the RuntimeService wired to real CNI plugins, shims and runtimes.

State lives in a short directory under /tmp (unix socket paths are limited
to 107 bytes and a shim's is <state>/shims/<64 hex>/shim.sock), the CNI
conflist is deploy/cni/10-dockyard.conflist with host-local's dataDir moved
into the test's dir, the pod cgroups go under a per-test cgroup_parent, and
restrict_oom_score_adj is on (root here lacks CAP_SYS_RESOURCE).

After each test the ``pods`` fixture removes every pod, stops the daemon and
checks that nothing is left: no mount under the state or root dir, no netns
file, no pod cgroup, no shim or container process.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bundle import SUBREAPER
from daemon_fixture import REPO, Daemon
from procfs import each_process

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONFLIST = REPO / "deploy" / "cni" / "10-dockyard.conflist"
SPARE_DIR = re.compile(rb"/shims/(\.spare-[0-9a-f]+)")


def pod_config(name: str, log_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "test", "uid": f"uid-{name}", "attempt": 0},
        "hostname": name,
        "log_directory": str(log_dir),
        "linux": {},
        **extra,
    }


def container_config(name: str, command: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "image": {"image": "busybox"},
        "command": command,
        "log_path": f"{name}.log",
        "linux": {},
        **extra,
    }


class Pods:
    """Helpers over one daemon: write configs, drive crictl, check for leaks."""

    def __init__(self, daemon: Daemon, state: Path, tmp: Path, cgroup_parent: str) -> None:
        self.daemon = daemon
        self.state = state
        self.tmp = tmp
        self.cgroup_parent = cgroup_parent
        self.logs = tmp / "logs"

    def write(self, name: str, doc: dict[str, Any]) -> str:
        path = self.tmp / f"{name}.json"
        path.write_text(json.dumps(doc))
        return str(path)

    def crictl(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        return self.daemon.crictl(*args, check=check, timeout=timeout).stdout.strip()

    def run_pod(self, name: str, handler: str = "", **extra: Any) -> tuple[str, str]:
        cfg = self.write(f"pod-{name}", pod_config(name, self.logs / name, **extra))
        args = ["runp"] + (["--runtime", handler] if handler else []) + [cfg]
        return self.crictl(*args), cfg

    def allocated_ips(self) -> list[str]:
        """Addresses host-local still holds for this daemon's pods (its lock and
        last-reserved bookkeeping files are not allocations)."""
        ipam = self.tmp / "ipam"
        return sorted(p.name for p in ipam.rglob("*") if p.is_file()
                      and p.name != "lock" and not p.name.startswith("last_reserved_ip"))

    def leftovers(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        markers = (str(self.state), str(self.daemon.root))
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if any(line.split()[4].startswith(m) for m in markers)]
        if mounts:
            found["mounts"] = mounts
        netns_dir = self.state / "netns"
        if netns_dir.is_dir() and any(netns_dir.iterdir()):
            found["netns"] = sorted(p.name for p in netns_dir.iterdir())
        cgroups = []
        for hierarchy in CGROUP_ROOT.iterdir():
            parent = hierarchy / self.cgroup_parent.strip("/")
            if parent.is_dir():
                cgroups += [str(p) for p in parent.iterdir() if p.is_dir()]
        if cgroups:
            found["cgroups"] = cgroups
        # A running daemon keeps spare shims (config spare_shims) for its next
        # pods: they are leftovers only once it has stopped.  A spare's command
        # line names its dir, which an adopted shim keeps in its command line
        # but no longer has (the dir became the pod's).
        def live_spare(cmdline: bytes) -> bool:
            m = SPARE_DIR.search(cmdline)
            return m is not None and self.daemon.alive() and (self.state / "shims" / m.group(1).decode()).is_dir()

        procs = [f"{pid} {cmdline[:120]!r}" for pid, cmdline in each_process("cmdline")
                 if str(self.state).encode() in cmdline and b"dockyardd" not in cmdline and not live_spare(cmdline)]
        if procs:
            found["processes"] = procs
        ips = self.allocated_ips()
        if ips:
            found["ips"] = ips
        return found


@pytest.fixture
def pods(daemon_factory: Any, tmp_path: Path, test_registry: str, pods_extra_config: dict[str, Any]) -> Iterator[Pods]:
    state = Path(tempfile.mkdtemp(prefix="dy", dir="/tmp"))
    cni_dir = tmp_path / "cni"
    cni_dir.mkdir()
    conflist = json.loads(CONFLIST.read_text())
    for plugin in conflist["plugins"]:
        if plugin.get("type") == "bridge":
            plugin["ipam"]["dataDir"] = str(tmp_path / "ipam")
    (cni_dir / CONFLIST.name).write_text(json.dumps(conflist))
    cgroup_parent = f"/dockyard-test-{secrets.token_hex(4)}"
    extra = dict(pods_extra_config)
    daemon: Daemon = daemon_factory(
        state_dir=str(state),
        socket={"path": str(state / "dockyard.sock")},
        cni={"conf_dir": str(cni_dir), "cache_dir": str(tmp_path / "cni-cache"), **extra.pop("cni", {})},
        cgroup_parent=cgroup_parent,
        restrict_oom_score_adj=True,
        **extra,
    )
    daemon.socket = state / "dockyard.sock"
    daemon.start()
    helper = Pods(daemon, state, tmp_path, cgroup_parent)
    try:
        yield helper
    finally:
        daemon.stop_emptied()
        deadline = time.monotonic() + 5
        left = helper.leftovers()
        while left and time.monotonic() < deadline:
            SUBREAPER.reap_adopted()
            time.sleep(0.1)
            left = helper.leftovers()
        _force_clean(helper, left)
        shutil.rmtree(state, ignore_errors=True)
        assert not left, f"test left resources behind: {left}\n{daemon.log_text()}"


def _force_clean(helper: Pods, left: dict[str, list[str]]) -> None:
    for entry in left.get("processes", []):
        try:
            os.kill(int(entry.split()[0]), 9)
        except ProcessLookupError:
            pass
    for target in sorted(left.get("mounts", []), key=len, reverse=True):
        SUBREAPER.run(["umount", "-l", target], timeout=30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for d in sorted(left.get("cgroups", []), key=len, reverse=True):
        for current, _, _ in os.walk(d, topdown=False):
            try:
                os.rmdir(current)
            except OSError:
                pass
    for hierarchy in CGROUP_ROOT.iterdir():
        try:
            (hierarchy / helper.cgroup_parent.strip("/")).rmdir()
        except OSError:
            pass

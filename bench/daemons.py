"""Starting, stopping and measuring the two CRI daemons the benchmarks compare.

dockyardd (run from this Python, so its shim and runtime launchers are found
beside it in the venv) and Debian's containerd 1.6 with its CRI plugin each
get their own root, state, socket and log under a work directory the caller
owns, plus a containerd-style hosts.toml directory sending docker.io,
registry.k8s.io and 127.0.0.1:5000 to the plain-HTTP test registry
(hack/registry.sh), so neither can reach a real registry.

Memory is read from /proc: VmRSS / VmHWM of a daemon from status, and the
proportional set size from smaps_rollup, the figure to sum over many shims
because it splits shared pages (the interpreter, libc) between the processes
mapping them instead of counting them once per process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from cri_api.v1 import api_pb2, api_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
REGISTRY = "127.0.0.1:5000"
# The test guest (TCG, make bench-guest) needs longer: hack/guest/bench.sh sets it.
START_TIMEOUT_S = float(os.environ.get("DOCKYARD_BENCH_START_TIMEOUT", "60"))
STOP_TIMEOUT_S = 30.0
CNI_BIN_DIR = "/usr/lib/cni"
RUNC = "/usr/sbin/runc"
MIRRORED = ("docker.io", "registry.k8s.io", REGISTRY)


@dataclass
class RunningDaemon:
    """One started daemon process and where to reach it."""

    name: str
    proc: subprocess.Popen[bytes]
    socket: Path
    log: Path

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"unix://{self.socket}")

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def ensure_registry() -> None:
    """Start the test registry and push the test images (both idempotent)."""
    if subprocess.run([str(REPO / "hack" / "registry.sh"), "start"], check=False).returncode != 0:
        raise SystemExit("bench: hack/registry.sh start failed")
    if subprocess.run([str(REPO / "hack" / "push-test-images.sh")], check=False).returncode != 0:
        raise SystemExit("bench: hack/push-test-images.sh failed")


def write_hosts_dir(config_path: Path) -> None:
    for host in MIRRORED:
        d = config_path / host
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(
            f'server = "http://{REGISTRY}"\n\n[host."http://{REGISTRY}"]\n  capabilities = ["pull", "resolve"]\n'
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dockyardd(work: Path, *, state_dir: Path | None = None,
                    extra: dict[str, Any] | None = None) -> RunningDaemon:
    """dockyardd with root, state and log in ``work``; ``extra`` is merged into its config.

    A shim's socket is <state_dir>/shims/<64 hex>/shim.sock and unix socket
    paths stop at 107 bytes, so a pod benchmark passes a short ``state_dir``.
    """
    state = state_dir or work / "state"
    sock = state / "dockyard.sock"
    certs = work / "certs.d"
    write_hosts_dir(certs)
    config: dict[str, Any] = {
        "socket": {"path": str(sock)},
        "root_dir": str(work / "root"),
        "state_dir": str(state),
        "metrics_address": f"127.0.0.1:{free_port()}",
        "log_level": "warning",
        "registry": {"config_path": str(certs)},
        **(extra or {}),
    }
    (work / "dockyard.yaml").write_text(yaml.safe_dump(config))
    ready = work / "ready"
    ready.unlink(missing_ok=True)
    log_path = work / "daemon.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.cri.daemon", "--config", str(work / "dockyard.yaml"),
             "--ready-file", str(ready)],
            stdout=log, stderr=log, cwd=REPO,
        )
    daemon = RunningDaemon("dockyardd", proc, sock, log_path)
    wait_for(daemon, ready.exists)
    return daemon


def start_containerd(work: Path, *, cni_conf_dir: Path | None = None, cni_bin_dir: str = CNI_BIN_DIR,
                     restrict_oom_score_adj: bool = False, systemd_cgroup: bool = False) -> RunningDaemon:
    """containerd + CRI with root, state, runc root and log in ``work``; runc via the runc v2 shim."""
    sock = work / "containerd.sock"
    certs = work / "certs.d"
    write_hosts_dir(certs)
    disabled = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    runc = f'{cri}.containerd.runtimes.runc'
    (work / "config.toml").write_text("\n".join([
        "version = 2",
        f'root = "{work / "root"}"',
        f'state = "{work / "state"}"',
        "disabled_plugins = [" + ", ".join(f'"{p}"' for p in disabled) + "]",
        "[grpc]", f'  address = "{sock}"',
        "[ttrpc]", f'  address = "{sock}.ttrpc"',
        '[plugins."io.containerd.internal.v1.opt"]', f'  path = "{work / "opt"}"',
        f"[{cri}]", '  sandbox_image = "registry.k8s.io/pause:3.10"',
        f"  restrict_oom_score_adj = {str(restrict_oom_score_adj).lower()}",
        # Port 0: other containerds on this machine hold the default 10010.
        '  stream_server_address = "127.0.0.1"', '  stream_server_port = "0"',
        f"[{cri}.containerd]", '  snapshotter = "overlayfs"', '  default_runtime_name = "runc"',
        f"[{runc}]", '  runtime_type = "io.containerd.runc.v2"',
        f"[{runc}.options]", f'  BinaryName = "{RUNC}"', f'  Root = "{work / "runc"}"',
        f"  SystemdCgroup = {str(systemd_cgroup).lower()}",
        f"[{cri}.cni]", f'  bin_dir = "{cni_bin_dir}"', f'  conf_dir = "{cni_conf_dir or work / "cni-conf"}"',
        f"[{cri}.registry]", f'  config_path = "{certs}"',
        "",
    ]))
    log_path = work / "daemon.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["containerd", "--config", str(work / "config.toml"), "--log-level", "warn"],
                                stdout=log, stderr=log)
    daemon = RunningDaemon("containerd", proc, sock, log_path)

    def serving() -> bool:
        if not sock.is_socket():
            return False
        try:
            with daemon.channel() as ch:
                api_pb2_grpc.RuntimeServiceStub(ch).Version(api_pb2.VersionRequest(), timeout=2)
            return True
        except grpc.RpcError:
            return False

    wait_for(daemon, serving)
    return daemon


def wait_for(daemon: RunningDaemon, ready: Callable[[], bool]) -> None:
    """Poll ``ready``; a daemon that exits or takes too long is killed and reported with its log."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if daemon.proc.poll() is not None or time.monotonic() > deadline:
            daemon.proc.kill()
            daemon.proc.wait()
            raise RuntimeError(f"{daemon.name} did not become ready (exit {daemon.proc.returncode}): "
                               f"{daemon.log_tail()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def unmount_under(path: Path) -> None:
    """Lazily unmount everything mounted below ``path``, deepest first."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False)


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def peak_rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmHWM:")


def rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmRSS:")


def pss_kib(pid: int) -> int:
    """Pss of one process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def pids_with_cmdline(needle: bytes, comm_prefix: str = "") -> list[int]:
    """Live processes whose command line contains ``needle`` (and whose comm starts with ``comm_prefix``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except OSError:
            continue
        if needle in cmdline and comm.startswith(comm_prefix):
            found.append(int(entry))
    return found

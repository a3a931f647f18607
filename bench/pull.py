"""Pull+unpack benchmark: dockyardd against Debian's containerd (CRI plugin).

Both daemons get their own root, state and socket under one temp dir, and a
containerd-style hosts.toml directory sending docker.io, registry.k8s.io and
127.0.0.1:5000 to the plain-HTTP test registry (hack/registry.sh).  For each
round, alternating which daemon goes first, each daemon is started on an
empty root, the large test image is pulled once over CRI PullImage (the same
Python gRPC client for both), and the daemon is stopped.  A fresh root per
pull is the surest "cleared store": no blob, snapshot or metadata survives.

Reported: median pull+unpack seconds of each, the ratio dockyardd/containerd,
the peak RSS (VmHWM) of each daemon, and every failure (a failed round is
reported and skipped, the others still count).

    .venv/bin/python bench/pull.py [--rounds 5] [--image 127.0.0.1:5000/big:latest]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
REGISTRY = "127.0.0.1:5000"
START_TIMEOUT_S = 60.0
PULL_TIMEOUT_S = 600.0


def write_hosts_dir(config_path: Path) -> None:
    for host in ("docker.io", "registry.k8s.io", REGISTRY):
        d = config_path / host
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(
            f'server = "http://{REGISTRY}"\n\n[host."http://{REGISTRY}"]\n  capabilities = ["pull", "resolve"]\n'
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    name: str
    start: Callable[[Path], tuple[subprocess.Popen[bytes], Path]]
    times: list[float] = field(default_factory=list)
    peak_rss_kib: int = 0
    failures: list[str] = field(default_factory=list)


def start_dockyardd(work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    sock = work / "state" / "dockyard.sock"
    certs = work / "certs.d"
    write_hosts_dir(certs)
    config = work / "dockyard.yaml"
    config.write_text(
        f"socket: {{path: {sock}}}\nroot_dir: {work / 'root'}\nstate_dir: {work / 'state'}\n"
        f"metrics_address: 127.0.0.1:{free_port()}\nlog_level: warning\nregistry: {{config_path: {certs}}}\n"
    )
    ready = work / "ready"
    log = open(work / "daemon.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cri.daemon", "--config", str(config), "--ready-file", str(ready)],
        stdout=log, stderr=log,
    )
    wait_for(proc, lambda: ready.exists(), work)
    return proc, sock


def start_containerd(work: Path) -> tuple[subprocess.Popen[bytes], Path]:
    sock = work / "containerd.sock"
    certs = work / "certs.d"
    write_hosts_dir(certs)
    disabled = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    (work / "config.toml").write_text("\n".join([
        "version = 2",
        f'root = "{work / "root"}"',
        f'state = "{work / "state"}"',
        "disabled_plugins = [" + ", ".join(f'"{p}"' for p in disabled) + "]",
        "[grpc]", f'  address = "{sock}"',
        "[ttrpc]", f'  address = "{sock}.ttrpc"',
        '[plugins."io.containerd.internal.v1.opt"]', f'  path = "{work / "opt"}"',
        f"[{cri}]", f'  sandbox_image = "{REGISTRY}/pause:3.10"',
        f"[{cri}.containerd]", '  snapshotter = "overlayfs"',
        f"[{cri}.cni]", f'  bin_dir = "{work / "cni-bin"}"', f'  conf_dir = "{work / "cni-conf"}"',
        f"[{cri}.registry]", f'  config_path = "{certs}"',
        "",
    ]))
    log = open(work / "daemon.log", "ab")
    proc = subprocess.Popen(["containerd", "--config", str(work / "config.toml"), "--log-level", "warn"],
                            stdout=log, stderr=log)

    def serving() -> bool:
        if not sock.is_socket():
            return False
        try:
            with grpc.insecure_channel(f"unix://{sock}") as ch:
                api_pb2_grpc.RuntimeServiceStub(ch).Version(api_pb2.VersionRequest(), timeout=2)
            return True
        except grpc.RpcError:
            return False

    wait_for(proc, serving, work)
    return proc, sock


def wait_for(proc: subprocess.Popen[bytes], ready: Callable[[], bool], work: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            tail = (work / "daemon.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"daemon did not become ready (exit {proc.returncode}): {tail}")
        time.sleep(0.05)


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def unmount_under(path: Path) -> None:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False)


def floors(blob_dir: Path, scratch: Path) -> tuple[float, float, int]:
    """The limits a pull cannot beat here: seconds to gunzip the image's layer
    blobs (one thread, zlib) and seconds to write and fsync that many bytes."""
    layers = [p for p in blob_dir.iterdir() if p.stat().st_size > 1 << 20]
    total = 0
    t0 = time.perf_counter()
    for layer in layers:
        with gzip.open(layer, "rb") as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
    decompress = time.perf_counter() - t0
    block = os.urandom(1 << 20)
    t0 = time.perf_counter()
    with open(scratch, "wb") as out:
        for _ in range(total >> 20):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    write = time.perf_counter() - t0
    scratch.unlink()
    return decompress, write, total


def one_pull(daemon: Daemon, base: Path, image: str, round_no: int) -> None:
    work = base / f"{daemon.name}-{round_no}"
    work.mkdir()
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, sock = daemon.start(work)
        with grpc.insecure_channel(f"unix://{sock}") as ch:
            stub = api_pb2_grpc.ImageServiceStub(ch)
            t0 = time.perf_counter()
            stub.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)), timeout=PULL_TIMEOUT_S)
            elapsed = time.perf_counter() - t0
        daemon.times.append(elapsed)
        daemon.peak_rss_kib = max(daemon.peak_rss_kib, peak_rss_kib(proc.pid))
        print(f"  round {round_no} {daemon.name:11s} {elapsed:7.2f}s", flush=True)
        if daemon.name == "dockyardd" and round_no == 0:
            dec, wr, total = floors(work / "root" / "content" / "blobs" / "sha256", work / "floor.bin")
            print(f"  floors: gunzip {total >> 20} MiB {dec:.2f}s, write+fsync {wr:.2f}s", flush=True)
    except (grpc.RpcError, RuntimeError, OSError) as err:
        detail = err.details() if isinstance(err, grpc.RpcError) else str(err)  # type: ignore[attr-defined]
        daemon.failures.append(f"round {round_no}: {detail}")
        print(f"  round {round_no} {daemon.name:11s} FAILED: {detail}", flush=True)
    finally:
        if proc is not None:
            stop(proc)
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def ensure_registry(image: str) -> None:
    if subprocess.run([str(REPO / "hack" / "registry.sh"), "start"], check=False).returncode != 0:
        raise SystemExit("bench: hack/registry.sh start failed")
    if subprocess.run([str(REPO / "hack" / "push-test-images.sh")], check=False).returncode != 0:
        raise SystemExit("bench: hack/push-test-images.sh failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default=f"{REGISTRY}/big:latest")
    parser.add_argument("--no-setup", action="store_true", help="assume the registry runs and holds the image")
    args = parser.parse_args(argv)
    if not args.no_setup:
        ensure_registry(args.image)
    daemons = [Daemon("dockyardd", start_dockyardd), Daemon("containerd", start_containerd)]
    if shutil.which("containerd") is None:
        print("bench: containerd not installed; timing dockyardd only")
        daemons = daemons[:1]
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-pull-"))
    try:
        print(f"pulling {args.image}, {args.rounds} rounds, fresh root each pull")
        for round_no in range(args.rounds):
            order = daemons if round_no % 2 == 0 else list(reversed(daemons))
            for daemon in order:
                one_pull(daemon, base, args.image, round_no)
    finally:
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
    print()
    medians: dict[str, float] = {}
    for d in daemons:
        if d.times:
            medians[d.name] = statistics.median(d.times)
            print(f"{d.name:11s} median {medians[d.name]:7.2f}s over {len(d.times)} pulls, "
                  f"peak RSS {d.peak_rss_kib / 1024:.1f} MiB, {len(d.failures)} failures")
        else:
            print(f"{d.name:11s} no successful pull; {len(d.failures)} failures")
        for failure in d.failures:
            print(f"    {failure}")
    if len(medians) == 2:
        ratio = medians["dockyardd"] / medians["containerd"]
        print(f"ratio dockyardd/containerd: {ratio:.2f} ({'at or below' if ratio <= 1 else 'above'} target)")
    return 0 if all(d.times for d in daemons) else 1


if __name__ == "__main__":
    sys.exit(main())

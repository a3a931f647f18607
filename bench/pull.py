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
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from daemons import (REGISTRY, RunningDaemon, ensure_registry, peak_rss_kib, start_containerd, start_dockyardd,
                     stop, unmount_under)

PULL_TIMEOUT_S = 600.0


@dataclass
class Daemon:
    name: str
    start: Callable[[Path], RunningDaemon]
    times: list[float] = field(default_factory=list)
    peak_rss_kib: int = 0
    failures: list[str] = field(default_factory=list)


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
    running: RunningDaemon | None = None
    try:
        running = daemon.start(work)
        with running.channel() as ch:
            stub = api_pb2_grpc.ImageServiceStub(ch)
            t0 = time.perf_counter()
            stub.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)), timeout=PULL_TIMEOUT_S)
            elapsed = time.perf_counter() - t0
        daemon.times.append(elapsed)
        daemon.peak_rss_kib = max(daemon.peak_rss_kib, peak_rss_kib(running.proc.pid))
        print(f"  round {round_no} {daemon.name:11s} {elapsed:7.2f}s", flush=True)
        if daemon.name == "dockyardd" and round_no == 0:
            dec, wr, total = floors(work / "root" / "content" / "blobs" / "sha256", work / "floor.bin")
            print(f"  floors: gunzip {total >> 20} MiB {dec:.2f}s, write+fsync {wr:.2f}s", flush=True)
    except (grpc.RpcError, RuntimeError, OSError) as err:
        detail = err.details() if isinstance(err, grpc.RpcError) else str(err)  # type: ignore[attr-defined]
        daemon.failures.append(f"round {round_no}: {detail}")
        print(f"  round {round_no} {daemon.name:11s} FAILED: {detail}", flush=True)
    finally:
        if running is not None:
            stop(running.proc)
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image", default=f"{REGISTRY}/big:latest")
    parser.add_argument("--no-setup", action="store_true", help="assume the registry runs and holds the image")
    args = parser.parse_args(argv)
    if not args.no_setup:
        ensure_registry()
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

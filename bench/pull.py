"""Cold pull of a large image: dockyardd against Debian's containerd (CRI plugin), with floors.

The image (bench/bigimage.py) is built offline from Debian packages: six
layers, about 700 MB unpacked, one of them over 20,000 small files and one of
a few files of 50-110 MB, pushed to the local registry in a gzip and a zstd
variant (127.0.0.1:5000/dybig:gzip, :zstd).

A cold pull: each daemon is started on an empty root (no blob, snapshot or
metadata survives: the image is removed as thoroughly as it can be), the
page cache is dropped (``echo 3 > /proc/sys/vm/drop_caches``, so the
registry's blobs come from disk as on a node that never pulled them), and
the image is pulled once over CRI PullImage with the same Python gRPC
client.  Rounds alternate which daemon goes first.  Reported per variant:
the median seconds of each, the ratio, and each daemon's peak RSS (VmHWM:
the daemon's largest resident size from its start to the end of the pull).

The floors, measured in the same run, each after dropping the page cache,
on the same file system as the daemons' roots:
  * ``gzip -dc`` / ``zstd -dc`` of every layer blob, one after another;
  * ``tar -x`` of the uncompressed layer tars, one after another, then syncfs;
  * parallel: every layer at once as ``curl <registry blob> | gzip -dc | tar -x``
    (``zstd -dc`` for the zstd variant), then syncfs: what a runtime that
    fetched, decompressed and wrote every layer at once would take.  A pull
    also has to verify digests and record what it unpacked, so the target is
    a ratio to this floor, not equality.  It is measured in every round,
    after the pulls, and compared by its median: one measurement moved
    between 1.8 and 2.6 s from run to run (zstd).

Interrupted pulls (dockyardd, each variant): the daemon is SIGKILLed once
while it downloads and once while it unpacks, restarted on the same root,
and must then not list the image, hold no ingest leftovers, and pull it
again successfully; the retried pull's time is reported.

Targets (issue 19): cold pull within 1.15x of the parallel floor and at most
0.65x of containerd's, for both variants, with dockyardd's peak RSS under
150 MB.

    .venv/bin/python bench/pull.py [--rounds 3] [--variants gzip,zstd] [--no-kill] [--quick] [--no-setup]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

import bigimage
from daemons import (REGISTRY, RunningDaemon, ensure_registry, peak_rss_kib, start_containerd, start_dockyardd,
                     stop, unmount_under)

PULL_TIMEOUT_S = 900.0
RSS_TARGET_MIB = 150
FLOOR_RATIO = 1.15
CONTAINERD_RATIO = 0.65


@dataclass
class Daemon:
    name: str
    start: Callable[[Path], RunningDaemon]
    times: dict[str, list[float]] = field(default_factory=dict)  # variant -> seconds
    peak_rss_kib: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def syncfs(path: Path) -> None:
    subprocess.run(["sync", "-f", str(path)], check=True)


# --- floors ---

def timed_shell(argv: list[str] | str, **kwargs: object) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, shell=isinstance(argv, str), **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - t0


def floors(layers: list[bigimage.Layer], variants: list[str], scratch: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind in variants:
        drop_caches()
        tool = "gzip" if kind == "gzip" else "zstd"
        t = 0.0
        for layer in layers:
            t += timed_shell([tool, "-dc", str(layer.blobs[kind][0])])
        out[f"{tool} -dc, layers one after another"] = t
    drop_caches()
    t0 = time.perf_counter()
    for layer in layers:
        d = scratch / f"tar-{layer.name}"
        d.mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(layer.tar), "-C", str(d)], check=True)
    syncfs(scratch)
    out["tar -x of the tars, one after another, + syncfs"] = time.perf_counter() - t0
    shutil.rmtree(scratch, ignore_errors=True)
    return out


def parallel_floor(layers: list[bigimage.Layer], kind: str, scratch: Path) -> float:
    """Seconds to fetch, decompress and write every layer at once, then syncfs.

    Measured in every round beside the pulls (its spread between runs is as
    large as the daemons'), and compared by its median."""
    dec = "gzip -dc" if kind == "gzip" else "zstd -dc"
    drop_caches()
    t0 = time.perf_counter()
    procs = []
    for layer in layers:
        d = scratch / f"par-{kind}-{layer.name}"
        d.mkdir(parents=True)
        url = f"http://{REGISTRY}/v2/{bigimage.NAME}/blobs/{layer.blobs[kind][1]}"
        procs.append(subprocess.Popen(f"set -o pipefail; curl -sf {url} | {dec} | tar -x -C {d}",
                                      shell=True, executable="/bin/bash"))
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"the parallel {kind} floor failed")
    syncfs(scratch)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed


# --- pulls ---

def pull(running: RunningDaemon, image: str) -> float:
    with running.channel() as ch:
        stub = api_pb2_grpc.ImageServiceStub(ch)
        t0 = time.perf_counter()
        stub.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)), timeout=PULL_TIMEOUT_S)
        return time.perf_counter() - t0


def one_pull(daemon: Daemon, base: Path, kind: str, image: str, round_no: int) -> None:
    work = base / f"{daemon.name}-{kind}-{round_no}"
    work.mkdir()
    running: RunningDaemon | None = None
    try:
        running = daemon.start(work)
        drop_caches()
        elapsed = pull(running, image)
        daemon.times.setdefault(kind, []).append(elapsed)
        daemon.peak_rss_kib[kind] = max(daemon.peak_rss_kib.get(kind, 0), peak_rss_kib(running.proc.pid))
        print(f"  round {round_no} {kind:4s} {daemon.name:11s} {elapsed:7.2f}s  "
              f"peak RSS {peak_rss_kib(running.proc.pid) / 1024:.0f} MiB", flush=True)
    except (grpc.RpcError, RuntimeError, OSError) as err:
        detail = err.details() if isinstance(err, grpc.RpcError) else str(err)  # type: ignore[attr-defined]
        daemon.failures.append(f"{kind} round {round_no}: {detail}")
        print(f"  round {round_no} {kind:4s} {daemon.name:11s} FAILED: {detail}", flush=True)
    finally:
        if running is not None:
            stop(running.proc)
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


# --- interrupted pulls ---

def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def kill_mid_pull(base: Path, kind: str, image: str, layers: list[bigimage.Layer], when: str) -> str:
    """SIGKILL dockyardd while it downloads (``when="download"``: 40% of the
    compressed bytes in its content store) or unpacks (every blob committed,
    an unpack under way), restart it on the same root, check, pull again."""
    work = base / f"kill-{kind}-{when}"
    work.mkdir()
    running: RunningDaemon | None = None
    compressed = sum(layer.blobs[kind][2] for layer in layers)
    content = work / "root" / "content"
    snapshots = work / "root" / "snapshots"
    try:
        running = start_dockyardd(work)
        drop_caches()
        failure: list[BaseException] = []

        def pull_in_thread() -> None:
            try:
                pull(running, image)  # type: ignore[arg-type]
            except grpc.RpcError as err:
                failure.append(err)
        t = threading.Thread(target=pull_in_thread, daemon=True)
        t.start()
        deadline = time.monotonic() + PULL_TIMEOUT_S
        while True:
            if when == "download":
                hit = _tree_bytes(content) >= compressed * 0.4
            else:
                blobs = content / "blobs" / "sha256"
                done = blobs.is_dir() and sum(1 for _ in blobs.iterdir()) >= len(layers) + 2
                staging = snapshots / "snapshots"  # a layer being unpacked: snapshots/.tmp-*
                hit = done and staging.is_dir() and any(p.name.startswith(".tmp-") for p in staging.iterdir())
            if hit or not t.is_alive() or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not t.is_alive():
            return f"{kind}, kill while it {when}s: the pull ended before the kill point (not measured)"
        at = _tree_bytes(content) >> 20
        running.proc.kill()
        running.proc.wait()
        t.join(30)
        ingest_before = sorted((content / "ingest").iterdir()) if (content / "ingest").is_dir() else []
        running = start_dockyardd(work)
        with running.channel() as ch:
            images = api_pb2_grpc.ImageServiceStub(ch)
            listed = [i for i in images.ListImages(api_pb2.ListImagesRequest(), timeout=60).images
                      if any(bigimage.NAME in tag for tag in i.repo_tags)]
            ingest_after = sorted((content / "ingest").iterdir()) if (content / "ingest").is_dir() else []
            elapsed = pull(running, image)
            after = [i for i in images.ListImages(api_pb2.ListImagesRequest(), timeout=60).images
                     if any(bigimage.NAME in tag for tag in i.repo_tags)]
        problems = []
        if listed:
            problems.append(f"the image was listed after the kill: {[list(i.repo_tags) for i in listed]}")
        if ingest_after:
            problems.append(f"{len(ingest_after)} ingest files left after the restart")
        if len(after) != 1:
            problems.append(f"after the retry {len(after)} images are listed")
        verdict = "; ".join(problems) or "clean"
        return (f"{kind}, killed while it {when}ed ({at} MiB in the content store, {len(ingest_before)} partial "
                f"ingest files): retried pull {elapsed:.2f}s, {verdict}")
    except (grpc.RpcError, RuntimeError, OSError) as err:
        detail = err.details() if isinstance(err, grpc.RpcError) else str(err)  # type: ignore[attr-defined]
        return f"{kind}, kill while it {when}s: FAILED: {detail}"
    finally:
        if running is not None:
            stop(running.proc)
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="gzip,zstd")
    parser.add_argument("--no-kill", action="store_true", help="skip the interrupted pulls")
    parser.add_argument("--no-floors", action="store_true")
    parser.add_argument("--only", choices=("dockyardd", "containerd"))
    parser.add_argument("--quick", action="store_true", help="one round, no interrupted pulls")
    parser.add_argument("--no-setup", action="store_true", help="assume the registry runs with the test images")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.no_kill = 1, True
    if os.geteuid() != 0:
        raise SystemExit("bench/pull.py needs root (mounts, drop_caches)")
    variants = [v for v in args.variants.split(",") if v]
    if not args.no_setup:
        ensure_registry()
    layers, refs = bigimage.ensure()
    unpacked = sum(layer.size for layer in layers)
    print(f"{bigimage.NAME}: {len(layers)} layers, {unpacked >> 20} MiB unpacked, "
          + ", ".join(f"{la.name} {la.files} files/{la.size >> 20} MiB" for la in layers))
    for kind in variants:
        print(f"  {kind}: {sum(la.blobs[kind][2] for la in layers) >> 20} MiB compressed")
    daemons = [Daemon("dockyardd", start_dockyardd), Daemon("containerd", start_containerd)]
    if shutil.which("containerd") is None:
        print("bench: containerd not installed; timing dockyardd only")
        daemons = daemons[:1]
    if args.only:
        daemons = [d for d in daemons if d.name == args.only]
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-pull-"))
    floor: dict[str, float] = {}
    parallel: dict[str, list[float]] = {}  # variant -> the parallel floor of each round
    kills: list[str] = []
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    try:
        if not args.no_floors:
            floor = floors(layers, variants, base / "floor")
            for k, v in floor.items():
                print(f"  floor: {k}: {v:.2f}s", flush=True)
        for round_no in range(args.rounds):
            for kind in variants:
                order = daemons if round_no % 2 == 0 else list(reversed(daemons))
                for daemon in order:
                    one_pull(daemon, base, kind, refs[kind], round_no)
                if not args.no_floors:
                    parallel.setdefault(kind, []).append(parallel_floor(layers, kind, base / "floor"))
                    print(f"  round {round_no} {kind:4s} parallel curl | decompress | tar -x + syncfs "
                          f"floor {parallel[kind][-1]:.2f}s", flush=True)
        if not args.no_kill and any(d.name == "dockyardd" for d in daemons):
            for kind in variants:
                for when in ("download", "unpack"):
                    kills.append(kill_mid_pull(base, kind, refs[kind], layers, when))
                    print(f"  interrupted: {kills[-1]}", flush=True)
    finally:
        unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}\n")
    ok = True
    by = {d.name: d for d in daemons}
    print(f"{'variant':8s} {'daemon':11s} {'median s':>9s} {'pulls':>6s} {'peak RSS MiB':>13s} "
          f"{'vs containerd':>14s} {'vs parallel floor':>18s}")
    for kind in variants:
        for d in daemons:
            times = d.times.get(kind, [])
            if not times:
                print(f"{kind:8s} {d.name:11s} {'-':>9s} {0:6d}")
                ok = False
                continue
            med = statistics.median(times)
            vs_cd = ""
            cd = by.get("containerd")
            if d.name == "dockyardd" and cd is not None and cd.times.get(kind):
                r = med / statistics.median(cd.times[kind])
                vs_cd = f"{r:.2f} {'ok' if r <= CONTAINERD_RATIO else 'OVER'}"
            vs_floor = ""
            if parallel.get(kind):
                r = med / statistics.median(parallel[kind])
                vs_floor = f"{r:.2f}" + (f" {'ok' if r <= FLOOR_RATIO else 'OVER'}" if d.name == "dockyardd" else "")
            rss = d.peak_rss_kib.get(kind, 0) / 1024
            rss_note = (" ok" if rss < RSS_TARGET_MIB else " OVER") if d.name == "dockyardd" else ""
            print(f"{kind:8s} {d.name:11s} {med:9.2f} {len(times):6d} {rss:10.0f}{rss_note:3s} {vs_cd:>14s} {vs_floor:>18s}")
        if parallel.get(kind):
            print(f"{kind:8s} {'floor':11s} {statistics.median(parallel[kind]):9.2f} {len(parallel[kind]):6d}")
    for d in daemons:
        for failure in d.failures:
            print(f"{d.name} failure: {failure}")
            ok = False
    for line in kills:
        print(f"interrupted pull: {line}")
        ok = ok and (line.endswith("clean") or "not measured" in line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

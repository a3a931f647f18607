"""Exec latency and exec stream throughput: dockyardd against Debian's containerd 1.6 (CRI plugin).

Both daemons run side by side, set up exactly as bench/pod.py sets them up
(same images from the local registry, each its own CNI bridge and /24, a
kubelet-style cgroup parent), and each runs one pod with one busybox
container, ``sleep 3600``.  Every measurement alternates the daemons run by
run (the first daemon of run n is the second of run n+1), after uncounted
warm-up runs on each.

Latency (``echo hi``, ``--runs`` per daemon):
  * ExecSync: the gRPC call alone (Python client, cri_api.v1).
  * streaming exec, own client: the Exec RPC, then the HTTP upgrade to
    SPDY/3.1 with ``v4.channel.k8s.io``, an error and a stdout stream (as
    client-go opens them), until both streams are finished by the server.
    The client is a blocking socket over the project's sans-I/O
    dockyard.cri.streaming.spdy, so it costs the same against either daemon.
  * streaming exec, crictl: ``crictl exec <id> echo hi`` timed as a process,
    reported raw and with the median of ``crictl version`` (a trivial RPC:
    crictl's start-up, config and gRPC dial) subtracted, so what remains is
    the runtime's share.

Throughput (``--mib`` MiB, ``--stream-runs`` per daemon), MiB/s:
  * ``head -c N /dev/zero`` to stdout, own client (every byte counted, so a
    short stream is a failure, not a fast run).
  * the same through ``crictl exec`` with stdout to /dev/null (Go's client,
    which no Python client can slow down).
  * N bytes of a file through ``crictl exec -i <id> cat``: stdin in, stdout out.
  crictl's start-up (the ``crictl version`` median) is subtracted here too.

The targets (issue 5): dockyardd's latency at or below containerd's, and
its throughput at least containerd's.  Ratios are dockyardd / containerd of
the medians; the last column says whether the target is met.

Whatever happens, the pods are removed, both daemons stopped, and leftovers
(mounts, netns, container cgroups, shims, veths, IPAM leases) reported and
then removed, with bench/pod.py's own checks.

    .venv/bin/python bench/stream.py [--runs 100] [--stream-runs 10] [--mib 100] [--warmup 5] [--no-setup]
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import grpc
from cri_api.v1 import api_pb2

from daemons import REPO
from dockyard.cri.streaming import spdy
from pod import (BUSYBOX, CALL_TIMEOUT_S, Side, both_sides, describe, force_clean, leftovers, pod_config, prepare,
                 print_leftovers, record_netns, remove_pod, start_side, stop_sides)

CRICTL = REPO / "build" / "bin" / "crictl"
SLEEP = ["sleep", "3600"]
ECHO = ["echo", "hi"]
STREAM_TIMEOUT_S = 120.0
RECV_CHUNK = 256 * 1024
MIB = 1024 * 1024

# Metric name -> whether lower is better (latency) or higher (throughput).
LATENCY = ("ExecSync echo hi (ms)", "exec echo hi, own SPDY client (ms)", "crictl exec echo hi (ms)",
           "  crictl exec minus crictl version (ms)")
THROUGHPUT = ("stdout head|own client (MiB/s)", "stdout head|crictl >/dev/null (MiB/s)",
              "stdin->cat->stdout, crictl -i (MiB/s)")
BASELINE = "crictl version (ms)"


class BenchFailure(Exception):
    """A run gave a wrong answer (output, exit status, HTTP status)."""


@dataclass
class Target:
    """One daemon's running busybox container and what was measured against it."""

    side: Side
    container_id: str = ""
    pod_id: str = ""
    crictl_config: Path | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, metric: str, value: float) -> None:
        self.samples.setdefault(metric, []).append(value)


# --- the container ---

def start_container(t: Target, cgroup_base: str, logs: Path) -> None:
    side = t.side
    pod = pod_config(side, "stream", cgroup_base, logs)
    t.pod_id = side.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod),
                                     timeout=CALL_TIMEOUT_S).pod_sandbox_id
    record_netns(side, t.pod_id)
    t.container_id = side.rt.CreateContainer(api_pb2.CreateContainerRequest(
        pod_sandbox_id=t.pod_id, sandbox_config=pod, config=api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="busybox"), image=api_pb2.ImageSpec(image=BUSYBOX),
            command=SLEEP, log_path="busybox.log")), timeout=CALL_TIMEOUT_S).container_id
    side.rt.StartContainer(api_pb2.StartContainerRequest(container_id=t.container_id), timeout=CALL_TIMEOUT_S)
    assert side.daemon is not None
    t.crictl_config = side.work / "crictl.yaml"
    endpoint = f"unix://{side.daemon.socket}"
    t.crictl_config.write_text(f"runtime-endpoint: {endpoint}\nimage-endpoint: {endpoint}\ntimeout: 60\n")


def stop_container(t: Target) -> None:
    """sleep as PID 1 ignores SIGTERM: stop with no grace, then remove the pod."""
    if t.container_id:
        t.side.rt.StopContainer(api_pb2.StopContainerRequest(container_id=t.container_id, timeout=0),
                                timeout=CALL_TIMEOUT_S)
    if t.pod_id:
        remove_pod(t.side, t.pod_id)


def stop_all(targets: list[Target], cgroup_base: str, base: Path) -> dict[str, list[str]]:
    """Every target's pod removed (a failure noted on its side), both daemons
    stopped; what leftovers() found, which force_clean then removed."""
    for t in targets:
        if t.side.daemon is not None and t.side.daemon.proc.poll() is None:
            try:
                stop_container(t)
            except grpc.RpcError as err:
                t.side.failures.append(f"cleanup: {describe(err)}")
    sides = [t.side for t in targets]
    stop_sides(sides)
    left = leftovers(sides, cgroup_base, base)
    force_clean(sides, cgroup_base, base)
    return left


# --- ExecSync ---

def exec_sync(t: Target) -> float:
    t0 = time.perf_counter()
    resp = t.side.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=t.container_id, cmd=ECHO, timeout=30),
                              timeout=CALL_TIMEOUT_S)
    elapsed = time.perf_counter() - t0
    if resp.exit_code != 0 or resp.stdout != b"hi\n":
        raise BenchFailure(f"ExecSync echo hi: exit {resp.exit_code}, stdout {resp.stdout[:80]!r}")
    return elapsed


# --- streaming exec with our own SPDY client ---

def spdy_exec(url: str, *, keep_stdout: bool) -> tuple[bytes, int, bytes]:
    """Run one v4.channel.k8s.io exec session with error and stdout streams.

    Returns (stdout if ``keep_stdout`` else b"", stdout byte count, the
    error stream's Status JSON).  Ends when the server has finished both
    streams or closed the connection."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None or parts.port is None:
        raise BenchFailure(f"unexpected streaming URL {url!r}")
    with socket.create_connection((parts.hostname, parts.port), timeout=STREAM_TIMEOUT_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: Upgrade\r\n"
                "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n")
        sock.sendall(head.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise BenchFailure(f"connection closed during the upgrade: {buf[:200]!r}")
            buf += chunk
        status_line, _, rest = buf.partition(b"\r\n\r\n")
        if not status_line.startswith(b"HTTP/1.1 101"):
            first_line = status_line.split(b"\r\n", 1)[0]
            raise BenchFailure(f"upgrade refused: {first_line!r}")
        conn = spdy.Connection(client=True)
        error_id = conn.open_stream((("streamtype", "error"),))
        stdout_id = conn.open_stream((("streamtype", "stdout"),))
        sock.sendall(conn.data_to_send())
        out = bytearray()
        count = 0
        error = bytearray()
        finished: set[int] = set()
        data = rest
        while True:
            for ev in conn.receive_data(data):
                if isinstance(ev, spdy.Data):
                    if ev.stream_id == stdout_id:
                        count += len(ev.data)
                        if keep_stdout:
                            out += ev.data
                        conn.acknowledge(stdout_id, len(ev.data))
                    elif ev.stream_id == error_id:
                        error += ev.data
                    if ev.fin:
                        finished.add(ev.stream_id)
                elif isinstance(ev, spdy.SynReply) and ev.fin:
                    finished.add(ev.stream_id)
                elif isinstance(ev, spdy.RstStream):
                    finished.add(ev.stream_id)
            pending = conn.data_to_send()
            if pending:
                sock.sendall(pending)
            if {error_id, stdout_id} <= finished:
                break
            data = sock.recv(RECV_CHUNK)
            if not data:
                break
    return bytes(out), count, bytes(error)


def request_exec(t: Target, cmd: list[str]) -> str:
    return str(t.side.rt.Exec(api_pb2.ExecRequest(container_id=t.container_id, cmd=cmd, stdout=True),
                              timeout=CALL_TIMEOUT_S).url)


def check_status(error: bytes, what: str) -> None:
    # v4: an empty error stream or a Status of "Success" means exit code 0.
    if error and b'"Success"' not in error:
        raise BenchFailure(f"{what}: error stream {error[:200]!r}")


def own_exec_echo(t: Target) -> float:
    t0 = time.perf_counter()
    out, _, error = spdy_exec(request_exec(t, ECHO), keep_stdout=True)
    elapsed = time.perf_counter() - t0
    check_status(error, "exec echo hi")
    if out != b"hi\n":
        raise BenchFailure(f"exec echo hi: stdout {out[:80]!r}")
    return elapsed


def own_exec_stream(t: Target, nbytes: int) -> float:
    t0 = time.perf_counter()
    _, count, error = spdy_exec(request_exec(t, ["head", "-c", str(nbytes), "/dev/zero"]), keep_stdout=False)
    elapsed = time.perf_counter() - t0
    check_status(error, "exec head")
    if count != nbytes:
        raise BenchFailure(f"exec head -c {nbytes}: {count} bytes arrived")
    return elapsed


# --- crictl ---

def crictl(t: Target, args: list[str], *, stdin_path: Path | None = None, keep_stdout: bool = True) -> float:
    """Seconds for one crictl invocation, from fork to exit."""
    assert t.crictl_config is not None
    cmd = [str(CRICTL), "--config", str(t.crictl_config), *args]
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdin=stdin, stdout=subprocess.PIPE if keep_stdout else subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=STREAM_TIMEOUT_S, check=False)
        elapsed = time.perf_counter() - t0
    finally:
        if stdin_path:
            stdin.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        raise BenchFailure(f"crictl {' '.join(args[:3])}: exit {proc.returncode}: {proc.stderr[-300:]!r}")
    if keep_stdout and args[0] == "exec" and proc.stdout != b"hi\n":
        raise BenchFailure(f"crictl exec echo hi: stdout {proc.stdout[:80]!r}")
    return elapsed


# --- the runs ---

def alternate(targets: list[Target], runs: int, warmup: int, metric: str,
              measure: Callable[[Target], float], scale: Callable[[float], float]) -> None:
    """``warmup`` uncounted then ``runs`` counted measurements per target, alternating the order."""
    for n in range(warmup + runs):
        order = targets if n % 2 == 0 else list(reversed(targets))
        for t in order:
            try:
                value = measure(t)
            except (grpc.RpcError, BenchFailure, OSError, subprocess.TimeoutExpired, spdy.ProtocolError) as err:
                t.side.failures.append(f"{metric} run {n}: {describe(err)}")
                continue
            if n >= warmup:
                t.add(metric, scale(value))
    counts = ", ".join(f"{t.side.name} {len(t.samples.get(metric, []))}" for t in targets)
    print(f"  {metric}: {counts} samples", flush=True)


def measure_all(targets: list[Target], args: argparse.Namespace, blob: Path) -> None:
    ms: Callable[[float], float] = lambda s: s * 1000
    nbytes = args.mib * MIB
    alternate(targets, args.runs, args.warmup, LATENCY[0], exec_sync, ms)
    alternate(targets, args.runs, args.warmup, LATENCY[1], own_exec_echo, ms)
    alternate(targets, args.runs, args.warmup, BASELINE, lambda t: crictl(t, ["version"]), ms)
    alternate(targets, args.runs, args.warmup, LATENCY[2],
              lambda t: crictl(t, ["exec", t.container_id, *ECHO]), ms)
    for t in targets:
        base = statistics.median(t.samples.get(BASELINE, [0.0]))
        t.samples[LATENCY[3]] = [v - base for v in t.samples.get(LATENCY[2], [])]
    alternate(targets, args.stream_runs, 1, THROUGHPUT[0], lambda t: own_exec_stream(t, nbytes),
              lambda s: args.mib / s)
    alternate(targets, args.stream_runs, 1, THROUGHPUT[1],
              lambda t: crictl_minus_start(t, ["exec", t.container_id, "head", "-c", str(nbytes), "/dev/zero"]),
              lambda s: args.mib / s)
    alternate(targets, args.stream_runs, 1, THROUGHPUT[2],
              lambda t: crictl_minus_start(t, ["exec", "-i", t.container_id, "cat"], stdin_path=blob),
              lambda s: args.mib / s)


def crictl_minus_start(t: Target, args: list[str], stdin_path: Path | None = None) -> float:
    base = statistics.median(t.samples.get(BASELINE, [0.0])) / 1000
    return crictl(t, args, stdin_path=stdin_path, keep_stdout=False) - base


# --- report ---

def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def print_table(targets: list[Target], args: argparse.Namespace) -> None:
    by = {t.side.name: t for t in targets}
    print(f"\nlatency: {args.runs} runs per daemon; throughput: {args.stream_runs} runs of {args.mib} MiB; "
          "alternating daemons; p90 nearest-rank")
    print(f"{'metric':42s} {'dy median':>10s} {'dy p90':>9s} {'cd median':>10s} {'cd p90':>9s} "
          f"{'dy/cd':>7s}  target")
    for metric in (BASELINE, *LATENCY, *THROUGHPUT):
        cells = []
        med: dict[str, float | None] = {}
        for name in ("dockyardd", "containerd"):
            vals = by[name].samples.get(metric, []) if name in by else []
            med[name] = statistics.median(vals) if vals else None
            cells += [_num(med[name]), _num(p90(vals) if vals else None)]
        dy, cd = med["dockyardd"], med["containerd"]
        ratio = f"{dy / cd:.2f}" if dy is not None and cd else "-"
        verdict = ""
        if metric in LATENCY[:3] + (LATENCY[3],) and dy is not None and cd is not None:
            verdict = "met (<= cd)" if dy <= cd else "MISSED (> cd)"
        elif metric in THROUGHPUT and dy is not None and cd is not None:
            verdict = "met (>= cd)" if dy >= cd else "MISSED (< cd)"
        print(f"{metric:42s} {cells[0]:>10s} {cells[1]:>9s} {cells[2]:>10s} {cells[3]:>9s} {ratio:>7s}  {verdict}")
    print("(for throughput the p90 column is the 90th percentile of MiB/s, i.e. the faster runs)")
    for t in targets:
        print(f"{t.side.name} failures: {len(t.side.failures)}")
        for failure in t.side.failures[:20]:
            print(f"    {failure}")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="latency runs per daemon and metric")
    parser.add_argument("--stream-runs", type=int, default=10, help="throughput runs per daemon and metric")
    parser.add_argument("--mib", type=int, default=100, help="MiB per throughput run")
    parser.add_argument("--warmup", type=int, default=5, help="uncounted latency runs per daemon first")
    parser.add_argument("--no-setup", action="store_true", help="assume the registry runs and holds the images")
    args = parser.parse_args(argv)
    if not CRICTL.is_file():
        raise SystemExit(f"bench: {CRICTL} missing (make tools)")
    base = prepare("stream", args.no_setup)
    cgroup_base = f"/dybench-{secrets.token_hex(4)}"
    logs = base / "logs"
    blob = base / "stdin.bin"
    with open(blob, "wb") as f:
        f.truncate(args.mib * MIB)  # zeros; sparse is fine, it is read through a pipe
    sides = both_sides(base, "dybench", 201)
    targets = [Target(s) for s in sides]
    left: dict[str, list[str]] = {}
    started = True
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    try:
        for t in targets:
            start_side(t.side, cgroup_base)
            start_container(t, cgroup_base, logs)
        measure_all(targets, args, blob)
    except (grpc.RpcError, RuntimeError, OSError, BenchFailure) as err:
        print(f"bench: aborted: {describe(err)}", file=sys.stderr)
        targets[0].side.failures.append(f"aborted: {describe(err)}")
        started = False
    finally:
        left = stop_all(targets, cgroup_base, base)
    print(f"load average at end: {os.getloadavg()[0]:.2f} (1 min)")
    print_table(targets, args)
    print_leftovers(left)
    ok = started and not left and all(t.samples.get(m) for t in targets for m in (*LATENCY, *THROUGHPUT))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

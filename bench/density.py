"""Pod density on one node: dockyardd against Debian's containerd 1.6 (CRI plugin), 110 pods.

Both daemons are set up as bench/pod.py sets them up (same images from the
local registry, the same CNI conflist with a bridge and a /24 of each one's
own, kubelet-style cgroup parents, restrict_oom_score_adj), and each daemon
is started inside a cpuacct cgroup of the bench's own, so that everything it
runs outside the pods' cgroups (its shims, the runtime they run, CNI
plugins) is accounted there.  The phases run on one daemon at a time; with
``--rounds 2`` the order alternates, and figures are the rounds' medians.

A pod is kubelet's: a pause sandbox plus one busybox container running
``sleep`` (a shell that exits on SIGTERM, so a stop measures the daemon, not
a grace period).  The client is one asyncio gRPC channel per daemon, as
kubelet holds one connection.

1. Ramp: ``--pods`` (110, kubelet's maxPods) pods, at most ``--inflight``
   (10) being created at once; each pod is RunPodSandbox, CreateContainer,
   StartContainer.  Reported: the time until all run, and each call's p50
   and p99.
2. Steady state, ``--steady`` seconds (300), with kubelet's polling:
     * every 1 s (the generic PLEG relist): ListPodSandbox, ListContainers,
       then PodSandboxStatus and ContainerStatus of every pod (10 in flight);
     * every 10 s: ListPodSandboxStats, then ListContainerStats;
     * one exec probe (ExecSync ``true``, timeout 1 s) per pod every 10 s,
       each pod's probe at its own phase in the period, as kubelet staggers them.
   Reported: CPU seconds of the daemon itself, of its shims (their own
   utime + stime, from /proc) and of everything in the daemon's cgroup
   (daemon, shims, runtime processes, CNI plugins: cpuacct.usage); the
   daemon's RSS at ``--pods`` pods; the shims' summed PSS; the p99 of each
   polled call; relists that overran their second.
3. Churn, ``--churn`` seconds (120), with the same polling: every 1/``--rate``
   s (5 per second) the oldest pod is deleted (StopContainer,
   StopPodSandbox, RemovePodSandbox; its probe stopped first, as kubelet's
   probe workers are) and a new one made, at most ``--inflight``
   replacements at once.  Reported: pod start p50/p99, the rate reached,
   errors (must be 0: a status call racing a deletion, NOT_FOUND for a pod
   the client was deleting, is counted apart as kubelet tolerates it), and
   that the node holds exactly what it held after the ramp with the same
   number of pods: mounts, netns, container cgroups, shims, IPAM leases,
   veths.  dockyardd's idle spare shims are not a pod's (they count in the
   shims' PSS and CPU above).
4. Teardown: every pod removed, ``--inflight`` at once; the time, and that
   nothing is left while the daemon still runs.

After both daemons stopped, bench/pod.py's leftover check runs over both
(mounts, netns, container cgroups, shims, veths, IPAM leases) and cleans up.

``--quick``: 40 pods, 30 s steady state, 20 s churn, for iterating on a
change; the full run takes about 20 minutes on the 2-core VM.

    .venv/bin/python bench/density.py [--pods 110] [--steady 300] [--churn 120] [--rounds 1] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

import pod as podbench
from daemons import pss_kib, rss_kib
from pod import Side, cgroup_dirs, container_config, describe, force_clean, leftovers, pod_config

CALL_TIMEOUT_S = 120.0
STATUS_PERIOD_S = 1.0
STATS_PERIOD_S = 10.0
PROBE_PERIOD_S = 10.0
PROBE_TIMEOUT_S = 1
PROBE = ["true"]
STOP_GRACE_S = 10
CPUACCT = Path("/sys/fs/cgroup/cpuacct")
CLK_TCK = os.sysconf("SC_CLK_TCK")
POLLED = ("ListPodSandbox", "ListContainers", "PodSandboxStatus", "ContainerStatus",
          "ListPodSandboxStats", "ListContainerStats", "ExecSync")
START_CALLS = ("RunPodSandbox", "CreateContainer", "StartContainer", "pod start")
T = TypeVar("T")


# --- figures (pure) ---

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def cpu_seconds_of(pid: int, reaped: bool = False) -> float:
    """utime + stime of a live process (its own threads; with ``reaped``, also the
    children it has reaped: cutime + cstime), in seconds; 0 when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15 if reaped else 13]) / CLK_TCK


# --- what one daemon's run measured ---

@dataclass
class Run:
    """One daemon's pass through the four phases."""

    side: str
    latencies: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # phase -> call -> seconds
    figures: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    races: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # after ramp / churn / teardown

    def record(self, phase: str, call: str, seconds: float) -> None:
        self.latencies.setdefault(phase, {}).setdefault(call, []).append(seconds)


@dataclass
class LivePod:
    tag: str
    pod_id: str
    container_id: str
    config: api_pb2.PodSandboxConfig
    probe: asyncio.Task[None] | None = None


class Node:
    """One daemon under test as the bench's kubelet sees it: its pods and a client."""

    def __init__(self, side: Side, cgroup_base: str, logs: Path, run: Run) -> None:
        assert side.daemon is not None
        self.side = side
        self.cgroup_base = cgroup_base
        self.logs = logs
        self.run = run
        self.channel = grpc.aio.insecure_channel(
            f"unix://{side.daemon.socket}",
            options=[("grpc.max_receive_message_length", 16 << 20)])
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.pods: dict[str, LivePod] = {}
        self.deleting: set[str] = set()  # pod and container ids being (or having been) removed
        self.phase = "ramp"
        self.generation = 0

    async def call(self, name: str, request: Any, timeout: float = CALL_TIMEOUT_S, *, polled_id: str = "") -> Any:
        """One timed RPC; a NOT_FOUND for an id being deleted is a race, any other error is recorded and raised."""
        t0 = time.perf_counter()
        try:
            response = await getattr(self.rt, name)(request, timeout=timeout)
        except grpc.aio.AioRpcError as err:
            if polled_id and polled_id in self.deleting and err.code() == grpc.StatusCode.NOT_FOUND:
                self.run.races += 1
                return None
            self.run.errors.append(f"{self.phase}: {name}: {err.code().name}: {err.details()}")
            raise
        self.run.record(self.phase, name, time.perf_counter() - t0)
        return response

    # --- pods ---

    async def create_pod(self) -> LivePod:
        self.generation += 1
        tag = f"{self.generation}"
        config = pod_config(self.side, tag, self.cgroup_base, self.logs)
        t0 = time.perf_counter()
        pod_id = (await self.call("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=config))).pod_sandbox_id
        cid = (await self.call("CreateContainer", api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=container_config("sleeper", self.side.pid_mode),
            sandbox_config=config))).container_id
        await self.call("StartContainer", api_pb2.StartContainerRequest(container_id=cid))
        self.run.record(self.phase, "pod start", time.perf_counter() - t0)
        await self.remember_netns(pod_id)
        live = LivePod(tag, pod_id, cid, config)
        self.pods[pod_id] = live
        return live

    async def remember_netns(self, pod_id: str) -> None:
        """The pod's netns path for the leak checks (untimed): dockyardd names it
        in netNamespacePath, containerd in the runtime spec's namespaces."""
        resp = await self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True),
                                              timeout=CALL_TIMEOUT_S)
        try:
            info = json.loads(resp.info.get("info", "{}"))
        except json.JSONDecodeError:
            return
        path = info.get("netNamespacePath", "")
        for ns in info.get("runtimeSpec", {}).get("linux", {}).get("namespaces", []):
            if ns.get("type") == "network":
                path = ns.get("path", path)
        if path:
            self.side.netns_paths.add(path)

    async def delete_pod(self, live: LivePod) -> None:
        """As kubelet kills a pod: probes stopped, container stopped, sandbox stopped, then removed."""
        self.pods.pop(live.pod_id, None)
        self.deleting.update((live.pod_id, live.container_id))
        if live.probe is not None:
            live.probe.cancel()
            await asyncio.gather(live.probe, return_exceptions=True)
        t0 = time.perf_counter()
        await self.call("StopContainer", api_pb2.StopContainerRequest(container_id=live.container_id,
                                                                      timeout=STOP_GRACE_S))
        await self.call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=live.pod_id))
        await self.call("RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=live.pod_id))
        self.run.record(self.phase, "pod removal", time.perf_counter() - t0)
        # kubelet removes the pod's cgroup parent once the runtime is done with it.
        for top in cgroup_dirs(self.cgroup_base):
            try:
                os.rmdir(top / self.side.name / f"pod{live.tag}")
            except OSError:
                pass

    # --- kubelet's polling ---

    async def relist(self, limit: asyncio.Semaphore) -> None:
        pods = await self.call("ListPodSandbox", api_pb2.ListPodSandboxRequest())
        containers = await self.call("ListContainers", api_pb2.ListContainersRequest())

        async def status(name: str, request: Any, object_id: str) -> None:
            async with limit:
                await self.call(name, request, polled_id=object_id)

        calls = [status("PodSandboxStatus", api_pb2.PodSandboxStatusRequest(pod_sandbox_id=p.id), p.id)
                 for p in pods.items]
        calls += [status("ContainerStatus", api_pb2.ContainerStatusRequest(container_id=c.id), c.id)
                  for c in containers.containers]
        await asyncio.gather(*calls, return_exceptions=True)

    async def collect_stats(self) -> None:
        await self.call("ListPodSandboxStats", api_pb2.ListPodSandboxStatsRequest())
        await self.call("ListContainerStats", api_pb2.ListContainerStatsRequest())

    async def probe_loop(self, live: LivePod, offset: float) -> None:
        await asyncio.sleep(offset)
        while True:
            began = time.monotonic()
            try:
                resp = await self.call("ExecSync", api_pb2.ExecSyncRequest(
                    container_id=live.container_id, cmd=PROBE, timeout=PROBE_TIMEOUT_S),
                    timeout=PROBE_TIMEOUT_S + 10, polled_id=live.container_id)
                if resp is not None and resp.exit_code != 0:
                    self.run.errors.append(f"{self.phase}: probe of {live.tag} exited {resp.exit_code}")
            except grpc.aio.AioRpcError:
                pass  # recorded by call()
            await asyncio.sleep(max(0.0, PROBE_PERIOD_S - (time.monotonic() - began)))

    def start_probe(self, live: LivePod, offset: float | None = None) -> None:
        live.probe = asyncio.create_task(self.probe_loop(
            live, random.uniform(0, PROBE_PERIOD_S) if offset is None else offset))

    async def polling(self, stop_at: asyncio.Event) -> None:
        """The relist every second and stats every ten, until ``stop_at`` is set."""
        limit = asyncio.Semaphore(10)
        loop = asyncio.get_running_loop()
        next_stats = loop.time()
        tick = loop.time()
        while not stop_at.is_set():
            tasks = [self.relist(limit)]
            if loop.time() >= next_stats:
                tasks.append(self.collect_stats())
                next_stats += STATS_PERIOD_S
            began = loop.time()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException) and not isinstance(result, grpc.aio.AioRpcError):
                    raise result
            if loop.time() - began > STATUS_PERIOD_S:
                self.run.figures[f"{self.phase} relists over 1 s"] = \
                    self.run.figures.get(f"{self.phase} relists over 1 s", 0) + 1
            tick += STATUS_PERIOD_S
            try:
                await asyncio.wait_for(stop_at.wait(), max(0.0, tick - loop.time()))
            except asyncio.TimeoutError:
                pass

    async def close(self) -> None:
        for live in self.pods.values():
            if live.probe is not None:
                live.probe.cancel()
        await asyncio.gather(*(p.probe for p in self.pods.values() if p.probe), return_exceptions=True)
        await self.channel.close()


# --- what the node holds ---

def footprint(side: Side, cgroup_base: str) -> dict[str, int]:
    """Counts of what a daemon's pods hold on the node right now."""
    assert side.daemon is not None
    markers = [str(side.work.resolve()) + "/"] + ([str(side.state_dir) + "/"] if side.state_dir else [])
    with open("/proc/self/mountinfo") as f:
        mounts = sum(1 for line in f if line.split()[4].startswith(tuple(markers)))
    netns = {p for p in side.netns_paths if os.path.lexists(p)}
    if side.state_dir and (side.state_dir / "netns").is_dir():
        netns |= {str(p) for p in (side.state_dir / "netns").iterdir()}
    memory = CGROUP_MEMORY / cgroup_base.strip("/") / side.name
    container_cgroups = sum(1 for d in memory.glob("*/*") if d.is_dir()) if memory.is_dir() else 0
    out = subprocess.run(["ip", "-o", "link", "show", "master", side.bridge], capture_output=True, text=True)
    leases = sum(1 for p in side.ipam_dir.rglob("*") if p.is_file() and p.name[0].isdigit()) \
        if side.ipam_dir.is_dir() else 0
    return {"mounts": mounts, "netns": len(netns), "container cgroups": container_cgroups,
            "shims": len(side.shim_pids(spares=False)), "IPAM leases": leases, "veths": len(out.stdout.splitlines())}


CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")


class Accounting:
    """CPU of a daemon, its shims and its whole cgroup between two points."""

    def __init__(self, side: Side, cgroup: Path) -> None:
        assert side.daemon is not None
        self.side = side
        self.cgroup = cgroup
        self.pid = side.daemon.proc.pid

    def sample(self) -> dict[str, float]:
        shims = self.side.shim_pids()
        return {
            "daemon": cpu_seconds_of(self.pid),
            "shims": sum(cpu_seconds_of(p) for p in shims),
            "cgroup": int((self.cgroup / "cpuacct.usage").read_text()) / 1e9,
        }


def daemon_cgroup(cgroup_base: str, side: Side) -> Path:
    """A cpuacct cgroup for the daemon and everything it starts (made before its first pod)."""
    assert side.daemon is not None
    path = CPUACCT / cgroup_base.strip("/") / f"{side.name}-runtime"
    path.mkdir(parents=True, exist_ok=True)
    (path / "cgroup.procs").write_text(str(side.daemon.proc.pid))
    return path


# --- the phases ---

async def bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T | BaseException]:
    sem = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with sem:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs), return_exceptions=True)


async def ramp(node: Node, pods: int, inflight: int) -> None:
    node.phase = "ramp"
    t0 = time.perf_counter()
    results = await bounded(inflight, [node.create_pod for _ in range(pods)])
    node.run.figures["ramp: time to all running (s)"] = time.perf_counter() - t0
    failed = [r for r in results if isinstance(r, BaseException)]
    for r in failed:
        if not isinstance(r, grpc.aio.AioRpcError):
            node.run.errors.append(f"ramp: {describe(r)}")
    running = [c for c in (await node.rt.ListContainers(api_pb2.ListContainersRequest(), timeout=CALL_TIMEOUT_S)).containers
               if c.state == api_pb2.CONTAINER_RUNNING]
    node.run.figures["ramp: containers running"] = len(running)
    # Probes start now, each at its own phase of the period (kubelet's jitter).
    for n, live in enumerate(node.pods.values()):
        node.start_probe(live, PROBE_PERIOD_S * n / max(1, len(node.pods)))


async def steady(node: Node, seconds: float, account: Accounting) -> None:
    node.phase = "steady"
    pid = account.pid
    stop_at = asyncio.Event()
    before = account.sample()
    client_before = cpu_seconds_of(os.getpid())
    t0 = time.monotonic()
    poller = asyncio.create_task(node.polling(stop_at))
    peak_rss = rss_kib(pid)
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(min(5.0, max(0.0, seconds - (time.monotonic() - t0))))
        peak_rss = max(peak_rss, rss_kib(pid))
    stop_at.set()
    await poller
    after = account.sample()
    elapsed = time.monotonic() - t0
    shims = node.side.shim_pids()
    f = node.run.figures
    f["steady: seconds"] = elapsed
    f["steady: daemon CPU (s)"] = after["daemon"] - before["daemon"]
    f["steady: shims CPU (s)"] = after["shims"] - before["shims"]
    f["steady: daemon cgroup CPU (s)"] = after["cgroup"] - before["cgroup"]
    f["steady: bench client CPU (s)"] = cpu_seconds_of(os.getpid()) - client_before
    f["daemon RSS at end (MiB)"] = rss_kib(pid) / 1024
    f["daemon peak RSS in steady (MiB)"] = peak_rss / 1024
    f["shims PSS total (MiB)"] = sum(pss_kib(p) for p in shims) / 1024
    f["shim processes"] = len(shims)


async def churn(node: Node, seconds: float, rate: float, inflight: int, account: Accounting) -> None:
    node.phase = "churn"
    stop_at = asyncio.Event()
    before = account.sample()
    poller = asyncio.create_task(node.polling(stop_at))
    sem = asyncio.Semaphore(inflight)
    replaced = 0
    tasks: set[asyncio.Task[None]] = set()

    async def replace(victim: LivePod) -> None:
        nonlocal replaced
        try:
            await node.delete_pod(victim)
            live = await node.create_pod()
            node.start_probe(live)
            replaced += 1
        except grpc.aio.AioRpcError:
            pass  # recorded by call()
        finally:
            sem.release()

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    n = 0
    while loop.time() - t0 < seconds:
        await sem.acquire()
        if node.pods:
            victim = min(node.pods.values(), key=lambda p: int(p.tag))
            node.pods.pop(victim.pod_id)  # no other replacement picks it
            task = asyncio.create_task(replace(victim))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            sem.release()
        n += 1
        await asyncio.sleep(max(0.0, t0 + n / rate - loop.time()))
    await asyncio.gather(*list(tasks), return_exceptions=True)
    elapsed = loop.time() - t0
    stop_at.set()
    await poller
    after = account.sample()
    node.run.figures["churn: pods replaced"] = replaced
    node.run.figures["churn: replacements per second"] = replaced / elapsed
    node.run.figures["churn: daemon CPU (s)"] = after["daemon"] - before["daemon"]
    node.run.figures["churn: daemon cgroup CPU (s)"] = after["cgroup"] - before["cgroup"]


async def teardown(node: Node, inflight: int) -> None:
    node.phase = "teardown"
    for live in node.pods.values():
        if live.probe is not None:
            live.probe.cancel()
    await asyncio.gather(*(p.probe for p in node.pods.values() if p.probe), return_exceptions=True)
    t0 = time.perf_counter()
    await bounded(inflight, [lambda live=live: node.delete_pod(live) for live in list(node.pods.values())])
    node.run.figures["teardown: time (s)"] = time.perf_counter() - t0


async def scenario(side: Side, args: argparse.Namespace, cgroup_base: str, logs: Path, cgroup: Path) -> Run:
    run = Run(side.name)
    node = Node(side, cgroup_base, logs, run)
    account = Accounting(side, cgroup)
    try:
        print(f"  {side.name}: ramp to {args.pods} pods", flush=True)
        await ramp(node, args.pods, args.inflight)
        run.counts["after ramp"] = footprint(side, cgroup_base)
        run.figures["daemon RSS at full node (MiB)"] = rss_kib(account.pid) / 1024
        print(f"  {side.name}: {run.figures['ramp: time to all running (s)']:.1f}s to all running; "
              f"steady state {args.steady:.0f}s", flush=True)
        await steady(node, args.steady, account)
        print(f"  {side.name}: churn {args.churn:.0f}s at {args.rate}/s", flush=True)
        await churn(node, args.churn, args.rate, args.inflight, account)
        await asyncio.sleep(1)  # exits and removals the daemon finishes after answering
        run.counts["after churn"] = footprint(side, cgroup_base)
        print(f"  {side.name}: teardown", flush=True)
        await teardown(node, args.inflight)
        await asyncio.sleep(1)
        run.counts["after teardown"] = footprint(side, cgroup_base)
    finally:
        await node.close()
    return run


async def all_rounds(sides: list[Side], args: argparse.Namespace, cgroup_base: str, logs: Path,
                     cgroups: dict[str, Path], results: dict[str, list[Run]]) -> None:
    for n in range(args.rounds):
        for s in (sides if n % 2 == 0 else list(reversed(sides))):
            print(f"round {n}: {s.name}", flush=True)
            results[s.name].append(await scenario(s, args, cgroup_base, logs, cgroups[s.name]))


# --- report ---

def fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def merged(runs: list[Run]) -> Run:
    """The rounds of one daemon as one: latencies pooled, figures as medians, errors and counts kept."""
    out = Run(runs[0].side)
    for r in runs:
        for phase, calls in r.latencies.items():
            for call, values in calls.items():
                out.latencies.setdefault(phase, {}).setdefault(call, []).extend(values)
        out.errors += r.errors
        out.races += r.races
    keys = {k for r in runs for k in r.figures}
    out.figures = {k: statistics.median([r.figures[k] for r in runs if k in r.figures]) for k in keys}
    out.counts = runs[-1].counts
    return out


def print_report(runs: dict[str, Run], args: argparse.Namespace) -> None:
    dy, cd = runs.get("dockyardd"), runs.get("containerd")
    names = [n for n in ("dockyardd", "containerd") if n in runs]

    def row(label: str, get: Callable[[Run], float | None], digits: int = 3, lower_better: bool = True,
            bound: float = 1.0) -> None:
        vals = [get(runs[n]) for n in names]
        ratio = ""
        verdict = ""
        if dy is not None and cd is not None:
            a, b = get(dy), get(cd)
            if a is not None and b is not None and not math.isnan(a) and not math.isnan(b) and b > 0:
                ratio = f"{a / b:.2f}"
                verdict = "ok" if (a <= b * bound if lower_better else a >= b * bound) else "OVER"
        print(f"{label:44s} " + " ".join(f"{fmt(v, digits):>11s}" for v in vals) + f" {ratio:>7s} {verdict}")

    def lat(phase: str, call: str, q: float) -> Callable[[Run], float | None]:
        return lambda r: percentile(r.latencies.get(phase, {}).get(call, []), q) * 1000

    print(f"\n{args.pods} pods (pause + busybox sleep), {args.inflight} in flight; "
          f"steady {args.steady:.0f}s, churn {args.churn:.0f}s at {args.rate}/s; {args.rounds} round(s)")
    print(f"{'':44s} " + " ".join(f"{n:>11s}" for n in names) + f" {'dy/cd':>7s}")
    print("-- ramp")
    row("time to all running (s)", lambda r: r.figures.get("ramp: time to all running (s)"), 2)
    for call in START_CALLS:
        row(f"{call} p50 (ms)", lat("ramp", call, 50), 1)
        row(f"{call} p99 (ms)", lat("ramp", call, 99), 1)
    print("-- steady state")
    row("daemon RSS at full node (MiB)", lambda r: r.figures.get("daemon RSS at full node (MiB)"), 1, bound=0.8)
    row("daemon RSS at end of steady (MiB)", lambda r: r.figures.get("daemon RSS at end (MiB)"), 1, bound=0.8)
    row("daemon peak RSS in steady (MiB)", lambda r: r.figures.get("daemon peak RSS in steady (MiB)"), 1, bound=0.8)
    row("shims PSS total (MiB)", lambda r: r.figures.get("shims PSS total (MiB)"), 1)
    row("daemon CPU (s)", lambda r: r.figures.get("steady: daemon CPU (s)"), 1)
    row("shims CPU (s)", lambda r: r.figures.get("steady: shims CPU (s)"), 1)
    row("daemon cgroup CPU, all it runs (s)", lambda r: r.figures.get("steady: daemon cgroup CPU (s)"), 1)
    row("  bench client CPU (s)", lambda r: r.figures.get("steady: bench client CPU (s)"), 1)
    row("  relists over 1 s", lambda r: r.figures.get("steady relists over 1 s", 0.0), 0)
    for call in POLLED:
        row(f"{call} p99 (ms)", lat("steady", call, 99), 1)
    print("-- churn")
    row("pods replaced per second", lambda r: r.figures.get("churn: replacements per second"), 2, lower_better=False)
    row("pod start p50 (ms)", lat("churn", "pod start", 50), 1)
    row("pod start p99 (ms)", lat("churn", "pod start", 99), 1)
    row("pod removal p99 (ms)", lat("churn", "pod removal", 99), 1)
    row("daemon cgroup CPU (s)", lambda r: r.figures.get("churn: daemon cgroup CPU (s)"), 1)
    row("  relists over 1 s", lambda r: r.figures.get("churn relists over 1 s", 0.0), 0)
    for call in POLLED:
        row(f"{call} p99 (ms)", lat("churn", call, 99), 1)
    print("-- teardown")
    row("time to remove all (s)", lambda r: r.figures.get("teardown: time (s)"), 2)
    for n in names:
        r = runs[n]
        print(f"{n}: errors {len(r.errors)}, status calls that raced a deletion {r.races}")
        for e in r.errors[:20]:
            print(f"    {e}")
        for when, counts in r.counts.items():
            print(f"    {when:15s} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        ramp_c, churn_c, down = (r.counts.get(k) for k in ("after ramp", "after churn", "after teardown"))
        if ramp_c and churn_c:
            grown = {k: churn_c[k] - ramp_c[k] for k in ramp_c if churn_c[k] != ramp_c[k]}
            print(f"    churn leaks: {grown or 'none'}")
        if down:
            left = {k: v for k, v in down.items() if v}
            print(f"    left after teardown (daemon running): {left or 'nothing'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=110)
    parser.add_argument("--inflight", type=int, default=10)
    parser.add_argument("--steady", type=float, default=300.0, help="seconds of steady state")
    parser.add_argument("--churn", type=float, default=120.0, help="seconds of churn")
    parser.add_argument("--rate", type=float, default=5.0, help="pods replaced per second during churn")
    parser.add_argument("--rounds", type=int, default=1, help="passes per daemon, alternating which goes first")
    parser.add_argument("--only", choices=("dockyardd", "containerd"), help="measure one daemon")
    parser.add_argument("--quick", action="store_true", help="40 pods, 30 s steady, 20 s churn")
    parser.add_argument("--keep-logs", type=Path, help="copy each daemon's log here before cleaning up")
    parser.add_argument("--no-setup", action="store_true", help="assume the registry runs and holds the images")
    args = parser.parse_args(argv)
    if args.quick:
        args.pods, args.steady, args.churn = 40, 30.0, 20.0
    base = podbench.prepare("density", args.no_setup)
    cgroup_base = f"/dydens-{secrets.token_hex(4)}"
    logs = base / "logs"
    sides = podbench.both_sides(base, "dydens", 211)
    if args.only:
        sides = [s for s in sides if s.name == args.only]
    for s in sides:
        s.pid_mode = podbench.PID_MODE["container"]
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs", flush=True)
    results: dict[str, list[Run]] = {s.name: [] for s in sides}
    left: dict[str, list[str]] = {}
    ok = True
    try:
        cgroups = {}
        for s in sides:
            podbench.start_side(s, cgroup_base)
            cgroups[s.name] = daemon_cgroup(cgroup_base, s)
        asyncio.run(all_rounds(sides, args, cgroup_base, logs, cgroups, results))
    except (grpc.RpcError, RuntimeError, OSError) as err:
        print(f"bench: aborted: {describe(err)}", file=sys.stderr)
        ok = False
    finally:
        podbench.stop_sides(sides)
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for s in sides:
                if s.daemon is not None and s.daemon.log.exists():
                    shutil.copy(s.daemon.log, args.keep_logs / f"{s.name}.log")
        left = leftovers(sides, cgroup_base, base)
        force_clean(sides, cgroup_base, base)
    print(f"load average at end: {os.getloadavg()[0]:.2f} (1 min)")
    runs = {name: merged(rs) for name, rs in results.items() if rs}
    if runs:
        print_report(runs, args)
    podbench.print_leftovers(left, "after both daemons stopped")
    # Errors fail the bench only for dockyardd: containerd 1.6's own (a
    # ListPodSandboxStats racing a deletion answers UNKNOWN) are reported above.
    failed = any(r.errors for name, r in runs.items() if name == "dockyardd") or any(
        v for r in runs.values() for v in r.counts.get("after teardown", {}).values())
    return 0 if ok and not failed and not left and runs else 1


if __name__ == "__main__":
    sys.exit(main())

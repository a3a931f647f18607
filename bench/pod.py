"""Pod lifecycle and shim memory benchmark: dockyardd against Debian's containerd 1.6 (CRI plugin).

Both daemons run side by side for the whole benchmark, driven by the same
Python gRPC client (cri_api.v1).  Each gets a copy of
deploy/cni/10-dockyard.conflist in its own conf dir, changed only where two
daemons on one host must differ: the network name (CNI result caches are
keyed by it), the bridge (dybench-dy0 / dybench-cd0) and a /24 of its own
inside 10.88.0.0/16, with host-local's dataDir in the daemon's work dir.
Pods get a kubelet-style cgroup_parent (/dybench-<hex>/<daemon>/pod<n>), so
both runtimes do the same cgroup work and the benchmark can remove the tree.
With ``--systemd-cgroup`` (a cgroup v2 host with systemd as PID 1: the test
guest, make bench-guest) both use the systemd cgroup driver (dockyardd's
cgroup_driver: systemd, containerd's SystemdCgroup = true) and the parents
are kubelet's systemd form, /dybench<hex>.slice/dybench<hex>-<daemon>.slice/
dybench<hex>-<daemon>-pod<n>.slice: every container a scope in its pod's slice.
Both daemons use restrict_oom_score_adj (root here lacks CAP_SYS_RESOURCE).
The busybox and pause images come from the local registry through the same
hosts.toml mirror directory and are pulled before any timing.

Part 1, lifecycle: ``--iterations`` rounds, alternating which daemon goes
first, of one pod with one busybox container (a shell that exits on SIGTERM,
so the stop measures the daemons, not a grace period).  Timed per call:
RunPodSandbox, CreateContainer, StartContainer, StopContainer+StopPodSandbox,
RemoveContainer+RemovePodSandbox, and the pod-to-running total (runp + create
+ start).  ``--warmup`` rounds per daemon run first and are not counted.

Part 2, memory: ``--pods`` pods of two containers each running on one daemon
at a time; the summed Pss (/proc/<pid>/smaps_rollup) of that daemon's shims
(dockyard-shim: the pids in <state>/shims/*/shim.pid; containerd-shim-runc-v2:
shims whose command line names this containerd's socket), per pod, and the
daemon's RSS.

A failed step is reported and its pod removed; the others still count.
Whatever happens, every pod is removed, both daemons stopped, and leftovers
(mounts, netns, container cgroups, shims, bridges, IPAM leases) are reported
and then removed.

    .venv/bin/python bench/pod.py [--iterations 20] [--pods 20] [--warmup 1] [--no-setup]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml
from cri_api.v1 import api_pb2, api_pb2_grpc

from daemons import (REPO, RunningDaemon, ensure_registry, peak_rss_kib, pids_with_cmdline, pss_kib, rss_kib,
                     start_containerd, start_dockyardd, stop, unmount_under)

CONFLIST = REPO / "deploy" / "cni" / "10-dockyard.conflist"
CGROUP_ROOT = Path("/sys/fs/cgroup")
BUSYBOX = "docker.io/library/busybox:latest"
PAUSE = "registry.k8s.io/pause:3.10"
CALL_TIMEOUT_S = 120.0
PULL_TIMEOUT_S = 300.0
STOP_GRACE_S = 10
# PID 1 of a pid namespace ignores SIGTERM without a handler; this one exits
# at once, so StopContainer never waits out the grace period.
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
STEPS = ("RunPodSandbox", "CreateContainer", "StartContainer", "Stop (ctr+pod)", "  StopContainer",
         "  StopPodSandbox", "Remove (ctr+pod)", "  RemoveContainer", "  RemovePodSandbox", "pod-to-running")


def side_conflist(name: str, bridge: str, subnet: str, ipam_dir: Path) -> dict[str, Any]:
    """The shared conflist with this daemon's network name, bridge, /24 and IPAM dir (pure)."""
    conf: dict[str, Any] = copy.deepcopy(json.loads(CONFLIST.read_text()))
    conf["name"] = name
    for plugin in conf["plugins"]:
        if plugin.get("type") == "bridge":
            plugin["bridge"] = bridge
            plugin["ipam"]["ranges"] = [[{"subnet": subnet}]]
            plugin["ipam"]["dataDir"] = str(ipam_dir)
    return conf


@dataclass
class Side:
    """One daemon under test and what was measured on it."""

    name: str
    work: Path
    bridge: str
    subnet: str
    daemon: RunningDaemon | None = None
    channel: grpc.Channel | None = None
    times: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    failures: list[str] = field(default_factory=list)
    netns_paths: set[str] = field(default_factory=set)
    memory: dict[str, float] = field(default_factory=dict)
    state_dir: Path | None = None
    pid_mode: api_pb2.NamespaceMode.ValueType = api_pb2.CONTAINER
    dockyardd_config: dict[str, Any] = field(default_factory=dict)  # --dockyardd-config

    @property
    def rt(self) -> api_pb2_grpc.RuntimeServiceStub:
        assert self.channel is not None
        return api_pb2_grpc.RuntimeServiceStub(self.channel)

    @property
    def ipam_dir(self) -> Path:
        return self.work / "ipam"

    def shim_pids(self, spares: bool = True) -> list[int]:
        """The daemon's live shims; for dockyardd with its idle spares
        (``shims/.spare-*``, config spare_shims) unless ``spares`` is False:
        they count in memory and CPU, not as a pod's."""
        assert self.daemon is not None
        if self.name == "dockyardd":
            assert self.state_dir is not None
            pids = []
            for pid_file in (self.state_dir / "shims").glob("*/shim.pid"):
                if not spares and pid_file.parent.name.startswith(".spare-"):
                    continue
                try:
                    pid = int(pid_file.read_text().strip())
                except (OSError, ValueError):
                    continue
                if Path(f"/proc/{pid}").exists():
                    pids.append(pid)
            return pids
        return pids_with_cmdline(str(self.daemon.socket).encode(), "containerd-shim")


def systemd_driver(cgroup_base: str) -> bool:
    return cgroup_base.endswith(".slice")


def pod_parent(cgroup_base: str, side: str, tag: str) -> str:
    """kubelet's cgroup_parent for a pod: a path, or with systemd nested slices (named so that they nest)."""
    if systemd_driver(cgroup_base):
        stem = cgroup_base.strip("/")[:-len(".slice")]
        return f"{cgroup_base}/{stem}-{side}.slice/{stem}-{side}-pod{tag}.slice"
    return f"{cgroup_base}/{side}/pod{tag}"


def start_side(side: Side, cgroup_base: str) -> None:
    side.work.mkdir(parents=True)
    conf_dir = side.work / "cni-conf"
    conf_dir.mkdir()
    conf = side_conflist(f"dybench-{side.name}", side.bridge, side.subnet, side.ipam_dir)
    (conf_dir / CONFLIST.name).write_text(json.dumps(conf, indent=2))
    if side.name == "dockyardd":
        side.state_dir = Path(tempfile.mkdtemp(prefix="dyb", dir="/tmp"))
        driver = ({"cgroup_driver": "systemd", "cgroup_parent": cgroup_base.strip("/")[:-len(".slice")] + "-own.slice"}
                  if systemd_driver(cgroup_base) else {"cgroup_parent": f"{cgroup_base}/dockyardd-own"})
        side.daemon = start_dockyardd(side.work, state_dir=side.state_dir, extra={
            "cni": {"conf_dir": str(conf_dir), "cache_dir": str(side.work / "cni-cache")},
            "restrict_oom_score_adj": True,
            **driver,
            **side.dockyardd_config,
        })
    else:
        side.daemon = start_containerd(side.work, cni_conf_dir=conf_dir, restrict_oom_score_adj=True,
                                       systemd_cgroup=systemd_driver(cgroup_base))
    side.channel = side.daemon.channel()
    images = api_pb2_grpc.ImageServiceStub(side.channel)
    for ref in (PAUSE, BUSYBOX):
        images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)), timeout=PULL_TIMEOUT_S)
    # CNI readiness is asynchronous in containerd (it watches the conf dir).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = side.rt.Status(api_pb2.StatusRequest(), timeout=10).status
        if all(c.status for c in status.conditions):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{side.name} not ready: {status}")


# The PID namespace mode of every pod and container; kubelet sends CONTAINER
# unless the pod sets shareProcessNamespace (CRI's zero value would be POD).
PID_MODE = {"container": api_pb2.CONTAINER, "pod": api_pb2.POD}


def pod_config(side: Side, tag: str, cgroup_base: str, logs: Path) -> api_pb2.PodSandboxConfig:
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=f"bench-{tag}", namespace="bench", uid=f"uid-{side.name}-{tag}"),
        hostname=f"bench-{tag}",
        log_directory=str(logs / side.name / tag),
        linux=api_pb2.LinuxPodSandboxConfig(
            cgroup_parent=pod_parent(cgroup_base, side.name, tag),
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(pid=side.pid_mode))),
    )


def container_config(name: str, pid_mode: api_pb2.NamespaceMode.ValueType) -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=BUSYBOX),
        command=SLEEPER,
        log_path=f"{name}.log",
        linux=api_pb2.LinuxContainerConfig(security_context=api_pb2.LinuxContainerSecurityContext(
            namespace_options=api_pb2.NamespaceOption(pid=pid_mode))),
    )


@contextmanager
def timed(out: dict[str, float], step: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    out[step] = out.get(step, 0.0) + time.perf_counter() - t0


def describe(err: BaseException) -> str:
    if isinstance(err, grpc.RpcError):
        return f"{err.code().name}: {err.details()}"  # type: ignore[attr-defined]
    return f"{type(err).__name__}: {err}"


def record_netns(side: Side, pod_id: str) -> None:
    """Remember the pod's netns path (from the verbose runtimeSpec) for the leftover check."""
    info = side.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True),
                                    timeout=CALL_TIMEOUT_S).info.get("info", "")
    try:
        spec = json.loads(info).get("runtimeSpec", {})
    except json.JSONDecodeError:
        return
    for ns in spec.get("linux", {}).get("namespaces", []):
        if ns.get("type") == "network" and ns.get("path", "").startswith(("/var/run/netns", "/run/netns", "/tmp")):
            side.netns_paths.add(ns["path"])


def remove_pod(side: Side, pod_id: str) -> None:
    side.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT_S)
    side.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT_S)


def lifecycle(side: Side, tag: str, cgroup_base: str, logs: Path) -> dict[str, float]:
    """One pod with one container from RunPodSandbox to RemovePodSandbox; seconds per step."""
    t: dict[str, float] = {}
    rt = side.rt
    pod = pod_config(side, tag, cgroup_base, logs)
    pod_id = ""
    try:
        with timed(t, "RunPodSandbox"):
            pod_id = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod), timeout=CALL_TIMEOUT_S).pod_sandbox_id
        with timed(t, "CreateContainer"):
            cid = rt.CreateContainer(api_pb2.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=container_config("busybox", side.pid_mode), sandbox_config=pod),
                timeout=CALL_TIMEOUT_S).container_id
        with timed(t, "StartContainer"):
            rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=CALL_TIMEOUT_S)
        t["pod-to-running"] = t["RunPodSandbox"] + t["CreateContainer"] + t["StartContainer"]
        state = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid),
                                   timeout=CALL_TIMEOUT_S).status.state
        if state != api_pb2.CONTAINER_RUNNING:
            raise RuntimeError(f"container {cid[:12]} is {api_pb2.ContainerState.Name(state)} after start")
        record_netns(side, pod_id)
        with timed(t, "  StopContainer"):
            rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=STOP_GRACE_S),
                             timeout=CALL_TIMEOUT_S)
        with timed(t, "  StopPodSandbox"):
            rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT_S)
        with timed(t, "  RemoveContainer"):
            rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=CALL_TIMEOUT_S)
        with timed(t, "  RemovePodSandbox"):
            rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT_S)
        t["Stop (ctr+pod)"] = t["  StopContainer"] + t["  StopPodSandbox"]
        t["Remove (ctr+pod)"] = t["  RemoveContainer"] + t["  RemovePodSandbox"]
        return t
    except (grpc.RpcError, RuntimeError) as err:
        if pod_id:
            try:
                remove_pod(side, pod_id)
            except grpc.RpcError as cleanup_err:
                raise RuntimeError(f"{describe(err)}; then removing the pod: {describe(cleanup_err)}") from err
        raise


def memory(side: Side, pods: int, cgroup_base: str, logs: Path) -> None:
    """``pods`` pods of two containers up at once; the shims' summed Pss and the daemon's RSS."""
    assert side.daemon is not None
    rt = side.rt
    ids: list[str] = []
    try:
        for n in range(pods):
            pod = pod_config(side, f"m{n}", cgroup_base, logs)
            try:
                pod_id = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod),
                                          timeout=CALL_TIMEOUT_S).pod_sandbox_id
                ids.append(pod_id)
                record_netns(side, pod_id)
                for c in ("one", "two"):
                    cid = rt.CreateContainer(api_pb2.CreateContainerRequest(
                        pod_sandbox_id=pod_id, config=container_config(c, side.pid_mode), sandbox_config=pod),
                        timeout=CALL_TIMEOUT_S).container_id
                    rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as err:
                side.failures.append(f"memory pod {n}: {describe(err)}")
        running = [c for c in rt.ListContainers(api_pb2.ListContainersRequest(), timeout=CALL_TIMEOUT_S).containers
                   if c.state == api_pb2.CONTAINER_RUNNING]
        time.sleep(3)  # let the shims' start-up garbage settle before reading Pss
        shims = side.shim_pids()
        side.memory = {
            "pods": len(ids), "running containers": len(running), "shim processes": len(shims),
            "shim Pss KiB": sum(pss_kib(p) for p in shims),
            "shim Rss KiB": sum(rss_kib(p) for p in shims),
            "daemon Rss KiB": rss_kib(side.daemon.proc.pid),
            "daemon Pss KiB": pss_kib(side.daemon.proc.pid),
            "daemon peak Rss KiB": peak_rss_kib(side.daemon.proc.pid),
        }
    finally:
        for pod_id in ids:
            try:
                remove_pod(side, pod_id)
            except grpc.RpcError as err:
                side.failures.append(f"memory: removing pod {pod_id[:12]}: {describe(err)}")


# --- cleanup and the leftover check ---

def remove_all_pods(side: Side) -> None:
    if side.channel is None or side.daemon is None or side.daemon.proc.poll() is not None:
        return
    try:
        items = side.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=CALL_TIMEOUT_S).items
    except grpc.RpcError as err:
        side.failures.append(f"cleanup: ListPodSandbox: {describe(err)}")
        return
    for item in items:
        try:
            remove_pod(side, item.id)
        except grpc.RpcError as err:
            side.failures.append(f"cleanup: removing pod {item.id[:12]}: {describe(err)}")


def prepare(script: str, no_setup: bool) -> Path:
    """What every run of bench/<script>.py needs first: root, the local registry
    (unless told it runs), and a fresh work dir."""
    if os.geteuid() != 0:
        raise SystemExit(f"bench/{script}.py needs root (namespaces, mounts, cgroups, bridges)")
    if not no_setup:
        ensure_registry()
    return Path(tempfile.mkdtemp(prefix=f"dockyard-bench-{script}-"))


def both_sides(base: Path, tag: str, net: int) -> list[Side]:
    """dockyardd's side and, when it is installed, containerd's: bridges <tag>-dy0 and
    <tag>-cd0, pod subnets 10.88.<net>.0/24 and 10.88.<net + 1>.0/24."""
    sides = [Side("dockyardd", base / "dockyardd", f"{tag}-dy0", f"10.88.{net}.0/24"),
             Side("containerd", base / "containerd", f"{tag}-cd0", f"10.88.{net + 1}.0/24")]
    if shutil.which("containerd") is None:
        print("bench: containerd not installed; measuring dockyardd only")
        sides = sides[:1]
    return sides


def stop_sides(sides: list[Side]) -> None:
    """Every pod removed, every daemon stopped (then a second for their shims to go)."""
    for s in sides:
        remove_all_pods(s)
        if s.channel is not None:
            s.channel.close()
        if s.daemon is not None:
            stop(s.daemon.proc)
    time.sleep(1)


CHECKED = "mounts, netns, container cgroups, shims, veths, IPAM leases checked"


def print_leftovers(left: dict[str, list[str]], when: str = "", tracked: str = "") -> None:
    """What leftovers() found (force_clean removed it since), or that it found nothing."""
    when = f" {when}" if when else ""
    if left:
        print(f"LEFT BEHIND{when} (now removed):")
        for kind, items in left.items():
            print(f"    {kind}: {len(items)}: {', '.join(items[:5])}{' ...' if len(items) > 5 else ''}")
    else:
        print(f"nothing left behind{when} ({tracked}{CHECKED})")


def cgroup_dirs(cgroup_base: str) -> list[Path]:
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # cgroup v2 only: one hierarchy, at the root
        top = CGROUP_ROOT / cgroup_base.strip("/")
        return [top] if top.is_dir() else []
    return [h / cgroup_base.strip("/") for h in CGROUP_ROOT.iterdir() if (h / cgroup_base.strip("/")).is_dir()]


def leftovers(sides: list[Side], cgroup_base: str, base: Path) -> dict[str, list[str]]:
    """What the daemons left behind after all pods were removed and both stopped."""
    found: dict[str, list[str]] = {}
    markers = [str(base.resolve())] + [str(s.state_dir) for s in sides if s.state_dir]
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if any(line.split()[4].startswith(m + "/") for m in markers)]
    if mounts:
        found["mounts"] = mounts
    netns = [p for s in sides for p in s.netns_paths if os.path.lexists(p)]
    for s in sides:
        if s.state_dir and (s.state_dir / "netns").is_dir():
            netns += [str(p) for p in (s.state_dir / "netns").iterdir() if str(p) not in netns]
    if netns:
        found["netns"] = netns
    # The pod<n> directories are kubelet-style parents (ours to remove); a
    # directory below one is a container cgroup the runtime should have removed.
    containers = [str(d) for top in cgroup_dirs(cgroup_base) for d in top.glob("*/*/*") if d.is_dir()]
    if containers:
        found["container cgroups"] = containers
    procs = []
    for s in sides:
        if s.daemon is not None:
            procs += [f"{s.name} shim {pid}" for pid in s.shim_pids()]
    if procs:
        found["shims"] = procs
    veths = []
    for s in sides:
        out = subprocess.run(["ip", "-o", "link", "show", "master", s.bridge], capture_output=True, text=True)
        veths += [line.split(":")[1].strip() for line in out.stdout.splitlines()]
    if veths:
        found["veths on bench bridges"] = veths
    leases = [f"{s.name} {p.name}" for s in sides if (s.ipam_dir).is_dir()
              for p in s.ipam_dir.rglob("*") if p.is_file() and p.name[0].isdigit()]
    if leases:
        found["IPAM leases"] = leases
    return found


def force_clean(sides: list[Side], cgroup_base: str, base: Path) -> None:
    for s in sides:
        if s.daemon is not None:
            for pid in s.shim_pids():
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
    for s in sides:
        for path in s.netns_paths:
            if os.path.lexists(path):
                subprocess.run(["umount", "-l", path], check=False, capture_output=True)
                Path(path).unlink(missing_ok=True)
    unmount_under(base)
    for s in sides:
        if s.state_dir:
            unmount_under(s.state_dir)
            shutil.rmtree(s.state_dir, ignore_errors=True)
    if systemd_driver(cgroup_base):  # the slices are units: systemd removes their cgroups
        subprocess.run(["systemctl", "stop", cgroup_base.strip("/")], check=False, capture_output=True)
    for top in cgroup_dirs(cgroup_base):
        for current, _, _ in sorted(os.walk(top, topdown=False), key=lambda w: -len(w[0])):
            try:
                os.rmdir(current)
            except OSError as err:
                print(f"bench: cannot remove cgroup {current}: {err.strerror}", file=sys.stderr)
    for s in sides:
        subprocess.run(["ip", "link", "del", s.bridge], check=False, capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


# --- report ---

def print_tables(sides: list[Side], iterations: int) -> None:
    by = {s.name: s for s in sides}
    print(f"\nmedian seconds over {iterations} alternating iterations (1 pod, 1 busybox container)")
    print(f"{'step':22s} {'dockyardd':>10s} {'containerd':>11s} {'ratio dy/cd':>12s}")
    for step in STEPS:
        med = {n: statistics.median(s.times[step]) if s.times[step] else None for n, s in by.items()}
        dy, cd = med.get("dockyardd"), med.get("containerd")
        ratio = f"{dy / cd:.2f}" if dy is not None and cd else "-"
        print(f"{step:22s} {_sec(dy):>10s} {_sec(cd):>11s} {ratio:>12s}")
    counts = ", ".join(f"{s.name} {len(s.times['pod-to-running'])}" for s in sides)
    print(f"successful iterations: {counts}")
    if any(s.memory for s in sides):
        pods = {s.name: int(s.memory.get("pods", 0)) or 1 for s in sides}
        print(f"\nmemory with {max(pods.values())} pods x 2 containers running (one daemon at a time)")
        print(f"{'':28s} {'dockyardd':>12s} {'containerd':>12s} {'ratio dy/cd':>12s}")
        rows: list[tuple[str, Callable[[Side], float], bool]] = [
            ("pods / running containers", lambda s: s.memory.get("pods", 0), False),
            ("shim processes", lambda s: s.memory.get("shim processes", 0), False),
            ("summed shim Pss (MiB)", lambda s: s.memory.get("shim Pss KiB", 0) / 1024, True),
            ("shim Pss per pod (MiB)", lambda s: s.memory.get("shim Pss KiB", 0) / 1024 / pods[s.name], True),
            ("shim Rss per pod (MiB)", lambda s: s.memory.get("shim Rss KiB", 0) / 1024 / pods[s.name], True),
            ("daemon Rss (MiB)", lambda s: s.memory.get("daemon Rss KiB", 0) / 1024, True),
            ("daemon Pss (MiB)", lambda s: s.memory.get("daemon Pss KiB", 0) / 1024, True),
            ("daemon peak Rss (MiB)", lambda s: s.memory.get("daemon peak Rss KiB", 0) / 1024, True),
        ]
        for label, get, ratio_row in rows:
            vals = {n: get(s) for n, s in by.items()}
            dy, cd = vals.get("dockyardd", 0.0), vals.get("containerd", 0.0)
            ratio = f"{dy / cd:.2f}" if ratio_row and cd else ""
            if label.startswith("pods"):
                cells = [f"{int(s.memory.get('pods', 0))}/{int(s.memory.get('running containers', 0))}"
                         for s in (by.get("dockyardd"), by.get("containerd")) if s]
            else:
                cells = [f"{v:.1f}" if ratio_row else f"{int(v)}" for v in (dy, cd)]
            print(f"{label:28s} " + " ".join(f"{c:>12s}" for c in cells) + f" {ratio:>12s}")
    for s in sides:
        print(f"{s.name} failures: {len(s.failures)}")
        for failure in s.failures:
            print(f"    {failure}")


def _sec(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1, help="uncounted lifecycle rounds per daemon first")
    parser.add_argument("--pid-namespace", choices=sorted(PID_MODE), default="container",
                        help="each container's own PID namespace (kubelet's default) or the pod's shared one")
    parser.add_argument("--no-setup", action="store_true", help="assume the registry runs and holds the images")
    parser.add_argument("--systemd-cgroup", action="store_true",
                        help="both daemons with the systemd cgroup driver (a cgroup v2 host with systemd as PID 1)")
    parser.add_argument("--dockyardd-config", default="{}", metavar="YAML",
                        help="more dockyardd config, a YAML mapping (e.g. '{spare_shims: 0}' to compare a setting)")
    args = parser.parse_args(argv)
    extra_config = yaml.safe_load(args.dockyardd_config)
    if not isinstance(extra_config, dict):
        parser.error("--dockyardd-config: expected a YAML mapping")
    base = prepare("pod", args.no_setup)
    cgroup_base = f"/dybench{secrets.token_hex(4)}.slice" if args.systemd_cgroup else f"/dybench-{secrets.token_hex(4)}"
    logs = base / "logs"
    sides = both_sides(base, "dybench", 201)
    for s in sides:
        s.pid_mode = PID_MODE[args.pid_namespace]
        s.dockyardd_config = extra_config
    left: dict[str, list[str]] = {}
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs; "
          f"PID namespace per {args.pid_namespace}" + (f"; dockyardd config {extra_config}" if extra_config else ""))
    try:
        for s in sides:
            start_side(s, cgroup_base)
        for n in range(args.warmup):
            for s in sides:
                try:
                    lifecycle(s, f"w{n}", cgroup_base, logs)
                except (grpc.RpcError, RuntimeError) as err:
                    s.failures.append(f"warmup {n}: {describe(err)}")
        for n in range(args.iterations):
            order = sides if n % 2 == 0 else list(reversed(sides))
            line = []
            for s in order:
                try:
                    t = lifecycle(s, str(n), cgroup_base, logs)
                    for step, secs in t.items():
                        s.times[step].append(secs)
                    line.append(f"{s.name} {t['pod-to-running']:.3f}s")
                except (grpc.RpcError, RuntimeError) as err:
                    s.failures.append(f"iteration {n}: {describe(err)}")
                    line.append(f"{s.name} FAILED")
            print(f"  iteration {n:2d}: " + ", ".join(line), flush=True)
        for s in sides:
            print(f"memory: {args.pods} pods x 2 containers on {s.name}", flush=True)
            memory(s, args.pods, cgroup_base, logs)
    except (grpc.RpcError, RuntimeError, OSError) as err:
        print(f"bench: aborted: {describe(err)}", file=sys.stderr)
        sides[0].failures.append(f"aborted: {describe(err)}")
    finally:
        stop_sides(sides)
        left = leftovers(sides, cgroup_base, base)
        force_clean(sides, cgroup_base, base)
    print(f"load average at end: {os.getloadavg()[0]:.2f} (1 min)")
    print_tables(sides, args.iterations)
    tracked = sum(len(s.netns_paths) for s in sides)
    print_leftovers(left, tracked=f"{tracked} containerd/dockyardd netns paths tracked; ")
    ok = all(s.times["pod-to-running"] for s in sides) and not any(s.failures for s in sides) and not left
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

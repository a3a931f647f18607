"""A real kubelet (standalone, static pods) on the CRI server under test.

The kubelet (hack/install-kubelet.sh, v1.37) runs with no API server: a
KubeletConfiguration with staticPodPath, containerRuntimeEndpoint = the
server's socket, the cgroupfs driver, and its own root dir, pod log dir,
ports and cgroup root. Each scenario drops a manifest into the static pod dir
and reads the outcome through CRI (pods, containers, exec) and the files the
kubelet and runtime make (log symlinks, cgroups).

Facts about this setup:
- A static pod's name is "<metadata.name>-<node name>"; the node name is
  --hostname-override. All pods here live in namespace NS, so leftovers are
  recognisable in CRI labels and in /var/log/containers (a fixed kubelet path).
- This host is cgroup v1: kubelet >= 1.35 refuses it unless the config sets
  failCgroupV1: false. cgroupsPerQOS puts pods under <cgroupRoot>/kubepods/...
  and the kubelet insists that cgroupRoot exists in every hierarchy; the
  fixture creates it (cpuset needs cpus/mems copied from the parent) and
  removes the whole tree afterwards.
- Root lacks CAP_SYS_RESOURCE: the kubelet's own oomScoreAdj (-999 by default)
  cannot be applied, so the config sets 0. Pods here are BestEffort or
  Burstable, whose oom_score_adj values are positive.
- The kubelet makes its root dir an rshared bind mount of itself; the fixture
  unmounts everything under its temp dir.
- The kubelet stops a pod soon after its manifest disappears, but removes the
  stopped sandbox only in container GC, which runs once a minute.
- Every scenario runs twice: with the generic PLEG (the default), and with the
  EventedPLEG feature gate, under which the kubelet also reads the runtime's
  GetContainerEvents stream and relists a pod at once when one of its
  containers stops (pkg/kubelet/pleg/evented.go; 1.37 drops an event whose
  sandbox status lacks metadata). That variant logs at -v=4, where the
  kubelet names each such relist.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from cri_api.v1 import api_pb2
from e2e_endpoint import BUILD, SUBREAPER, CRIEndpoint, remove_cgroup_tree, unmount_under

pytestmark = pytest.mark.root

KUBELET = BUILD / "bin" / "kubelet"
NODE = "e2e-node"
NS = "dockyard-e2e"
IMAGE = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
CGROUP_ROOT_NAME = "dockyard-e2e-kubelet"
CGROUP_FS = Path("/sys/fs/cgroup")
CONTAINER_LOGS = Path("/var/log/containers")
START_TIMEOUT_S = 60.0
POD_TIMEOUT_S = 120.0
# Container GC runs every minute; allow two rounds plus the stop.
GC_TIMEOUT_S = 180.0

# klog error lines ("E<mmdd> <time> <pid> <file>:<line>] <msg>") that show a
# CRI call failing: the CRI client's own files, anything carrying a gRPC
# status, and the image GC / eviction / stats paths that call ImageFsInfo and
# the stats RPCs.
CRI_ERROR = re.compile(
    r"^E\d{4} .*?\] .*?(rpc error|code = )"
    r"|^E\d{4} \S+\s+\d+ (remote_runtime|remote_image|instrumented_services|image_gc_manager"
    r"|eviction_manager|cri_stats_provider|log_stats_provider)\.go:"
)
# Error lines that match CRI_ERROR but are no runtime's failure, each with why
# (all seen against containerd 1.6 too):
NOT_RUNTIME_FAULTS = {
    # The kubelet cancelled its own call (its context ended); the runtime did
    # not fail it.
    "kubelet-cancelled call": re.compile(r"code = Canceled desc = context canceled"),
    # PLEG and the pod workers ask for the status of a container that the
    # kubelet's own container GC has just removed; NotFound is the correct
    # CRI answer. (A live container answering NotFound would fail the
    # scenario that owns it.)
    "status of a container the kubelet removed": re.compile(
        r'"ContainerStatus from runtime service failed" err="rpc error: code = NotFound'),
    # The same, from kubelet's container GC: it works from a listing taken
    # before the pod worker removed a dead container, and its removal begins
    # with ContainerStatus (for the log path), which answers NotFound.
    "GC of a container the kubelet removed": re.compile(
        r'"Failed to remove container" err="failed to get container status .*code = NotFound'),
    # The eviction manager asks cAdvisor (not the runtime) for a filesystem
    # label, and cAdvisor knows one only for CRI-O (pkg/kubelet/cadvisor/
    # helpers_linux.go); no CRI call is involved.
    "cAdvisor imagefs label": re.compile(r"no imagefs label for configured runtime"),
    # test_checkpoint_through_the_kubelet_api on this VM: Debian 12's CRIU 3.17 cannot dump on
    # kernels from 6.13 on, and the runtime reports exactly that (the test asserts it).
    "CRIU 3.17 on a newer kernel": re.compile(r"CheckpointContainer.*criu exited.*vDSO area bounds"),
}


def cri_errors(log: str) -> list[str]:
    """The kubelet log's lines that report a failed CRI call, minus NOT_RUNTIME_FAULTS."""
    return [line for line in log.splitlines()
            if CRI_ERROR.search(line) and not any(p.search(line) for p in NOT_RUNTIME_FAULTS.values())]


T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- cgroup root -----------------------------------------------------------------


def v1_hierarchies() -> list[Path]:
    """Mount points of the cgroup v1 hierarchies (one per controller set, plus name=systemd)."""
    with open("/proc/self/mountinfo") as f:
        return sorted({Path(line.split()[4]) for line in f if " - cgroup " in line})


def make_cgroup_root() -> None:
    for h in v1_hierarchies():
        d = h / CGROUP_ROOT_NAME
        d.mkdir(exist_ok=True)
        # A new cpuset cgroup starts with no cpus and no mems: nothing could join it.
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (h / knob).exists() and not (d / knob).read_text().strip():
                (d / knob).write_text((h / knob).read_text())


def remove_cgroup_root() -> list[str]:
    """rmdir the cgroup root tree, deepest first; returns the dirs that would not go."""
    return remove_cgroup_tree(CGROUP_ROOT_NAME)


# --- the kubelet -------------------------------------------------------------------


@dataclass
class Kubelet:
    endpoint: CRIEndpoint
    tmp: Path
    manifests: Path
    log: Path
    healthz_port: int
    read_only_port: int
    evented_pleg: bool
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0  # the kubelet's API (HTTPS, anonymous, AlwaysAllow)

    def pod_name(self, name: str) -> str:
        return f"{name}-{NODE}"

    def add(self, name: str, spec: dict[str, Any], uid: str = "") -> None:
        """Write a static pod manifest (JSON is YAML) named ``name`` in namespace NS; with ``uid`` the
        pod keeps that uid when the manifest changes (else the kubelet hashes the manifest into one)."""
        metadata = {"name": name, "namespace": NS, **({"uid": uid} if uid else {})}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
        tmp = self.manifests / f".{name}.tmp"
        tmp.write_text(json.dumps(pod))
        # The kubelet skips dot files; the rename makes the manifest appear whole.
        tmp.rename(self.manifests / f"{name}.json")

    def remove(self, name: str) -> None:
        (self.manifests / f"{name}.json").unlink(missing_ok=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def metrics(self) -> dict[str, float]:
        """The kubelet's own Prometheus samples (read-only port), by name with labels."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.read_only_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.healthz_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False


PLEG_VARIANTS = {"generic-pleg": {}, "evented-pleg": {"EventedPLEG": True}}


def write_kubelet_config(tmp: Path, endpoint: CRIEndpoint, manifests: Path, healthz: int,
                         **extra: Any) -> tuple[Path, dict[str, Any]]:
    """The KubeletConfiguration of a standalone kubelet (static pods, no API
    server, anonymous access on loopback) on ``endpoint``, with ``extra``
    keys; written to tmp/kubelet-config.json. Used by this module's fixture
    and the guest's systemd one."""
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "staticPodPath": str(manifests),
        "fileCheckFrequency": "1s",
        "syncFrequency": "5s",
        "containerRuntimeEndpoint": endpoint.url,
        "imageServiceEndpoint": endpoint.url,
        "runtimeRequestTimeout": "2m",
        "failSwapOn": False,
        "registerNode": False,
        "address": "127.0.0.1",
        "port": free_port(),
        "readOnlyPort": free_port(),
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "podLogsDir": str(tmp / "pod-logs"),
        # A test machine's disk (the guest's: a tmpfs overlay) would trip the
        # disk-pressure thresholds and evict the test's pods.
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "shutdownGracePeriod": "0s",
        **extra,
    }
    config_file = tmp / "kubelet-config.json"
    config_file.write_text(json.dumps(config, indent=2))
    return config_file, config


def kubelet_argv(config_file: Path, tmp: Path, verbosity: str = "--v=2") -> list[str]:
    return [str(KUBELET), "--config", str(config_file), "--root-dir", str(tmp / "root"),
            "--cert-dir", str(tmp / "pki"), "--hostname-override", NODE, "--node-ip", "127.0.0.1", verbosity]


@contextlib.contextmanager
def running_kubelet(k: Kubelet, argv: list[str], start_timeout_s: float) -> Iterator[None]:
    """Start kubelet ``argv`` as ``k.proc`` (owned by the test subreaper), wait
    until it is healthy, and at the end remove its static pods, wait for their
    pods to go and stop it."""
    with open(k.log, "ab") as log, SUBREAPER._lock:
        k.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=k.tmp)
        SUBREAPER._owned.add(k.proc.pid)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not k.healthy():
            if k.proc.poll() is not None:
                pytest.fail(f"kubelet exited {k.proc.returncode}:\n{k.log_text()[-6000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"kubelet not healthy after {start_timeout_s:.0f}s:\n{k.log_text()[-6000:]}")
            time.sleep(0.5)
        yield
    finally:
        for manifest in k.manifests.glob("*.json"):
            manifest.unlink()
        _wait_no_pods(k.endpoint, GC_TIMEOUT_S, k)
        k.proc.send_signal(signal.SIGTERM)
        try:
            k.proc.wait(30)
        except subprocess.TimeoutExpired:
            k.proc.kill()
            k.proc.wait()
        with SUBREAPER._lock:
            SUBREAPER._owned.discard(k.proc.pid)


@pytest.fixture(scope="module", params=sorted(PLEG_VARIANTS))
def kubelet(cri_endpoint: CRIEndpoint, tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[Kubelet]:
    gates = PLEG_VARIANTS[request.param]
    if not KUBELET.exists():
        pytest.fail(f"{KUBELET} missing: run hack/install-kubelet.sh (make kubelet)")
    tmp = tmp_path_factory.mktemp("kubelet")
    manifests = tmp / "manifests"
    manifests.mkdir()
    healthz = free_port()
    config_file, config = write_kubelet_config(
        tmp, cri_endpoint, manifests, healthz,
        cgroupDriver="cgroupfs", cgroupsPerQOS=True, cgroupRoot=f"/{CGROUP_ROOT_NAME}", failCgroupV1=False,
        oomScoreAdj=0, featureGates=gates,
    )
    argv = kubelet_argv(config_file, tmp, "--v=4" if gates else "--v=2")
    make_cgroup_root()
    k = Kubelet(cri_endpoint, tmp, manifests, tmp / "kubelet.log", healthz, config["readOnlyPort"], bool(gates),
                port=config["port"])
    try:
        with running_kubelet(k, argv, START_TIMEOUT_S):
            yield k
    finally:
        _remove_leftover_pods(cri_endpoint)
        unmount_under(tmp)
        for link in CONTAINER_LOGS.glob(f"*_{NS}_*.log"):
            link.unlink(missing_ok=True)
        stuck = remove_cgroup_root()
        assert not stuck, f"cgroups left under /{CGROUP_ROOT_NAME}: {stuck}"


def _our_pods(ep: CRIEndpoint, pod: str | None = None) -> list[api_pb2.PodSandbox]:
    labels = {"io.kubernetes.pod.namespace": NS}
    if pod is not None:
        labels["io.kubernetes.pod.name"] = pod
    with ep.channel() as ch:
        req = api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(label_selector=labels))
        return list(ep.runtime(ch).ListPodSandbox(req, timeout=30).items)


def _wait_no_pods(ep: CRIEndpoint, timeout: float, k: Kubelet) -> None:
    deadline = time.monotonic() + timeout
    while _our_pods(ep) and time.monotonic() < deadline and k.proc is not None and k.proc.poll() is None:
        time.sleep(1)


def _remove_leftover_pods(ep: CRIEndpoint) -> None:
    with ep.channel() as ch:
        rt = ep.runtime(ch)
        for pod in _our_pods(ep):
            rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id), timeout=60)
            rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=60)


# --- CRI views -------------------------------------------------------------------


def containers(ep: CRIEndpoint, pod: str, name: str | None = None) -> list[api_pb2.Container]:
    labels = {"io.kubernetes.pod.namespace": NS, "io.kubernetes.pod.name": pod}
    if name is not None:
        labels["io.kubernetes.container.name"] = name
    with ep.channel() as ch:
        req = api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(label_selector=labels))
        found = list(ep.runtime(ch).ListContainers(req, timeout=30).containers)
    return sorted(found, key=lambda c: c.metadata.attempt)


def running(ep: CRIEndpoint, pod: str, name: str) -> api_pb2.Container | None:
    live = [c for c in containers(ep, pod, name) if c.state == api_pb2.CONTAINER_RUNNING]
    return live[-1] if live else None


def status(ep: CRIEndpoint, container_id: str) -> api_pb2.ContainerStatus:
    with ep.channel() as ch:
        req = api_pb2.ContainerStatusRequest(container_id=container_id)
        return ep.runtime(ch).ContainerStatus(req, timeout=30).status


def exec_sync(ep: CRIEndpoint, container_id: str, *cmd: str) -> str:
    with ep.channel() as ch:
        req = api_pb2.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=30)
        resp = ep.runtime(ch).ExecSync(req, timeout=60)
    assert resp.exit_code == 0, f"{cmd} exited {resp.exit_code}: {resp.stderr.decode(errors='replace')}"
    return resp.stdout.decode()


def container_spec(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script], **extra}


def pod_spec(*containers_: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"containers": list(containers_), "terminationGracePeriodSeconds": 2, **extra}


@pytest.fixture
def static_pod(kubelet: Kubelet) -> Iterator[Callable[[str, dict[str, Any]], str]]:
    """Add static pods; each is removed after the test, which waits until its sandbox is stopped."""
    added: list[str] = []

    def add(name: str, spec: dict[str, Any], uid: str = "") -> str:
        kubelet.add(name, spec, uid)
        added.append(name)
        return kubelet.pod_name(name)

    yield add
    for name in added:
        kubelet.remove(name)
    for name in added:
        pod = kubelet.pod_name(name)
        wait_for(f"pod {name} to stop after its manifest went away",
                 lambda pod=pod: all(p.state == api_pb2.SANDBOX_NOTREADY for p in _our_pods(kubelet.endpoint, pod)),
                 POD_TIMEOUT_S)


# --- scenarios -----------------------------------------------------------------------


def test_busybox_log_through_kubelet_symlink(kubelet: Kubelet, static_pod: Callable[[str, dict[str, Any]], str]) -> None:
    """A container's stdout reaches the kubelet's /var/log/containers symlink in CRI log format."""
    ep = kubelet.endpoint
    pod = static_pod("log-echo", pod_spec(container_spec("echo", "echo dockyard-e2e-hello; sleep 3600")))
    c = wait_for("the echo container to run", lambda: running(ep, pod, "echo"), POD_TIMEOUT_S)
    link = CONTAINER_LOGS / f"{pod}_{NS}_echo-{c.id}.log"
    wait_for(f"kubelet's log symlink {link}", lambda: link.is_symlink(), POD_TIMEOUT_S)
    assert Path(os.readlink(link)).resolve() == Path(status(ep, c.id).log_path).resolve()
    line = wait_for("the echo line in the log",
                    lambda: next((ln for ln in link.read_text().splitlines() if ln.endswith("dockyard-e2e-hello")), None),
                    POD_TIMEOUT_S)
    assert re.fullmatch(r"\S+ stdout F dockyard-e2e-hello", line), line


def test_init_container_and_two_apps_share_empty_dir(kubelet: Kubelet, static_pod: Callable[[str, dict[str, Any]], str]) -> None:
    """The init container runs to completion first; both app containers then see its file and each other's in one emptyDir."""
    ep = kubelet.endpoint
    mount = [{"name": "shared", "mountPath": "/shared"}]
    pod = static_pod("shared-dir", pod_spec(
        container_spec("writer", "echo from-writer > /shared/writer; sleep 3600", volumeMounts=mount),
        container_spec("reader", "while [ ! -f /shared/writer ]; do sleep 0.2; done; cat /shared/init /shared/writer; sleep 3600",
                       volumeMounts=mount),
        initContainers=[container_spec("init", "echo init-ran > /shared/init", volumeMounts=mount)],
        volumes=[{"name": "shared", "emptyDir": {}}],
    ))
    writer = wait_for("the writer to run", lambda: running(ep, pod, "writer"), POD_TIMEOUT_S)
    reader = wait_for("the reader to run", lambda: running(ep, pod, "reader"), POD_TIMEOUT_S)
    (init,) = containers(ep, pod, "init")
    init_status = status(ep, init.id)
    assert init_status.state == api_pb2.CONTAINER_EXITED and init_status.exit_code == 0
    assert init_status.finished_at <= status(ep, writer.id).started_at
    assert writer.pod_sandbox_id == reader.pod_sandbox_id == init.pod_sandbox_id
    reader_log = Path(status(ep, reader.id).log_path)
    wait_for("the reader's output", lambda: "from-writer" in reader_log.read_text(), POD_TIMEOUT_S)
    lines = [ln.split(" ", 3)[3] for ln in reader_log.read_text().splitlines()]
    assert lines[:2] == ["init-ran", "from-writer"], lines
    assert exec_sync(ep, writer.id, "cat", "/shared/init") == "init-ran\n"


def test_failing_exec_liveness_probe_restarts_container(kubelet: Kubelet, static_pod: Callable[[str, dict[str, Any]], str]) -> None:
    """An exec liveness probe that starts failing makes the kubelet kill and restart the container (restartCount in CRI grows)."""
    ep = kubelet.endpoint
    probe = {"exec": {"command": ["cat", "/tmp/healthy"]}, "initialDelaySeconds": 1, "periodSeconds": 1,
             "failureThreshold": 1, "timeoutSeconds": 5}
    pod = static_pod("liveness", pod_spec(container_spec(
        "probed", "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600", livenessProbe=probe)))
    first = wait_for("the probed container to run", lambda: running(ep, pod, "probed"), POD_TIMEOUT_S)
    restarted = wait_for("a restarted probed container",
                         lambda: next((c for c in containers(ep, pod, "probed")
                                       if c.metadata.attempt >= 1 and c.state == api_pb2.CONTAINER_RUNNING), None),
                         POD_TIMEOUT_S)
    assert restarted.id != first.id
    assert int(status(ep, restarted.id).annotations["io.kubernetes.container.restartCount"]) >= 1
    assert status(ep, first.id).state == api_pb2.CONTAINER_EXITED
    assert "Liveness probe" in kubelet.log_text() or "liveness" in kubelet.log_text().lower()


def test_resource_limits_in_container_cgroup(kubelet: Kubelet, static_pod: Callable[[str, dict[str, Any]], str]) -> None:
    """CPU and memory limits of a Burstable pod land in the container's cgroup, under the kubelet's cgroup root."""
    ep = kubelet.endpoint
    resources = {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "250m", "memory": "64Mi"}}
    pod = static_pod("limits", pod_spec(container_spec("limited", "sleep 3600", resources=resources)))
    c = wait_for("the limited container to run", lambda: running(ep, pod, "limited"), POD_TIMEOUT_S)
    paths = dict(line.split(":", 2)[1:] for line in exec_sync(ep, c.id, "cat", "/proc/self/cgroup").splitlines())
    memory_path, cpu_path = paths["memory"], paths.get("cpu") or paths["cpu,cpuacct"]
    assert memory_path.startswith(f"/{CGROUP_ROOT_NAME}/kubepods/burstable/pod"), memory_path
    host_memory = CGROUP_FS / "memory" / memory_path.lstrip("/")
    host_cpu = next(p for p in (CGROUP_FS / "cpu" / cpu_path.lstrip("/"), CGROUP_FS / "cpu,cpuacct" / cpu_path.lstrip("/"))
                    if p.exists())
    assert (host_memory / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
    assert (host_cpu / "cpu.cfs_quota_us").read_text().strip() == "25000"
    assert (host_cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert (host_cpu / "cpu.shares").read_text().strip() == "102"
    # The container sees the same limit through its own cgroup mount.
    assert exec_sync(ep, c.id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").strip() == str(64 << 20)


def test_removed_manifest_stops_pod_and_runtime_forgets_it(kubelet: Kubelet) -> None:
    """Removing a static pod's manifest makes the kubelet stop the pod and, after container GC, the runtime holds nothing for it."""
    ep = kubelet.endpoint
    kubelet.add("removed", pod_spec(container_spec("sleeper", "sleep 3600")))
    pod = kubelet.pod_name("removed")
    c = wait_for("the sleeper to run", lambda: running(ep, pod, "sleeper"), POD_TIMEOUT_S)
    (sandbox,) = _our_pods(ep, pod)
    kubelet.remove("removed")
    wait_for("the pod to stop", lambda: all(p.state == api_pb2.SANDBOX_NOTREADY for p in _our_pods(ep, pod)), POD_TIMEOUT_S)
    wait_for("the runtime to forget the pod", lambda: not _our_pods(ep, pod) and not containers(ep, pod), GC_TIMEOUT_S, 2)
    with ep.channel() as ch, pytest.raises(grpc.RpcError) as err:
        ep.runtime(ch).ContainerStatus(api_pb2.ContainerStatusRequest(container_id=c.id), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert not list(CONTAINER_LOGS.glob(f"{pod}_{NS}_*.log"))
    if ep.state_dir is not None:
        assert not (ep.state_dir / "shims" / sandbox.id).exists(), "dockyardd kept the pod's shim dir"


def test_in_place_resize_of_a_static_pod(kubelet: Kubelet, static_pod: Callable[[str, dict[str, Any]], str]) -> None:
    """In-place resize without an API server: a static pod that names its own metadata.uid keeps it when
    its manifest changes, so new CPU and memory limits reach the kubelet as a resize of the running
    pod (the same container, not restarted): the kubelet calls UpdatePodSandboxResources and
    UpdateContainerResources, and the new values show in the container's cgroup files and in
    ContainerStatus.resources."""
    ep = kubelet.endpoint

    def spec(cpu: str, memory: str) -> dict[str, Any]:
        resources = {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": cpu, "memory": memory}}
        return pod_spec(container_spec("resized", "sleep 3600", resources=resources,
                                       resizePolicy=[{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                                                     {"resourceName": "memory", "restartPolicy": "NotRequired"}]))

    uid = f"7e5f1d1e-0000-4000-8000-{os.getpid():012x}"
    pod = static_pod("resize", spec("200m", "64Mi"), uid)
    c = wait_for("the resized container to run", lambda: running(ep, pod, "resized"), POD_TIMEOUT_S)
    assert status(ep, c.id).resources.linux.memory_limit_in_bytes == 64 << 20
    kubelet.add("resize", spec("300m", "96Mi"), uid)

    def resized() -> api_pb2.ContainerStatus | None:
        st = status(ep, c.id)
        linux = st.resources.linux
        return st if (linux.memory_limit_in_bytes, linux.cpu_quota) == (96 << 20, 30000) else None

    st = wait_for("ContainerStatus to report the new limits", resized, POD_TIMEOUT_S)
    assert st.state == api_pb2.CONTAINER_RUNNING and running(ep, pod, "resized").id == c.id, "restarted, not resized"
    out = exec_sync(ep, c.id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    assert out.split() == [str(96 << 20), "30000"]
    # The pod's limits went through UpdatePodSandboxResources, which records what it was given.
    (sandbox,) = [p for p in _our_pods(ep, pod) if p.state == api_pb2.SANDBOX_READY]
    assert sandbox.metadata.uid == uid
    with ep.channel() as ch:
        info = ep.runtime(ch).PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox.id, verbose=True),
                                               timeout=30).info
    pod_resources = json.loads(info["info"])["resources"]["resources"]
    assert pod_resources["memoryLimitInBytes"] == str(96 << 20) and pod_resources["cpuQuota"] == "30000"


def test_user_namespace_pod_owns_its_image(kubelet: Kubelet, static_pod: Callable[[str, dict[str, Any]], str]) -> None:
    """A hostUsers: false pod runs in a user namespace the kubelet maps, and its image's root-owned files
    are root's inside (its rootfs is idmapped with the pod's map), as the host sees them mapped."""
    ep = kubelet.endpoint
    pod = static_pod("userns", pod_spec(container_spec("inside", "sleep 3600"), hostUsers=False))
    c = wait_for("the userns container to run", lambda: running(ep, pod, "inside"), POD_TIMEOUT_S)
    uid_map = exec_sync(ep, c.id, "cat", "/proc/self/uid_map").split()
    assert uid_map[0] == "0" and int(uid_map[1]) > 0, uid_map
    assert exec_sync(ep, c.id, "stat", "-c", "%u:%g", "/bin/busybox", "/").split() == ["0:0", "0:0"]
    assert exec_sync(ep, c.id, "sh", "-c", "touch /made && stat -c %u /made").strip() == "0"


def test_image_volume(kubelet: Kubelet, static_pod: Callable[[str, dict[str, Any]], str]) -> None:
    """An ``image`` volume (GA in 1.37): the kubelet pulls the image and the runtime mounts it read-only,
    whole and by subPath; its files are the image's."""
    ep = kubelet.endpoint
    pod = static_pod("imgvol", pod_spec(
        container_spec("reader", "sleep 3600", volumeMounts=[
            {"name": "img", "mountPath": "/img"}, {"name": "img", "mountPath": "/imgbin", "subPath": "bin"}]),
        volumes=[{"name": "img", "image": {"reference": IMAGE, "pullPolicy": "IfNotPresent"}}],
    ))
    c = wait_for("the reader to run", lambda: running(ep, pod, "reader"), POD_TIMEOUT_S)
    out = exec_sync(ep, c.id, "sh", "-c", "test -x /img/bin/sh && test -x /imgbin/sh && echo both; "
                                          "touch /img/x 2>&1; grep ' /img ' /proc/mounts")
    lines = out.splitlines()
    assert lines[0] == "both" and "Read-only file system" in lines[1], out
    assert " ro," in lines[2], out
    (mount,) = [m for m in status(ep, c.id).mounts if m.container_path == "/imgbin"]
    assert mount.image.image and mount.image_sub_path == "bin"


def test_checkpoint_through_the_kubelet_api(kubelet: Kubelet, static_pod: Callable[[str, dict[str, Any]], str]) -> None:
    """kubelet's checkpoint API (POST /checkpoint/<ns>/<pod>/<container>, the ContainerCheckpoint gate, on
    by default) reaches CheckpointContainer with a location in the kubelet's checkpoints dir.  Where
    CRIU can dump, the archive is there in kubelet's layout and the container runs on; on this VM's
    kernel Debian's CRIU 3.17 cannot (its vDSO check), and the kubelet answers with CRIU's own error,
    no archive is left and the container runs on (the dump itself is proved in the guest:
    tests/guest/test_checkpoint.py)."""
    ep = kubelet.endpoint
    pod = static_pod("ckpt", pod_spec(container_spec("counter", "i=0; while true; do echo $i; i=$((i+1)); sleep 1; done")))
    c = wait_for("the counter to run", lambda: running(ep, pod, "counter"), POD_TIMEOUT_S)
    insecure = ssl.create_default_context()
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE  # the kubelet's self-signed serving cert
    url = f"https://127.0.0.1:{kubelet.port}/checkpoint/{NS}/{pod}/counter"
    checkpoints = kubelet.tmp / "root" / "checkpoints"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=600, context=insecure) as r:
            (archive,) = json.load(r)["items"]
        with tarfile.open(archive) as tar:
            config = json.load(tar.extractfile("config.dump"))  # type: ignore[arg-type]
            assert "checkpoint/inventory.img" in tar.getnames()
        assert Path(archive).parent == checkpoints and config["id"] == c.id and config["name"] == "counter"
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace")
        assert err.code == 500 and "criu exited" in body and "Error" in body, (err.code, body)
        assert not checkpoints.is_dir() or list(checkpoints.iterdir()) == [], list(checkpoints.iterdir())
    assert status(ep, c.id).state == api_pb2.CONTAINER_RUNNING


def test_container_exit_reaches_the_kubelet(kubelet: Kubelet, static_pod: Callable[[str, dict[str, Any]], str]) -> None:
    """A container that exits is seen exited and restarted; under EventedPLEG the kubelet learned it
    from the runtime's event stream: it names the pod (sandbox metadata uid) and the container in its
    relist request, its stream connected without error and measured the events' latency."""
    ep = kubelet.endpoint
    pod = static_pod("exits", pod_spec(container_spec("quitter", "sleep 2; exit 3")))
    first = wait_for("the quitter to run", lambda: running(ep, pod, "quitter"), POD_TIMEOUT_S)
    wait_for("the quitter to be restarted",
             lambda: any(c.metadata.attempt >= 1 for c in containers(ep, pod, "quitter")), POD_TIMEOUT_S)
    assert status(ep, first.id).exit_code == 3
    (sandbox,) = [p for p in _our_pods(ep, pod) if p.state == api_pb2.SANDBOX_READY]
    relist = re.compile(r'"Evented PLEG: requested pod relist after container termination" '
                        rf'podUID="{sandbox.metadata.uid}" containerID="{first.id}"')
    metrics = kubelet.metrics()
    if kubelet.evented_pleg:
        wait_for("the kubelet's relist request for the exit", lambda: relist.search(kubelet.log_text()), POD_TIMEOUT_S)
        assert metrics.get("kubelet_evented_pleg_connection_success_count", 0) >= 1, metrics
        assert metrics.get("kubelet_evented_pleg_connection_error_count", 0) == 0
        assert metrics.get("kubelet_evented_pleg_connection_latency_seconds_count", 0) >= 1
        assert "Evented PLEG: received ContainerEventResponse with nil" not in kubelet.log_text()
    else:
        assert not relist.search(kubelet.log_text())
        assert metrics.get("kubelet_evented_pleg_connection_success_count", 0) == 0


def test_image_filesystem_in_the_node_summary(kubelet: Kubelet) -> None:
    """The kubelet's image GC and eviction read the image filesystem through ImageFsInfo: its
    summary shows the runtime's used bytes and inodes, and cAdvisor found the filesystem of the
    reported mountpoint (capacity and available set, which the GC thresholds are computed from)."""
    deadline = time.monotonic() + POD_TIMEOUT_S
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{kubelet.read_only_port}/stats/summary", timeout=30) as r:
            image_fs = json.load(r)["node"].get("runtime", {}).get("imageFs", {})
        if image_fs.get("capacityBytes") or time.monotonic() > deadline:
            break
        time.sleep(1)  # the summary is built from stats the kubelet collects every few seconds
    assert image_fs.get("usedBytes", 0) > 0 and image_fs.get("inodesUsed", 0) > 0, image_fs
    assert image_fs.get("capacityBytes", 0) > 0 and 0 < image_fs.get("availableBytes", 0) <= image_fs["capacityBytes"], image_fs


def test_kubelet_log_has_no_cri_errors(kubelet: Kubelet) -> None:
    """Across the scenarios above, the kubelet logged no failed CRI call (image GC, ImageFsInfo and stats included)."""
    # Give the eviction manager and image GC (every 10 s / 5 min) one more round.
    time.sleep(15)
    errors = cri_errors(kubelet.log_text())
    assert not errors, "CRI errors in the kubelet log:\n" + "\n".join(errors[:40])

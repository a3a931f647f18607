"""More RuntimeService rules against a real dockyardd, shims, runtimes and CNI plugins:
a shim killed under the daemon, reboot detection, container events, pod metrics,
log reopening, UpdateRuntimeConfig, a RunPodSandbox cut short by a crash,
OOMKilled, and StopContainer's signal and timeout.

Every test runs under the ``pods`` fixture, whose leak check (no mount, netns,
pod cgroup, shim or container process left) runs after it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from bundle import SUBREAPER, bundle_cgroup_dirs
from cri_api.v1 import api_pb2
from daemon_fixture import REGISTRY, REPO, daemon_factory, test_registry  # noqa: F401 (fixtures)
from google.protobuf import json_format
from runtime_service_fixture import Pods, container_config, pod_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root
TICKER = ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]


def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def describe_process(pid: int) -> str:
    """What a process is doing, for a failure message: state, wchan, kernel stack."""
    parts = [f"pid {pid}"]
    for name in ("stat", "wchan", "stack"):
        try:
            parts.append(f"{name}: {Path(f'/proc/{pid}/{name}').read_text().strip()[:600]}")
        except OSError as err:
            parts.append(f"{name}: {err.strerror}")
    return "; ".join(parts)


def wait_exited(pids: list[int], timeout: float = 60.0) -> None:
    """Wait for each process to exit (zombie or reaped): its pidfd turns
    readable at exit, an event rather than a poll.  The bound only turns a
    hang into a failure that says where each process is stuck."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)
        if not ready:
            raise AssertionError(f"still alive after SIGKILL: {describe_process(pid)}")


def inspect(pods: Pods, cid: str) -> dict[str, Any]:
    return dict(json.loads(pods.crictl("inspect", cid)))


def inspectp(pods: Pods, pod: str) -> dict[str, Any]:
    return dict(json.loads(pods.crictl("inspectp", pod)))


def start_ticker(pods: Pods, name: str, command: list[str] | None = None, **extra: Any) -> tuple[str, str, str]:
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod(name)
    cid = pods.crictl("create", pod, pods.write(f"ctr-{name}", container_config("c", command or TICKER, **extra)), pod_cfg)
    pods.crictl("start", cid)
    return pod, pod_cfg, cid


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def shim_pid(pods: Pods, pod: str) -> int:
    return int((pods.state / "shims" / pod / "shim.pid").read_text().strip())


def state_mounts(pods: Pods) -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split()[4].startswith(str(pods.state))]


# --- 1 ----------------------------------------------------------------------------


def test_shim_killed_marks_containers_exited(pods: Pods) -> None:
    """A shim killed with SIGKILL while the daemon runs: its containers become EXITED with reason
    ShimDied and a message saying so, their processes are gone, the pod is NOTREADY, and
    StopPodSandbox + RemovePodSandbox leave no process, mount, netns or cgroup."""
    pod, _, cid = start_ticker(pods, "shimkill")
    ctr_pid = int(inspect(pods, cid)["info"]["pid"])
    pause_pid = int(inspectp(pods, pod)["info"]["pid"])
    os.kill(shim_pid(pods, pod), signal.SIGKILL)
    wait_for(lambda: inspect(pods, cid)["status"]["state"] == "CONTAINER_EXITED", what="container marked exited")
    status = inspect(pods, cid)["status"]
    assert status["reason"] == "ShimDied"
    assert "shim" in status["message"] and pod in status["message"]
    wait_for(lambda: inspectp(pods, pod)["status"]["state"] == "SANDBOX_NOTREADY", what="pod not ready")
    # The daemon marks them exited after it has killed them through the runtime.
    wait_exited([ctr_pid, pause_pid])
    pods.crictl("stopp", pod)
    pods.crictl("rmp", pod)
    assert pods.crictl("pods", "-q") == "" and pods.crictl("ps", "-a", "-q") == ""
    assert pods.leftovers() == {}


# --- 2 ----------------------------------------------------------------------------


def test_reboot_marks_everything_exited_and_cleans_state_dir(pods: Pods) -> None:
    """A boot id in the state dir that differs from the kernel's means a reboot: the restarted daemon
    reconnects to no shim, marks every container EXITED (reason Rebooted) and every pod NOTREADY,
    and removes the state dir's leftovers (netns files, /dev/shm and rootfs mounts); the pods
    then remove cleanly."""
    pod, _, cid = start_ticker(pods, "reboot")
    ctr_pid = int(inspect(pods, cid)["info"]["pid"])
    pause_pid = int(inspectp(pods, pod)["info"]["pid"])
    shim = shim_pid(pods, pod)
    assert (pods.state / "netns" / pod).exists()
    pods.daemon.stop()
    # The reboot: every process of the last boot is gone (mounts stay here, unlike a real reboot,
    # which the daemon must handle too: a state dir on disk may hold stale mount points).
    for pid in (ctr_pid, pause_pid, shim):
        os.kill(pid, signal.SIGKILL)
    wait_exited([ctr_pid, pause_pid, shim])
    SUBREAPER.reap_adopted()
    boot_id = pods.state / "boot_id"
    assert boot_id.read_text().strip() == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    boot_id.write_text("00000000-1111-2222-3333-444444444444\n")
    pods.daemon.start()
    assert not (pods.state / "netns").exists() or not any((pods.state / "netns").iterdir())
    assert state_mounts(pods) == []
    status = inspect(pods, cid)["status"]
    assert status["state"] == "CONTAINER_EXITED" and status["reason"] == "Rebooted", status
    assert inspectp(pods, pod)["status"]["state"] == "SANDBOX_NOTREADY"
    assert not (pods.state / "shims" / pod).exists()
    assert boot_id.read_text().strip() == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    pods.crictl("rmp", "-f", pod)
    assert pods.leftovers() == {}


# --- 3 ----------------------------------------------------------------------------


def test_container_events_stream_lifecycle(pods: Pods) -> None:
    """GetContainerEvents streams CREATED, STARTED, STOPPED, DELETED for a container, in that order,
    each with the pod sandbox's status attached."""
    pods.daemon.pull("busybox")
    events: list[api_pb2.ContainerEventResponse] = []
    with pods.daemon.channel() as ch:
        stream = pods.daemon.runtime(ch).GetContainerEvents(api_pb2.GetEventsRequest())

        def read() -> None:
            try:
                events.extend(stream)
            except grpc.RpcError as err:
                if err.code() != grpc.StatusCode.CANCELLED:
                    raise

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        # The subscription is in place once a pod's own event arrives (no sleep-and-hope).
        pod, pod_cfg = "", ""
        deadline = time.monotonic() + 15
        while not pod or not any(e.container_id == pod for e in events):
            assert time.monotonic() < deadline, "no event for a new pod: the stream never subscribed"
            if pod:
                pods.crictl("rmp", "-f", pod)
            pod, pod_cfg = pods.run_pod("events")
            time.sleep(0.3)
        cid = pods.crictl("create", pod, pods.write("ctr", container_config("c", ["sleep", "100"])), pod_cfg)
        pods.crictl("start", cid)
        pods.crictl("stop", "--timeout", "1", cid)
        pods.crictl("rm", cid)
        wait_for(lambda: sum(e.container_id == cid for e in events) >= 4, what="four events")
        stream.cancel()
        reader.join(5)
    mine = [e for e in events if e.container_id == cid]
    assert [e.container_event_type for e in mine] == [
        api_pb2.CONTAINER_CREATED_EVENT, api_pb2.CONTAINER_STARTED_EVENT,
        api_pb2.CONTAINER_STOPPED_EVENT, api_pb2.CONTAINER_DELETED_EVENT,
    ]
    for e in mine:
        assert e.pod_sandbox_status.id == pod and e.created_at > 0
    assert mine[0].containers_statuses[0].state == api_pb2.CONTAINER_CREATED
    assert mine[1].containers_statuses[0].state == api_pb2.CONTAINER_RUNNING
    assert mine[2].containers_statuses[0].state == api_pb2.CONTAINER_EXITED


# --- 4 ----------------------------------------------------------------------------


def test_metric_descriptors_and_pod_metrics(pods: Pods) -> None:
    """ListMetricDescriptors names cpu, memory and network metrics, and ListPodSandboxMetrics
    reports each of them for a running pod with plausible values (memory > 0, eth0 counters)."""
    pod, _, cid = start_ticker(pods, "metrics")
    # Some traffic on eth0 so the counters are not trivially zero.
    pods.crictl("exec", "-s", cid, "sh", "-c", "ping -c 2 -W 1 10.88.0.1 || true")
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        descriptors = {d.name: d for d in rt.ListMetricDescriptors(api_pb2.ListMetricDescriptorsRequest()).descriptors}
        for kind in ("cpu", "memory", "network"):
            assert any(f"_{kind}_" in name for name in descriptors), (kind, sorted(descriptors))
        assert list(descriptors["container_network_receive_bytes_total"].label_keys) == ["interface"]
        resp = rt.ListPodSandboxMetrics(api_pb2.ListPodSandboxMetricsRequest())
    (pm,) = [m for m in resp.pod_metrics if m.pod_sandbox_id == pod]
    by_name: dict[str, list[api_pb2.Metric]] = {}
    for m in pm.metrics:
        by_name.setdefault(m.name, []).append(m)
    assert set(by_name) <= set(descriptors)
    assert by_name["container_memory_usage_bytes"][0].value.value > 0
    assert by_name["container_memory_working_set_bytes"][0].value.value > 0
    assert "container_cpu_usage_seconds_total" in by_name
    rx = {tuple(m.label_values): m.value.value for m in by_name["container_network_receive_bytes_total"]}
    tx = {tuple(m.label_values): m.value.value for m in by_name["container_network_transmit_bytes_total"]}
    assert rx.get(("eth0",), 0) > 0 and tx.get(("eth0",), 0) > 0, (rx, tx)
    (cm,) = [c for c in pm.container_metrics if c.container_id == cid]
    mem = [m for m in cm.metrics if m.name == "container_memory_usage_bytes"]
    assert mem and mem[0].value.value > 0


# --- 5 ----------------------------------------------------------------------------


def test_reopen_container_log(pods: Pods) -> None:
    """After the log file is renamed (rotated), ReopenContainerLog makes new output go to a new file
    at the original path, and the renamed file stops growing."""
    _, _, cid = start_ticker(pods, "reopen")
    log = pods.logs / "reopen" / "c.log"
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 2, what="first lines")
    rotated = log.with_name("c.log.1")
    log.rename(rotated)
    with pods.daemon.channel() as ch:
        pods.daemon.runtime(ch).ReopenContainerLog(api_pb2.ReopenContainerLogRequest(container_id=cid))
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 3, what="lines in the new file")
    old = rotated.read_text().splitlines()
    time.sleep(0.6)
    assert rotated.read_text().splitlines() == old
    numbers = [int(line.split()[-1]) for line in old + log.read_text().splitlines()]
    assert numbers == list(range(len(numbers))), "a line was lost or repeated across the reopen"
    assert "c.log" in inspect(pods, cid)["status"]["logPath"]


# --- 6 ----------------------------------------------------------------------------


def test_update_runtime_config_pod_cidr(pods: Pods) -> None:
    """UpdateRuntimeConfig keeps the pod CIDR (shown in Status verbose info), rejects a bad one
    with INVALID_ARGUMENT, and pods still run afterwards."""
    cidr = "10.88.0.0/16,fd00:88::/64"
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        rt.UpdateRuntimeConfig(api_pb2.UpdateRuntimeConfigRequest(runtime_config=api_pb2.RuntimeConfig(
            network_config=api_pb2.NetworkConfig(pod_cidr=cidr))))
        info = json.loads(rt.Status(api_pb2.StatusRequest(verbose=True)).info["config"])
        assert info["podCIDR"] == cidr
        with pytest.raises(grpc.RpcError) as err:
            rt.UpdateRuntimeConfig(api_pb2.UpdateRuntimeConfigRequest(runtime_config=api_pb2.RuntimeConfig(
                network_config=api_pb2.NetworkConfig(pod_cidr="10.88.0.0/99"))))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = json.loads(rt.Status(api_pb2.StatusRequest(verbose=True)).info["config"])
        assert info["podCIDR"] == cidr, "a rejected update must not replace the kept CIDR"
        conditions = {c.type: c.status for c in rt.Status(api_pb2.StatusRequest()).status.conditions}
        assert conditions == {"RuntimeReady": True, "NetworkReady": True}
        assert rt.RuntimeConfig(api_pb2.RuntimeConfigRequest()).linux.cgroup_driver == api_pb2.CGROUPFS
    pod, _, cid = start_ticker(pods, "cidr")
    assert inspect(pods, cid)["status"]["state"] == "CONTAINER_RUNNING"
    assert inspectp(pods, pod)["status"]["network"]["ip"].startswith("10.88.")


# --- 7 ----------------------------------------------------------------------------

SLOW_PLUGIN = """#!/bin/sh
# A CNI plugin that blocks ADD until the test releases it (or 60 s pass), then passes prevResult on.
dir=$(dirname "$0")
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
ADD)
    conf=$(cat)
    touch "$dir/add-started"
    i=0
    while [ ! -e "$dir/release" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
    printf '%s' "$conf" | jq -c .prevResult ;;
*) cat >/dev/null ;;
esac
"""


def test_run_pod_sandbox_cut_by_daemon_crash(pods: Pods) -> None:
    """kill -9 of the daemon while RunPodSandbox waits on a CNI plugin: the restarted daemon removes
    the half-made pod's netns, /dev/shm, pause container, shim, cgroup and IP, and the pod is
    absent (or NOTREADY and removable)."""
    pods.daemon.pull("busybox")
    pods.daemon.pull("registry.k8s.io/pause:3.10")
    bin_dir = pods.tmp / "cni-bin"
    bin_dir.mkdir()
    plugin = bin_dir / "dockyard-test-slow"
    plugin.write_text(SLOW_PLUGIN)
    plugin.chmod(0o755)
    conflist = next((pods.tmp / "cni").iterdir())
    doc = json.loads(conflist.read_text())
    doc["plugins"].append({"type": "dockyard-test-slow"})
    conflist.write_text(json.dumps(doc))
    pods.daemon.stop()
    pods.daemon.config["cni"]["bin_dirs"] = [str(bin_dir), "/usr/lib/cni", "/opt/cni/bin"]
    pods.daemon.start()

    cfg = api_pb2.PodSandboxConfig()
    json_format.Parse(json.dumps(pod_config("halfdone", pods.logs)), cfg)
    ch = pods.daemon.channel()
    try:
        call = pods.daemon.runtime(ch).RunPodSandbox.future(api_pb2.RunPodSandboxRequest(config=cfg), timeout=120)
        wait_for(lambda: (bin_dir / "add-started").exists() or call.done(), timeout=60, what="CNI ADD in flight")
        assert not call.done(), call.exception()
        (pod,) = [p.name for p in (pods.state / "netns").iterdir()]
        # The ADD runs alongside the shim start and the pause container: wait for those too.
        wait_for(lambda: (pods.state / "shims" / pod / "shim.pid").exists()
                 and any(pod in m for m in state_mounts(pods)), timeout=60, what="the shim and the pause rootfs")
        shim = shim_pid(pods, pod)
        assert pid_alive(shim) and any(pod in m for m in state_mounts(pods))
        assert pods.daemon.proc is not None
        pods.daemon.proc.send_signal(signal.SIGKILL)
        pods.daemon.proc.wait()
        with pytest.raises(grpc.RpcError):
            call.result()
    finally:
        ch.close()
        (bin_dir / "release").touch()
    pods.daemon.stop()
    pods.daemon.start()
    listed = json.loads(pods.crictl("pods", "-o", "json"))["items"]
    assert all(p["state"] == "SANDBOX_NOTREADY" for p in listed), listed
    if not listed:
        assert not (pods.state / "netns" / pod).exists()
        assert [m for m in state_mounts(pods) if pod in m] == []
        wait_exited([shim])  # recovery asked it to exit and waited for it
        assert pods.allocated_ips() == [], "IP still allocated"
    pods.crictl("rmp", "-a")
    assert pods.leftovers() == {}


# --- 8 ----------------------------------------------------------------------------


def test_oom_killed_reason(pods: Pods) -> None:
    """A container that allocates past its memory limit is killed by the kernel's OOM killer and
    ContainerStatus says reason OOMKilled (exit 137)."""
    limit = 32 << 20
    # tail keeps every byte of its input while it looks for a newline; /dev/zero has none.
    pod, pod_cfg, cid = start_ticker(pods, "oom", ["tail", "/dev/zero"],
                               linux={"resources": {"memory_limit_in_bytes": limit, "memory_swap_limit_in_bytes": limit}})
    wait_for(lambda: inspect(pods, cid)["status"]["state"] == "CONTAINER_EXITED", timeout=30, what="OOM kill")
    status = inspect(pods, cid)["status"]
    assert (status["reason"], status["exitCode"]) == ("OOMKilled", 137), status
    # The shim read the kill from the cgroup, then deleted the container from the runtime, before it
    # reported the exit: the cgroup is gone while the record keeps the reason.
    assert bundle_cgroup_dirs(pods.state / "containers" / cid) == []
    # A container that exits by itself under the same limit is not mislabelled.
    ok = pods.crictl("create", pod, pods.write("ok", container_config("ok", ["true"], linux={
        "resources": {"memory_limit_in_bytes": limit}})), pod_cfg)
    pods.crictl("start", ok)
    wait_for(lambda: inspect(pods, ok)["status"]["state"] == "CONTAINER_EXITED", what="true exits")
    assert inspect(pods, ok)["status"]["reason"] == "Completed"
    assert bundle_cgroup_dirs(pods.state / "containers" / ok) == []


# --- 9 ----------------------------------------------------------------------------

TRAPPER = ["sh", "-c", ("trap 'echo got TERM' TERM; trap 'echo got USR1; exit 3' USR1; "
                       "echo ready; while true; do sleep 0.1; done")]


def _stopsignal_image() -> str:
    """busybox with StopSignal SIGUSR1, pushed to the test registry (idempotent)."""
    ref = f"{REGISTRY}/dockyard-test/stopsignal:usr1"
    work = Path(os.environ.get("DOCKYARD_BUILD_DIR", REPO / "build")) / "test-stopsignal"
    if not (work / "index.json").exists():
        tmp = work.with_name(work.name + ".tmp")
        SUBREAPER.run(["rm", "-rf", str(tmp)], timeout=30)
        for argv in (
            ["skopeo", "copy", "-q", f"oci:{REPO / 'build' / 'oci'}:busybox", f"oci:{tmp}:busybox"],
            ["umoci", "config", "--image", f"{tmp}:busybox", "--config.stopsignal", "SIGUSR1"],
        ):
            result = SUBREAPER.run(argv, timeout=120, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert result.returncode == 0, (argv, result.stderr)
        tmp.rename(work)
    result = SUBREAPER.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{work}:busybox", f"docker://{ref}"],
                           timeout=120, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 0, result.stderr
    return ref


def test_stop_container_signal_and_timeout(pods: Pods) -> None:
    """StopContainer sends SIGTERM, waits the timeout for a container that ignores it, then SIGKILLs
    (exit 137); with an image StopSignal (SIGUSR1) that signal is sent instead and a container
    exiting on it stops at once with its own exit code."""
    def stop_trapping(container: str, log_name: str, timeout: str) -> tuple[dict[str, Any], float, str]:
        """Stop the container once its traps are set: its status, how long the stop took, its log."""
        log = pods.logs / "stopsig" / log_name
        wait_for(lambda: log.exists() and "ready" in log.read_text(), what="trap set")
        begun = time.monotonic()
        pods.crictl("stop", "--timeout", timeout, container)
        took = time.monotonic() - begun
        return inspect(pods, container)["status"], took, log.read_text()

    pod, pod_cfg, cid = start_ticker(pods, "stopsig", TRAPPER)
    status, took, log = stop_trapping(cid, "c.log", "2")
    assert status["exitCode"] == 137 and 2.0 <= took < 10, (status, took)
    assert "got TERM" in log and "got USR1" not in log

    ref = _stopsignal_image()
    pods.daemon.pull(ref)
    cfg = container_config("u", TRAPPER)
    cfg["image"]["image"] = ref
    uid = pods.crictl("create", pod, pods.write("u", cfg), pod_cfg)
    pods.crictl("start", uid)
    status, took, log = stop_trapping(uid, "u.log", "20")
    assert status["exitCode"] == 3 and took < 10, (status, took)
    assert "got USR1" in log and "got TERM" not in log


def test_a_shim_that_fails_to_start_rolls_the_pod_back(pods: Pods) -> None:
    """The shim starts alongside the pod's files, netns, CNI ADD and rootfs (sandbox_run): when it
    cannot come up, RunPodSandbox fails naming the shim, and the concurrent steps are all undone
    (no netns, mount or IP left)."""
    pods.daemon.pull("registry.k8s.io/pause:3.10")
    broken = pods.tmp / "broken-shim"
    broken.write_text("#!/bin/sh\necho 'dockyard-shim: refusing for the test' >&2\nexit 1\n")
    broken.chmod(0o755)
    pods.daemon.stop()
    pods.daemon.config["shim_binary"] = str(broken)
    pods.daemon.start()
    result = pods.daemon.crictl("runp", pods.write("p", pod_config("noshim", pods.logs)), check=False)
    assert result.returncode != 0 and "refusing for the test" in result.stderr, result.stderr
    assert pods.crictl("pods", "-q") == ""
    netns_dir = pods.state / "netns"
    assert not netns_dir.exists() or not any(netns_dir.iterdir())
    assert pods.allocated_ips() == [], "IP still allocated"
    assert pods.leftovers() == {}

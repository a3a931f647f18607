"""The RuntimeService driven by crictl (and gRPC where crictl cannot say it),
against real shims, runtimes (dockyard-runc, runc, crun) and CNI plugins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import old_seccomp_profile
import pytest
from bundle import SUBREAPER
from cri_api.v1 import api_pb2
from daemon_fixture import CRICTL, daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pod_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root
TICKER = ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("handler", ["", "runc", "crun"])
def test_crictl_full_flow(pods: Pods, handler: str) -> None:
    """runp/create/start/ps/pods/inspect/inspectp/logs(-f)/exec -s/stats/statsp/update/stop/rm/stopp/rmp
    work with each runtime handler, and the pod is networked, named and resourced as configured."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod(f"flow{handler or 'default'}", handler)
    ctr_cfg = pods.write("ctr", container_config("ticker", TICKER))
    cid = pods.crictl("create", pod, ctr_cfg, pod_cfg)
    pods.crictl("start", cid)
    assert cid[:13] in pods.crictl("ps")
    assert pod[:13] in pods.crictl("pods")
    inspectp = json.loads(pods.crictl("inspectp", pod))
    assert inspectp["status"]["state"] == "SANDBOX_READY"
    ip = inspectp["status"]["network"]["ip"]
    assert ip.startswith("10.88."), ip
    assert inspectp["info"]["runtimeHandler"] == (handler or "dockyard-runc")
    inspect = json.loads(pods.crictl("inspect", cid))
    assert inspect["status"]["state"] == "CONTAINER_RUNNING"
    assert inspect["status"]["imageId"].startswith("sha256:")
    wait_for(lambda: "tick 2" in pods.crictl("logs", cid), what="log lines")
    out = pods.crictl("exec", "-s", cid, "sh", "-c", "hostname; cat /proc/self/oom_score_adj; df -k /dev/shm; ip addr")
    assert f"flow{handler or 'default'}" in out
    assert "65536" in out  # 64 MiB /dev/shm
    assert ip in out
    stats = json.loads(pods.crictl("stats", "-o", "json", "--id", cid))
    assert int(stats["stats"][0]["memory"]["workingSetBytes"]["value"]) > 0
    statsp = json.loads(pods.crictl("statsp", "-o", "json", "--id", pod))
    assert statsp["stats"][0]["attributes"]["id"] == pod
    pods.crictl("update", "--memory", str(64 << 20), cid)
    assert str(64 << 20) in pods.crictl("exec", "-s", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    pods.crictl("stop", "--timeout", "1", cid)
    status = json.loads(pods.crictl("inspect", cid))["status"]
    assert status["state"] == "CONTAINER_EXITED" and status["exitCode"] in (137, 143) and status["reason"] == "Error"
    log = (pods.logs / f"flow{handler or 'default'}" / "ticker.log").read_text().splitlines()
    assert log and all(" stdout F tick " in line for line in log)
    pods.crictl("rm", cid)
    pods.crictl("stopp", pod)
    pods.crictl("stopp", pod)  # idempotent
    pods.crictl("rmp", pod)
    with pods.daemon.channel() as ch:  # crictl asks for the status first; the RPCs themselves are idempotent
        pods.daemon.runtime(ch).RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
        pods.daemon.runtime(ch).StopContainer(api_pb2.StopContainerRequest(container_id=cid))
        pods.daemon.runtime(ch).RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert pods.crictl("pods", "-q") == ""


def test_pod_loopback_is_up_without_a_loopback_plugin(pods: Pods) -> None:
    """The pod's ``lo`` is up whatever the CNI config says: with a conflist
    of bridge + host-local + portmap only (what network add-ons install), a
    sidecar reaches a server on 127.0.0.1 in the same pod (containerd and
    CRI-O bring ``lo`` up themselves)."""
    conf_dir = Path(pods.daemon.config["cni"]["conf_dir"])
    types = [p["type"] for f in conf_dir.iterdir() for p in json.loads(f.read_text())["plugins"]]
    assert "loopback" not in types, types
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("lo")
    web = pods.crictl("create", pod, pods.write("web", container_config(
        "web", ["sh", "-c", "mkdir -p /www && echo hello-lo > /www/index.html && httpd -f -p 127.0.0.1:8080 -h /www"])), pod_cfg)
    pods.crictl("start", web)
    side = pods.crictl("create", pod, pods.write("side", container_config("side", ["sleep", "1000"])), pod_cfg)
    pods.crictl("start", side)
    assert "<LOOPBACK,UP,LOWER_UP>" in pods.crictl("exec", "-s", side, "ip", "link", "show", "lo")
    wait_for(lambda: "127.0.0.1:8080" in pods.crictl("exec", "-s", web, "netstat", "-ltn"), what="httpd to listen")
    assert pods.crictl("exec", "-s", side, "wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html") == "hello-lo"


def test_localhost_seccomp_profile_older_than_close_range(pods: Pods) -> None:
    """A Localhost seccomp profile written before close_range(2) existed (it
    denies it with EPERM) runs a container with no_new_privs false, as it
    does under runc: the runtime's init falls back to marking fds
    close-on-exec one by one (it failed at create with 'close_range: EPERM')."""
    profile_path = pods.tmp / "old-profile.json"
    profile_path.write_text(json.dumps(old_seccomp_profile.profile()))
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("oldsec")
    security = {"seccomp": {"profile_type": 2, "localhost_ref": str(profile_path)}, "no_new_privs": False}
    cid = pods.crictl("create", pod, pods.write("c", container_config(
        "c", ["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; sleep 1000"],
        linux={"security_context": security})), pod_cfg)
    pods.crictl("start", cid)
    wait_for(lambda: "NoNewPrivs" in pods.crictl("logs", cid), what="the container's output")
    out = pods.crictl("logs", cid)
    assert "Seccomp:\t2" in out and "NoNewPrivs:\t0" in out, out


def test_logs_follow(pods: Pods) -> None:
    """crictl logs -f streams lines as the container writes them."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("follow")
    cid = pods.crictl("create", pod, pods.write("ctr", container_config("ticker", TICKER)), pod_cfg)
    pods.crictl("start", cid)
    proc = subprocess.Popen(
        [str(CRICTL), "--runtime-endpoint", f"unix://{pods.daemon.socket}", "logs", "-f", cid],
        stdout=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        wait_for(lambda: len(lines) >= 8, timeout=15, what="followed lines")
    finally:
        proc.kill()
        proc.wait()
    numbers = [int(line.split()[1]) for line in lines[:8]]
    assert numbers == list(range(numbers[0], numbers[0] + 8))


def test_exec_sync_exit_code_and_timeout(pods: Pods) -> None:
    """ExecSync returns the exit code and output; on timeout the process is killed and the call fails with DEADLINE_EXCEEDED."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("exec")
    cid = pods.crictl("create", pod, pods.write("ctr", container_config("c", ["sleep", "1000"])), pod_cfg)
    pods.crictl("start", cid)
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        resp = rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 3"]))
        assert (resp.exit_code, resp.stdout, resp.stderr) == (3, b"out\n", b"err\n")
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sleep", "100"], timeout=1), timeout=30)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - start < 10
    ps = pods.crictl("exec", "-s", cid, "ps")
    assert not [line for line in ps.splitlines() if line.rstrip().endswith("sleep 100")]


def _rpc_error(fn, *args, **kwargs) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    return info.value


def test_bad_inputs(pods: Pods) -> None:
    """Each bad input gets a clear gRPC error and leaves nothing behind."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("bad")
    sandbox_config = api_pb2.PodSandboxConfig()
    from google.protobuf import json_format

    json_format.Parse(Path(pod_cfg).read_text(), sandbox_config)
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        # The same config again is a retry whose answer was lost: the same pod.
        assert rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=sandbox_config)).pod_sandbox_id == pod
        other = api_pb2.PodSandboxConfig()
        other.CopyFrom(sandbox_config)
        other.hostname = "another"
        err = _rpc_error(rt.RunPodSandbox, api_pb2.RunPodSandboxRequest(config=other))
        assert err.code() == grpc.StatusCode.ALREADY_EXISTS and pod in err.details()
        err = _rpc_error(rt.RunPodSandbox, api_pb2.RunPodSandboxRequest(config=sandbox_config, runtime_handler="nope"))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "nope" in err.details()

        def create(**fields: object) -> grpc.RpcError:
            target = str(fields.pop("pod", pod))
            cfg = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="c"),
                                          image=api_pb2.ImageSpec(image="busybox"), command=["true"])
            for key, value in fields.items():
                if key == "mounts":
                    cfg.mounts.extend(value)  # type: ignore[arg-type]
                elif key == "image":
                    cfg.image.image = value  # type: ignore[assignment]
                elif key == "command":
                    del cfg.command[:]
                else:
                    setattr(cfg, key, value)
            return _rpc_error(rt.CreateContainer, api_pb2.CreateContainerRequest(
                pod_sandbox_id=target, config=cfg, sandbox_config=sandbox_config))

        err = create(pod="0" * 64)
        assert err.code() == grpc.StatusCode.NOT_FOUND
        err = create(image="127.0.0.1:5000/not-there:1")
        assert err.code() == grpc.StatusCode.NOT_FOUND and "not-there" in err.details()
        err = create(log_path="../../escape.log")
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "log_directory" in err.details()
        err = create(mounts=[api_pb2.Mount(container_path="/data", host_path=str(pods.daemon.root / "content"))])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "config.mounts[0].host_path" in err.details()
        listed = rt.ListContainers(api_pb2.ListContainersRequest())
        assert list(listed.containers) == []
        # Stop and Remove of unknown objects are fine.
        rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id="f" * 64))
        rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id="f" * 64))
        rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id="f" * 64))
    containers_dir = pods.state / "containers"
    assert not containers_dir.exists() or not any(containers_dir.iterdir())


def test_missing_command(pods: Pods) -> None:
    """An image with no entrypoint/cmd and a container with no command is INVALID_ARGUMENT, leaving nothing."""
    pods.daemon.pull("registry.k8s.io/pause:3.10")
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("nocmd")
    cfg = container_config("c", [])
    cfg["image"]["image"] = "busybox"
    del cfg["command"]
    cfg["args"] = []
    result = pods.daemon.crictl("create", pod, pods.write("c", cfg), pod_cfg, check=False)
    # busybox has Cmd ["sh"], so that one is valid; an explicit empty-string command is not.
    if result.returncode == 0:
        pods.crictl("rm", result.stdout.strip())
    bad = container_config("c2", [""])
    result = pods.daemon.crictl("create", pod, pods.write("c2", bad), pod_cfg, check=False)
    assert result.returncode != 0 and "InvalidArgument" in result.stderr


def test_cni_failure_rolls_back(pods: Pods) -> None:
    """A failing CNI plugin fails RunPodSandbox and leaves no netns, pause container or shim."""
    conflist = next((pods.tmp / "cni").iterdir())
    doc = json.loads(conflist.read_text())
    doc["plugins"][0]["ipam"]["ranges"] = [[{"subnet": "10.99.0.0/30", "rangeStart": "10.99.0.9", "rangeEnd": "10.99.0.9"}]]
    conflist.write_text(json.dumps(doc))
    result = pods.daemon.crictl("runp", pods.write("p", pod_config("cnifail", pods.logs)), check=False)
    assert result.returncode != 0
    assert pods.crictl("pods", "-q") == ""
    assert pods.leftovers() == {}


def test_pause_failure_undoes_the_concurrent_cni_add(pods: Pods) -> None:
    """The pause container fails (a sysctl this kernel does not have) while CNI ADD runs
    alongside it: RunPodSandbox fails naming the sysctl, the ADD is DELeted (no IP stays
    allocated), and nothing else is left."""
    cfg = pod_config("pausefail", pods.logs, linux={"sysctls": {"net.ipv4.dockyard_no_such_key": "1"}})
    result = pods.daemon.crictl("runp", pods.write("p", cfg), check=False)
    assert result.returncode != 0 and "net.ipv4.dockyard_no_such_key" in result.stderr, result.stderr
    assert pods.crictl("pods", "-q") == ""
    assert pods.allocated_ips() == [], "IP still allocated"
    assert (pods.tmp / "ipam").exists(), "the ADD never ran: the test did not reach the concurrent path"
    assert pods.leftovers() == {}


def test_concurrent_run_pod_sandbox_shares_answer(pods: Pods) -> None:
    """A RunPodSandbox retried while the first is in flight returns the first one's id (no 'name reserved' error)."""
    from google.protobuf import json_format

    cfg = api_pb2.PodSandboxConfig()
    json_format.Parse(json.dumps(pod_config("twice", pods.logs)), cfg)
    results: list[str] = []
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        threads = [threading.Thread(target=lambda: results.append(
            rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert pods.crictl("pods", "-q").split() == [results[0]]


def test_kill9_daemon_restart_keeps_pods(pods: Pods) -> None:
    """kill -9 of the daemon with 3 pods running: after restart every container runs with the same pid,
    one that exited meanwhile shows its exit code, logs continue, nothing is listed twice."""
    pods.daemon.pull("busybox")
    ids = []
    for i in range(3):
        pod, cfg = pods.run_pod(f"r{i}")
        cid = pods.crictl("create", pod, pods.write(f"t{i}", container_config("ticker", TICKER)), cfg)
        pods.crictl("start", cid)
        ids.append((pod, cfg, cid))
    short = pods.crictl("create", ids[0][0], pods.write("s", container_config("short", ["sh", "-c", "sleep 1; exit 7"])), ids[0][1])
    pods.crictl("start", short)
    pids = {cid: json.loads(pods.crictl("inspect", cid))["info"]["pid"] for _, _, cid in ids}
    assert pods.daemon.proc is not None
    pods.daemon.proc.send_signal(signal.SIGKILL)
    pods.daemon.proc.wait()
    time.sleep(2)  # the short container exits while no daemon runs
    pods.daemon.stop()
    pods.daemon.start()
    for _, _, cid in ids:
        status = json.loads(pods.crictl("inspect", cid))
        assert status["status"]["state"] == "CONTAINER_RUNNING"
        assert status["info"]["pid"] == pids[cid]
    status = json.loads(pods.crictl("inspect", short))["status"]
    assert status["state"] == "CONTAINER_EXITED" and status["exitCode"] == 7
    assert len(pods.crictl("pods", "-q").split()) == 3
    assert len(pods.crictl("ps", "-a", "-q").split()) == 4
    log = pods.logs / "r1" / "ticker.log"
    before = len(log.read_text().splitlines())
    wait_for(lambda: len(log.read_text().splitlines()) > before + 2, what="log growth after restart")
    numbers = [int(line.split()[-1]) for line in log.read_text().splitlines()]
    assert numbers == list(range(len(numbers))), "log has a gap or a repeat"

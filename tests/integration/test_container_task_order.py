"""CreateContainer makes no task; StartContainer creates and starts it in one
runtime call (containerd's order, cri/store/container.py).  Against a real
dockyardd, shim, dockyard-runc and CNI plugins: what a created container
has and has not, a resource update before start, a start that fails, stop
and removal of a container that never started, and a daemon restart in
between.  The ``pods`` fixture's leak check (mounts, netns, cgroups,
processes, IPs) runs after each test."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from bundle import DEFAULT_RUNTIME, SUBREAPER
from cri_api.v1 import api_pb2
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root
CGROUP_ROOT = Path("/sys/fs/cgroup")
MiB = 1024 * 1024


def runtime_ids(pods: Pods) -> list[str]:
    """The container ids dockyard-runc holds state for, under the default handler's root."""
    root = pods.state / "runtimes" / "dockyard-runc"
    done = SUBREAPER.run([str(DEFAULT_RUNTIME), "--root", str(root), "list", "--format", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [c["id"] for c in json.loads(done.stdout or "[]") or []]


def memory_cgroup(pods: Pods, pod: str, cid: str) -> Path | None:
    """The container's memory cgroup dir, wherever under the test's cgroup parent it is."""
    base = CGROUP_ROOT / "memory" / pods.cgroup_parent.strip("/")
    found = list(base.rglob(cid)) if base.is_dir() else []
    return found[0] if found else None


def inspect(pods: Pods, cid: str) -> dict[str, Any]:
    return dict(json.loads(pods.crictl("inspect", cid)))


def create(pods: Pods, name: str, command: list[str], **extra: Any) -> tuple[str, str]:
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod(name)
    cid = pods.crictl("create", pod, pods.write(f"ctr-{name}", container_config("c", command, **extra)), pod_cfg)
    return pod, cid


def test_created_container_has_no_task_and_takes_updates_into_its_start(pods: Pods) -> None:
    """After CreateContainer: state CREATED, a bundle and rootfs, but no runtime state and no
    cgroup.  A memory limit set by UpdateContainerResources before start is in force once it runs."""
    pod, cid = create(pods, "order", ["sleep", "1000"])
    assert inspect(pods, cid)["status"]["state"] == "CONTAINER_CREATED"
    assert (pods.state / "containers" / cid / "config.json").is_file()
    assert cid not in runtime_ids(pods)
    assert memory_cgroup(pods, pod, cid) is None
    with pods.daemon.channel() as channel:  # ContainerStats answers, with no cgroup to read
        stats = pods.daemon.runtime(channel).ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid)).stats
    assert stats.attributes.id == cid and not stats.memory.HasField("working_set_bytes")
    pods.crictl("update", "--memory", str(96 * MiB), cid)
    spec = json.loads((pods.state / "containers" / cid / "config.json").read_text())
    assert spec["linux"]["resources"]["memory"]["limit"] == 96 * MiB
    pods.crictl("start", cid)
    assert inspect(pods, cid)["status"]["state"] == "CONTAINER_RUNNING"
    assert cid in runtime_ids(pods)
    cgroup = memory_cgroup(pods, pod, cid)
    assert cgroup is not None
    assert int((cgroup / "memory.limit_in_bytes").read_text()) == 96 * MiB
    pods.crictl("rmp", "-f", pod)
    assert runtime_ids(pods) == []


def test_failed_start_is_start_error_and_leaves_no_task(pods: Pods) -> None:
    """A program the image lacks is found out by the runtime's create, now at StartContainer:
    the call fails naming it, the container is EXITED with reason StartError, and the runtime
    keeps nothing of it; removal then cleans up."""
    pod, cid = create(pods, "badstart", ["/no/such/program"])
    failed = pods.daemon.crictl("start", cid, check=False)
    assert failed.returncode != 0
    assert "/no/such/program" in failed.stderr, failed.stderr
    status = inspect(pods, cid)["status"]
    assert status["state"] == "CONTAINER_EXITED" and status["reason"] == "StartError", status
    assert "/no/such/program" in status["message"], status
    assert cid not in runtime_ids(pods)
    assert memory_cgroup(pods, pod, cid) is None
    pods.crictl("rm", cid)
    pods.crictl("rmp", "-f", pod)


def test_stop_and_remove_of_a_container_never_started(pods: Pods) -> None:
    """StopContainer of a created container has no process to signal: it answers OK and the
    container stays CREATED (containerd does the same); StopPodSandbox likewise. A created
    container of a stopped pod cannot start (FailedPrecondition), and removal leaves nothing."""
    pod, cid = create(pods, "neverstarted", ["sleep", "1000"])
    pods.crictl("stop", cid)
    assert inspect(pods, cid)["status"]["state"] == "CONTAINER_CREATED"
    pods.crictl("stopp", pod)
    assert inspect(pods, cid)["status"]["state"] == "CONTAINER_CREATED"
    refused = pods.daemon.crictl("start", cid, check=False)
    assert refused.returncode != 0 and "not ready" in refused.stderr, refused.stderr
    assert inspect(pods, cid)["status"]["state"] == "CONTAINER_CREATED"
    pods.crictl("rm", cid)
    assert not (pods.state / "containers" / cid).exists()
    pods.crictl("rmp", pod)


def test_created_container_survives_a_daemon_restart_and_starts(pods: Pods) -> None:
    """Recovery keeps a created container without a task as CREATED (the shim has nothing to
    say about it), and it starts normally afterwards."""
    pod, cid = create(pods, "restart", ["sleep", "1000"])
    pods.daemon.stop()
    pods.daemon.start()
    assert inspect(pods, cid)["status"]["state"] == "CONTAINER_CREATED"
    pods.crictl("start", cid)
    assert inspect(pods, cid)["status"]["state"] == "CONTAINER_RUNNING"
    pods.crictl("rmp", "-f", pod)

"""In-place pod resize through the CRI calls kubelet makes for it (kuberuntime_manager.go,
doPodResizeAction): UpdatePodSandboxResources for the pod cgroup, UpdateContainerResources for
each container, then ContainerStatus to see the resize done; read back from the cgroup files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root
CGROUP = Path("/sys/fs/cgroup")
MiB = 1 << 20


def cgroup_file(controller: str, path: str, name: str) -> str:
    return (CGROUP / controller / path.strip("/") / name).read_text().strip()


def resources_of(pods: Pods, cid: str) -> dict[str, str]:
    return json.loads(pods.crictl("inspect", cid))["status"]["resources"]["linux"]


def test_resize_a_running_container_and_its_pod(pods: Pods) -> None:
    """A running container's CPU and memory change in place: its cgroup files, ContainerStatus.resources
    and the pod's verbose status say the new values; UpdatePodSandboxResources writes the pod cgroup
    (resources plus overhead)."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("resize")
    start = {"cpu_shares": 256, "cpu_quota": 50000, "cpu_period": 100000, "memory_limit_in_bytes": 64 * MiB}
    cid = pods.crictl("create", pod, pods.write("c", container_config(
        "c", ["sleep", "1000"], linux={"resources": start})), pod_cfg)
    pods.crictl("start", cid)
    status = resources_of(pods, cid)
    assert (status["cpuShares"], status["cpuQuota"], status["cpuPeriod"], status["memoryLimitInBytes"]) == \
        ("256", "50000", "100000", str(64 * MiB))

    # kubelet's order for a net increase: the pod first, then the container
    pod_cgroup = f"{pods.cgroup_parent}/pod-{pod}"
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        rt.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod,
            resources=api_pb2.LinuxContainerResources(cpu_shares=512, cpu_quota=150000, cpu_period=100000,
                                                      memory_limit_in_bytes=256 * MiB),
            overhead=api_pb2.LinuxContainerResources(memory_limit_in_bytes=16 * MiB)))
    assert cgroup_file("memory", pod_cgroup, "memory.limit_in_bytes") == str(272 * MiB)
    assert cgroup_file("cpu", pod_cgroup, "cpu.cfs_quota_us") == "150000"
    assert cgroup_file("cpu", pod_cgroup, "cpu.shares") == "512"

    pods.crictl("update", "--cpu-share", "512", "--cpu-quota", "120000", "--cpu-period", "100000",
                "--memory", str(192 * MiB), cid)
    inside = pods.crictl("exec", "-s", cid, "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                         "/sys/fs/cgroup/cpu/cpu.shares", "/sys/fs/cgroup/memory/memory.limit_in_bytes").split()
    assert inside == ["120000", "512", str(192 * MiB)]
    status = resources_of(pods, cid)
    assert (status["cpuShares"], status["cpuQuota"], status["memoryLimitInBytes"]) == ("512", "120000", str(192 * MiB))

    with pods.daemon.channel() as ch:
        resp = pods.daemon.runtime(ch).PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True))
    (listed,) = resp.containers_statuses
    assert listed.id == cid and listed.resources.linux.cpu_quota == 120000
    recorded = json.loads(resp.info["info"])["resources"]
    assert recorded["resources"]["memoryLimitInBytes"] == str(256 * MiB)

    # the same values again (kubelet may repeat a call) change nothing
    pods.crictl("update", "--memory", str(192 * MiB), cid)
    assert resources_of(pods, cid)["memoryLimitInBytes"] == str(192 * MiB)


def test_resize_errors_name_the_field(pods: Pods) -> None:
    """Unknown pod: NOT_FOUND; a bad value: INVALID_ARGUMENT naming resources.<field> or overhead.<field>;
    a pod memory limit below what the pod holds: FAILED_PRECONDITION (the kernel's EBUSY), the old
    limit kept; a stopped pod: FAILED_PRECONDITION."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("resizebad")
    # 40 MiB in the pod's /dev/shm: tmpfs pages charged to the pod that no reclaim can free (no swap here)
    cid = pods.crictl("create", pod, pods.write("c", container_config(
        "c", ["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 && touch /tmp/full && sleep 1000"])), pod_cfg)
    pods.crictl("start", cid)
    pod_cgroup = f"{pods.cgroup_parent}/pod-{pod}"
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)

        def update(**kw: object) -> grpc.RpcError:
            with pytest.raises(grpc.RpcError) as info:
                rt.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(**kw), timeout=60)
            return info.value

        err = update(pod_sandbox_id="0" * 64)
        assert err.code() == grpc.StatusCode.NOT_FOUND and "pod sandbox" in err.details()
        err = update(pod_sandbox_id=pod, resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=1))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details().startswith("resources.memory_limit_in_bytes"), err.details()
        err = update(pod_sandbox_id=pod, overhead=api_pb2.LinuxContainerResources(cpu_period=5))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("overhead.cpu_period")
        err = update(pod_sandbox_id="", resources=api_pb2.LinuxContainerResources(cpu_shares=2))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "pod_sandbox_id" in err.details()

        before = cgroup_file("memory", pod_cgroup, "memory.limit_in_bytes")
        deadline = time.monotonic() + 60
        while pods.crictl("exec", "-s", cid, "sh", "-c", "test -e /tmp/full && echo yes || echo no") != "yes":
            assert time.monotonic() < deadline, "the container did not fill /dev/shm"
        err = update(pod_sandbox_id=pod, resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=16 * MiB))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
        assert err.details().startswith("resources.memory_limit_in_bytes: the pod cgroup refused"), err.details()
        assert cgroup_file("memory", pod_cgroup, "memory.limit_in_bytes") == before

        pods.crictl("stopp", pod)
        err = update(pod_sandbox_id=pod, resources=api_pb2.LinuxContainerResources(cpu_shares=2))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "notready" in err.details()
        with pytest.raises(grpc.RpcError) as info:
            rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
                container_id=cid, linux=api_pb2.LinuxContainerResources(cpu_shares=2)))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION

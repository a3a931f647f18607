"""An exited container keeps nothing in the runtime: as containerd's CRI deletes a task when it
exits, dockyardd's shim deletes the container from the OCI runtime (its cgroup and the runtime's
state) as soon as its init exits, before the exit is reported.  The CRI record stays EXITED, with
its exit code and reason, until RemoveContainer, which then has nothing of the runtime's to remove.

Why it matters: cAdvisor found a restarted container's dead instance's empty cgroup beside the
live one and reported it (node e2e "ContainerMetrics"), and every completed Job or init container
kept a cgroup and runtime state until kubelet's GC removed it.

Every test runs under the ``pods`` fixture, whose leak check (no mount, netns, pod cgroup, shim or
container process left) runs after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from bundle import bundle_cgroup_dirs
from cri_api.v1 import api_pb2
from cri_events import Events
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root


@pytest.fixture
def events(pods: Pods) -> Iterator[Events]:  # noqa: F811
    e = Events(pods)
    yield e
    e.close()


def runtime_state(pods: Pods, handler: str, object_id: str) -> Path:
    """Where the handler's runtime keeps the state of a container (its --root is <state_dir>/runtimes/<handler>)."""
    return pods.state / "runtimes" / (handler or "dockyard-runc") / object_id


def status_of(pods: Pods, cid: str) -> api_pb2.ContainerStatus:
    with pods.daemon.channel() as ch:
        return pods.daemon.runtime(ch).ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status


@pytest.mark.parametrize("handler", ["", "runc", "crun"])
def test_an_exited_container_has_no_cgroup_left(pods: Pods, events: Events, handler: str) -> None:  # noqa: F811
    """When the CONTAINER_STOPPED event of a container that exited by itself arrives, its cgroup (in
    every v1 hierarchy) and its runtime state are gone, with each runtime; ContainerStatus still says
    EXITED with its exit code and reason; RemoveContainer then succeeds.  StopPodSandbox leaves the
    pause container the same way: no cgroup, no runtime state before RemovePodSandbox."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod(f"exit{handler or 'default'}", handler)
    cid = pods.crictl("create", pod, pods.write("c", container_config("c", ["sh", "-c", "exit 3"])), pod_cfg)
    bundle = pods.state / "containers" / cid
    pods.crictl("start", cid)  # makes the runtime's container (dockyardd defers it from create)
    events.wait(cid, api_pb2.CONTAINER_STOPPED_EVENT)
    assert bundle_cgroup_dirs(bundle) == []
    assert not runtime_state(pods, handler, cid).exists()
    status = status_of(pods, cid)
    assert (status.state, status.exit_code, status.reason) == (api_pb2.CONTAINER_EXITED, 3, "Error"), status
    with pods.daemon.channel() as ch:
        runtime = pods.daemon.runtime(ch)
        runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
        with pytest.raises(grpc.RpcError) as gone:
            runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid))
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        assert not bundle.exists()

        pause = pods.state / "sandboxes" / pod / "bundle"
        assert bundle_cgroup_dirs(pause)
        runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
        assert bundle_cgroup_dirs(pause) == []
        assert not runtime_state(pods, handler, pod).exists()
        runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))


def test_an_exit_while_the_daemon_is_down(pods: Pods, tmp_path: Path) -> None:  # noqa: F811
    """A container that exits while dockyardd is down is deleted from the runtime by its shim
    alone; the restarted daemon learns the exit (code and reason) from the shim, and RemoveContainer
    then only has the shim forget it."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("restart")
    gate = tmp_path / "gate"
    gate.mkdir()
    os.mkfifo(gate / "release")
    cid = pods.crictl("create", pod, pods.write("c", container_config(
        "c", ["sh", "-c", "read x < /gate/release; exit 5"],
        mounts=[{"container_path": "/gate", "host_path": str(gate)}])), pod_cfg)
    pods.crictl("start", cid)
    bundle = pods.state / "containers" / cid
    pods.daemon.stop()
    with open(gate / "release", "w") as f:  # blocks until the container opened it: it runs
        f.write("go\n")
    pods.daemon.start()
    with pods.daemon.channel() as ch:
        runtime = pods.daemon.runtime(ch)
        # Returns once the exit is recorded (the shim's wait answers after its delete from the runtime).
        runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0))
        status = runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        assert (status.state, status.exit_code, status.reason) == (api_pb2.CONTAINER_EXITED, 5, "Error"), status
        assert bundle_cgroup_dirs(bundle) == []
        assert not runtime_state(pods, "", cid).exists()
        runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
        assert not bundle.exists()

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

import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from bundle import SUBREAPER, bundle_cgroup_dirs, cgroup_dirs
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


def runtime_state(pods: Pods, handler: str, object_id: str) -> Path:  # noqa: F811
    """Where the handler's runtime keeps the state of a container (its --root is <state_dir>/runtimes/<handler>)."""
    return pods.state / "runtimes" / (handler or "dockyard-runc") / object_id


def status_of(pods: Pods, cid: str) -> api_pb2.ContainerStatus:  # noqa: F811
    with pods.daemon.channel() as ch:
        return pods.daemon.runtime(ch).ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status


def start_gated(pods: Pods, tmp_path: Path, name: str, exit_code: int, **extra: Any) -> tuple[str, str, Path]:  # noqa: F811
    """A pod and a started container that exits with ``exit_code`` once the returned fifo is written
    to: its pod id, its id and the fifo (an open for writing blocks until the container opened it)."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod(name)
    gate = tmp_path / "gate"
    gate.mkdir()
    os.mkfifo(gate / "release")
    cid = pods.crictl("create", pod, pods.write("c", container_config(
        "c", ["sh", "-c", f"read x < /gate/release; exit {exit_code}"],
        mounts=[{"container_path": "/gate", "host_path": str(gate)}], **extra)), pod_cfg)
    pods.crictl("start", cid)
    return pod, cid, gate / "release"


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
    _pod, cid, release = start_gated(pods, tmp_path, "restart", 5)
    bundle = pods.state / "containers" / cid
    pods.daemon.stop()
    release.write_text("go\n")
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


def test_a_container_its_shim_could_not_delete_is_deleted_at_remove(pods: Pods, events: Events,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    """When the runtime's delete at the exit failed (a host process sat in the container's pids
    cgroup, out of reach of its own pid namespace) and the shim then died, RemoveContainer deletes the
    container through the runtime's own state: its cgroup does not outlive its record."""
    pod, cid, release = start_gated(pods, tmp_path, "noshim", 6, linux={
        "security_context": {"namespace_options": {"pid": 1}}})  # CONTAINER: a pid namespace of its own
    config = json.loads((pods.state / "containers" / cid / "config.json").read_text())
    assert {"type": "pid"} in config["linux"]["namespaces"]
    cgroups_path = config["linux"]["cgroupsPath"]
    ready, hold = tmp_path / "ready", tmp_path / "hold"
    os.mkfifo(ready)
    os.mkfifo(hold)
    procs = Path("/sys/fs/cgroup/pids", cgroups_path.strip("/"), "cgroup.procs")
    script = f"echo $$ > {procs}; echo $? > {ready}; read x < {hold}"
    intruder = threading.Thread(target=lambda: SUBREAPER.run(["sh", "-c", script], timeout=120))
    intruder.start()
    try:
        assert ready.read_text() == "0\n"
        release.write_text("go\n")
        events.wait(cid, api_pb2.CONTAINER_STOPPED_EVENT)  # reported although the delete failed
        assert Path("/sys/fs/cgroup/pids", cgroups_path.strip("/")).is_dir()
        os.kill(int((pods.state / "shims" / pod / "shim.pid").read_text()), signal.SIGKILL)
        events.wait(pod, api_pb2.CONTAINER_STOPPED_EVENT)  # the daemon saw its shim die
    finally:
        hold.write_text("go\n")
        intruder.join(60)
    assert status_of(pods, cid).exit_code == 6
    with pods.daemon.channel() as ch:
        pods.daemon.runtime(ch).RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    assert cgroup_dirs(cgroups_path) == []
    assert not runtime_state(pods, "", cid).exists()

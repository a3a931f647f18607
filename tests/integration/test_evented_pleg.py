"""What kubelet's evented PLEG reads (pkg/kubelet/pleg/evented.go): every GetContainerEvents event
carries the pod's sandbox status (with its metadata: the pod's uid) and the statuses of all the
pod's containers; PodSandboxStatus with verbose carries them too, with a timestamp (without
verbose neither: cri/server/sandbox_status.py says why)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cri_api.v1 import api_pb2
from cri_events import Events
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root


@pytest.fixture
def events(pods: Pods) -> Iterator[Events]:
    e = Events(pods)
    yield e
    e.close()


def states(event: api_pb2.ContainerEventResponse | api_pb2.PodSandboxStatusResponse) -> dict[str, int]:
    return {s.id: s.state for s in event.containers_statuses}


def test_events_carry_the_whole_pod(pods: Pods, events: Events) -> None:
    """Each container event names the pod (sandbox status with metadata.uid) and lists every container
    of the pod in its state after the event; a deleted container is gone from the list; sandbox events
    list the containers too."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("evented")
    started = events.wait(pod, api_pb2.CONTAINER_STARTED_EVENT)
    assert started.pod_sandbox_status.metadata.uid == "uid-evented" and not started.containers_statuses
    a = pods.crictl("create", pod, pods.write("a", container_config("a", ["sleep", "100"])), pod_cfg)
    b = pods.crictl("create", pod, pods.write("b", container_config("b", ["sleep", "100"])), pod_cfg)
    pods.crictl("start", a)
    e = events.wait(a, api_pb2.CONTAINER_STARTED_EVENT)
    assert e.pod_sandbox_status.id == pod and e.pod_sandbox_status.metadata.uid == "uid-evented"
    assert e.pod_sandbox_status.state == api_pb2.SANDBOX_READY
    assert states(e) == {a: api_pb2.CONTAINER_RUNNING, b: api_pb2.CONTAINER_CREATED}
    assert e.created_at > 0

    pods.crictl("stop", "--timeout", "0", a)
    e = events.wait(a, api_pb2.CONTAINER_STOPPED_EVENT)
    assert states(e) == {a: api_pb2.CONTAINER_EXITED, b: api_pb2.CONTAINER_CREATED}
    (stopped,) = [s for s in e.containers_statuses if s.id == a]
    assert stopped.exit_code == 137 and stopped.finished_at > 0
    pods.crictl("rm", a)
    e = events.wait(a, api_pb2.CONTAINER_DELETED_EVENT)
    assert e.pod_sandbox_status.metadata.uid == "uid-evented"
    assert states(e) == {b: api_pb2.CONTAINER_CREATED}

    pods.crictl("stopp", pod)
    e = events.wait(pod, api_pb2.CONTAINER_STOPPED_EVENT)
    assert e.pod_sandbox_status.state == api_pb2.SANDBOX_NOTREADY and states(e) == {b: api_pb2.CONTAINER_CREATED}
    pods.crictl("rmp", pod)
    e = events.wait(pod, api_pb2.CONTAINER_DELETED_EVENT)
    assert e.pod_sandbox_status.metadata.uid == "uid-evented" and not e.containers_statuses


def test_verbose_sandbox_status_lists_containers_with_a_timestamp(pods: Pods) -> None:
    """PodSandboxStatus(verbose) answers the pod and all its containers at one instant (timestamp, taken
    before the statuses); without verbose, neither (a 1.37 kubelet with EventedPLEG would otherwise take
    the statuses from it and never see its init containers complete)."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("verbose")
    a = pods.crictl("create", pod, pods.write("a", container_config("a", ["sleep", "100"])), pod_cfg)
    b = pods.crictl("create", pod, pods.write("b", container_config("b", ["true"])), pod_cfg)
    pods.crictl("start", a)
    pods.crictl("start", b)
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        deadline = time.monotonic() + 30
        while rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=b)).status.state != api_pb2.CONTAINER_EXITED:
            assert time.monotonic() < deadline, "b (true) did not exit"
        before = time.time_ns()
        resp = rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True))
        plain = rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod))
    assert before <= resp.timestamp <= time.time_ns()
    assert states(resp) == {a: api_pb2.CONTAINER_RUNNING, b: api_pb2.CONTAINER_EXITED}
    by_id = {s.id: s for s in resp.containers_statuses}
    assert by_id[a].metadata.name == "a" and by_id[b].exit_code == 0 and by_id[b].finished_at <= resp.timestamp
    assert plain.timestamp == 0 and not plain.containers_statuses and "info" not in plain.info
    assert plain.status.id == pod and plain.status.state == api_pb2.SANDBOX_READY

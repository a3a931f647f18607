"""cri/cadvisor_endpoint.py and api/cadvisor_containerd.py: the containerd API subset cAdvisor reads.

The wire is containerd's: field numbers of the messages and full names of the services; a
message decoded by containerd's own field numbers (checked here against the numbers
containerd's api/*.proto declare) must read what the endpoint wrote."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from dockyard.api import cadvisor_containerd as api
from dockyard.api import cadvisor_containerd_pb2 as pb
from dockyard.cri import errors
from dockyard.cri.cadvisor_endpoint import (CadvisorEndpoint, container_message, container_process, sandbox_message,
                                            sandbox_process)
from dockyard.cri.store.container import Container, ContainerState
from dockyard.cri.store.sandbox import Sandbox, SandboxState

REPO = Path(__file__).resolve().parents[2]
_VERSION_LINES = re.compile(r"^(# Protobuf Python Version: .*|    \d+,)$", re.MULTILINE)
CID = "c" * 64
PID = "p" * 64


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    """hack/gen-cadvisor-api.sh run now gives the checked-in generated code (versions aside)."""
    subprocess.run([str(REPO / "hack" / "gen-cadvisor-api.sh"), str(tmp_path)], check=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    for name in ("cadvisor_containerd_pb2.py", "cadvisor_containerd_pb2.pyi"):
        fresh = _VERSION_LINES.sub("", (tmp_path / name).read_text())
        checked_in = _VERSION_LINES.sub("", (REPO / "api" / name).read_text())
        assert fresh == checked_in, f"api/{name} is out of date: run hack/gen-cadvisor-api.sh"


@pytest.mark.parametrize(("message", "numbers"), [
    # containerd's api/services/containers/v1/containers.proto, Container
    (pb.Container, {"id": 1, "labels": 2, "image": 3, "runtime": 4, "spec": 5, "snapshotter": 6,
                    "snapshot_key": 7, "created_at": 8, "updated_at": 9, "sandbox": 11}),
    (pb.GetContainerRequest, {"id": 1}),
    (pb.GetContainerResponse, {"container": 1}),
    # api/types/task/task.proto, Process; api/services/tasks/v1/tasks.proto, GetRequest/GetResponse
    (pb.Process, {"container_id": 1, "id": 2, "pid": 3, "status": 4, "exit_status": 9, "exited_at": 10}),
    (pb.GetTaskRequest, {"container_id": 1, "exec_id": 2}),
    (pb.GetTaskResponse, {"process": 1}),
    # api/services/version/v1/version.proto
    (pb.VersionResponse, {"version": 1, "revision": 2}),
])
def test_field_numbers_are_containerds(message: Any, numbers: dict[str, int]) -> None:
    assert {f.name: f.number for f in message.DESCRIPTOR.fields} == numbers


def test_services_are_containerds() -> None:
    handlers = api.generic_handlers({f"{s}/{m}": lambda r, c: None for s, ms in api.SERVICES.items() for m in ms})
    assert len(handlers) == 3
    assert api.path("containerd.services.tasks.v1.Tasks", "Get") == "/containerd.services.tasks.v1.Tasks/Get"
    assert {f"{s}/{m}" for s, ms in api.SERVICES.items() for m in ms} == {
        "containerd.services.containers.v1.Containers/Get", "containerd.services.tasks.v1.Tasks/Get",
        "containerd.services.version.v1.Version/Version"}
    with pytest.raises(ValueError, match="missing"):
        api.generic_handlers({})


def _container(**kw: object) -> Container:
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="app"),
        labels={"io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "ns",
                "io.kubernetes.container.name": "app", "io.kubernetes.pod.uid": "u1"})
    base: dict[str, object] = dict(id=CID, name="n", sandbox_id=PID, config_b64=Container.encode_config(config),
                                   image_id="sha256:x", image_ref="reg/busybox:1", image_repo_digest="", log_path="",
                                   state=ContainerState.RUNNING, pid=4242, created_at=1_700_000_000_500_000_000,
                                   bundle="/nonexistent")
    base.update(kw)
    return Container(**base)  # type: ignore[arg-type]


def _sandbox(**kw: object) -> Sandbox:
    import base64
    config = api_pb2.PodSandboxConfig(labels={"io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "ns",
                                              "io.kubernetes.pod.uid": "u1"})
    base: dict[str, object] = dict(id=PID, name="web_ns_u1_0", config_b64=base64.b64encode(config.SerializeToString()).decode(),
                                   runtime_handler="", handler="dockyard-runc", state=SandboxState.READY, pid=77,
                                   created_at=3)
    base.update(kw)
    return Sandbox(**base)  # type: ignore[arg-type]


def test_a_container_carries_its_pod_labels_and_kind() -> None:
    """cAdvisor counts a cgroup as a pod's container by the kubelet's labels; kind=container
    keeps the pod's network off it (the sandbox reports that)."""
    msg = container_message(_container(), b'{"ociVersion": "1.2.0"}')
    assert msg.labels["io.kubernetes.pod.name"] == "web" and msg.labels[api.KIND_LABEL] == "container"
    assert (msg.id, msg.image, msg.sandbox) == (CID, "reg/busybox:1", PID)
    assert json.loads(msg.spec.value) == {"ociVersion": "1.2.0"} and msg.spec.type_url == api.SPEC_TYPE_URL
    assert (msg.created_at.seconds, msg.created_at.nanos) == (1_700_000_000, 500_000_000)
    sandbox = sandbox_message(_sandbox(), b"{}")
    assert sandbox.labels[api.KIND_LABEL] == "sandbox" and sandbox.labels["io.kubernetes.pod.uid"] == "u1"


@pytest.mark.parametrize(("kw", "status", "pid"), [
    ({"state": ContainerState.RUNNING}, pb.RUNNING, 4242),
    ({"state": ContainerState.CREATED, "pid": 0}, pb.UNKNOWN, 0),  # not made yet: cAdvisor retries
    ({"state": ContainerState.CREATED}, pb.CREATED, 4242),
    ({"state": ContainerState.EXITED, "exit_code": 3, "finished_at": 5}, pb.STOPPED, 4242),
])
def test_container_task(kw: dict[str, object], status: int, pid: int) -> None:
    """The task's pid is the init's (cAdvisor reads /proc/<pid> once, when it first sees the
    cgroup); without one yet the status is UNKNOWN, which cAdvisor retries."""
    p = container_process(_container(**kw))
    assert (p.status, p.pid) == (status, pid)
    if status == pb.STOPPED:
        assert p.exit_status == 3


@pytest.mark.parametrize(("kw", "status", "pid"), [
    ({}, pb.RUNNING, 77),
    ({"state": SandboxState.INIT}, pb.RUNNING, 77),  # pause started, network not up yet
    ({"state": SandboxState.NOTREADY, "pause_exit_code": 137}, pb.STOPPED, 77),
    ({"state": SandboxState.INIT, "pid": 0}, pb.UNKNOWN, 0),
])
def test_sandbox_task(kw: dict[str, object], status: int, pid: int) -> None:
    p = sandbox_process(_sandbox(**kw))
    assert (p.status, p.pid) == (status, pid)


class _Store:
    def __init__(self, *records: Any) -> None:
        self.records = records

    def find(self, id_or_prefix: str) -> Any:
        return next((r for r in self.records if r.id.startswith(id_or_prefix)), None)


def test_lookups_take_whole_ids_only(tmp_path: Path) -> None:
    """An unknown id is NotFound (cAdvisor then keeps the cgroup raw); a prefix is not an id."""
    (tmp_path / "config.json").write_text('{"process": {}}')
    cri = SimpleNamespace(containers=_Store(_container(bundle=str(tmp_path))), sandboxes=_Store(_sandbox()),
                          pause_bundle=lambda sid: str(tmp_path / "missing"))
    endpoint = CadvisorEndpoint(cri)  # type: ignore[arg-type]
    got = asyncio.run(endpoint.get_container(pb.GetContainerRequest(id=CID)))
    assert json.loads(got.container.spec.value) == {"process": {}}
    pause = asyncio.run(endpoint.get_container(pb.GetContainerRequest(id=PID)))
    assert pause.container.spec.value == b"{}"  # its bundle is gone: still JSON
    assert asyncio.run(endpoint.get_task(pb.GetTaskRequest(container_id=PID))).process.pid == 77
    for unknown in (CID[:12], "d" * 64):
        with pytest.raises(errors.NotFound):
            asyncio.run(endpoint.get_container(pb.GetContainerRequest(id=unknown)))
        with pytest.raises(errors.NotFound):
            asyncio.run(endpoint.get_task(pb.GetTaskRequest(container_id=unknown)))
    assert asyncio.run(endpoint.version(None)).version

"""Kept status and list answers (cri/server/built_messages.py): a kept message
is handed out while its inputs are unchanged, and after any field of a record
changes in place the answer is the one a fresh build gives."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from types import SimpleNamespace
from typing import Any

import pytest
from cri_api.v1 import api_pb2
from dockyard.cri import errors
from dockyard.cri.bundle_facts import BundleFacts
from dockyard.cri.image.store import ImageRecord
from dockyard.cri.server.built_messages import BuiltMessages, KeptAnswers
from dockyard.cri.server.container_list import build_container_item, list_containers
from dockyard.cri.server.container_status import (
    build_container_status,
    container_status,
    reported_image,
)
from dockyard.cri.server.sandbox_list import build_sandbox_item, list_pod_sandbox
from dockyard.cri.server.sandbox_status import build_sandbox_status, sandbox_status
from dockyard.cri.store.container import Container, ContainerState
from dockyard.cri.store.sandbox import Sandbox, SandboxState


def test_a_kept_message_is_handed_out_until_its_inputs_change() -> None:
    built: list[int] = []

    def build() -> list[int]:
        built.append(1)
        return [len(built)]

    kept: BuiltMessages[list[int]] = BuiltMessages()
    first = kept.get("a", ("x", 1), build)
    assert kept.get("a", ("x", 1), build) is first
    assert kept.get("a", ("x", 2), build) == [2]
    assert kept.get("b", ("x", 2), build) == [3]  # per object id
    kept.forget("a")
    assert len(kept) == 1
    assert kept.get("a", ("x", 2), build) == [4]


def _config(name: str) -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name, attempt=1), labels={"app": name}, annotations={"a": "1"},
        image=api_pb2.ImageSpec(image="busybox", annotations={"i": "1"}),
        mounts=[api_pb2.Mount(container_path="/data", host_path="/tmp/" + name)])


def _pod_config(name: str) -> api_pb2.PodSandboxConfig:
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="ns", uid="u-" + name), labels={"app": name},
        linux=api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
            namespace_options=api_pb2.NamespaceOption(network=api_pb2.POD))))


def _facts(uid: int) -> BundleFacts:
    return BundleFacts(cgroups_path="/p/c", process=None, uid=uid, gid=uid, additional_gids=(uid, 7), has_user=True,
                       resources={"memory": {"limit": (1 << 20) + uid}}, oom_score_adj=uid)


def _changed(value: Any, name: str) -> Any:
    """A different value of the same kind, for the field ``name``."""
    if name == "config_b64":
        return Container.encode_config(_config("other"))
    if isinstance(value, enum.Enum):
        members = list(type(value))
        return members[(members.index(value) + 1) % len(members)]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        value.append(value[0] if value else {"changed": 1})  # in place, as a handler might
        return value
    if isinstance(value, dict):
        value["changed"] = 1
        return value
    if value is None:
        return 3
    raise AssertionError(f"no change for {name}={value!r}")


class _Node:
    """The parts of CriService the status and list handlers read."""

    def __init__(self, container: Container, sandbox: Sandbox) -> None:
        self.image: ImageRecord | None = ImageRecord(id=container.image_id, repo_tags=("reg/busybox:1",),
                                                     repo_digests=("reg/busybox@sha256:m",))
        self.facts: BundleFacts | None = _facts(1)
        self.kept = KeptAnswers()
        self.images = SimpleNamespace(get=self._image)
        self.bundle_facts = SimpleNamespace(get=lambda cid, bundle: self.facts)
        self.containers = SimpleNamespace(list=lambda: [container])
        self.sandboxes = SimpleNamespace(list=lambda: [sandbox])

    def _image(self, image_id: str) -> ImageRecord:
        if self.image is None or self.image.id != image_id:
            raise errors.NotFound(f"image {image_id} not found")
        return self.image


def _records(state: ContainerState = ContainerState.RUNNING) -> tuple[Container, Sandbox]:
    c = Container(id="c1", name="n", sandbox_id="p1", config_b64=Container.encode_config(_config("web")),
                  image_id="sha256:x", image_ref="busybox", image_repo_digest="reg/busybox@sha256:m",
                  log_path="/logs/web.log", state=state, created_at=1, started_at=2, finished_at=3, exit_code=1, pid=9,
                  bundle="/b", snapshot_key="k", mounts=[{"destination": "/data"}])
    s = Sandbox(id="p1", name="pod", config_b64=Sandbox.encode_config(_pod_config("pod")), runtime_handler="",
                handler="runc", state=SandboxState.READY, created_at=1, ips=["10.88.0.2"], pid=8,
                cni_result={"ips": []})
    return c, s


def _answers(node: _Node, c: Container, s: Sandbox) -> tuple[Any, ...]:
    cri: Any = node
    listed_c = asyncio.run(list_containers(cri, api_pb2.ListContainersRequest())).containers
    listed_s = asyncio.run(list_pod_sandbox(cri, api_pb2.ListPodSandboxRequest())).items
    return (container_status(cri, c), sandbox_status(cri, s), list(listed_c), list(listed_s))


def _fresh(node: _Node, c: Container, s: Sandbox) -> tuple[Any, ...]:
    image = reported_image(c, node.image if node.image is not None and node.image.id == c.image_id else None)
    listed_c = [build_container_item(c)] if c.state is not ContainerState.CREATING else []
    listed_s = [build_sandbox_item(s)] if s.state is not SandboxState.INIT else []
    return (build_container_status(c, image, node.facts), build_sandbox_status(s), listed_c, listed_s)


@pytest.mark.parametrize("state", [ContainerState.RUNNING, ContainerState.EXITED])  # exit fields show when EXITED
@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Container)])
def test_each_container_field_changed_in_place_is_seen(name: str, state: ContainerState) -> None:
    c, s = _records(state)
    node = _Node(c, s)
    assert _answers(node, c, s) == _fresh(node, c, s)
    setattr(c, name, _changed(getattr(c, name), name))
    assert _answers(node, c, s) == _fresh(node, c, s)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(Sandbox)])
def test_each_sandbox_field_changed_in_place_is_seen(name: str) -> None:
    c, s = _records()
    node = _Node(c, s)
    assert _answers(node, c, s) == _fresh(node, c, s)
    value = getattr(s, name)
    setattr(s, name, Sandbox.encode_config(_pod_config("other")) if name == "config_b64" else _changed(value, name))
    assert _answers(node, c, s) == _fresh(node, c, s)


@pytest.mark.parametrize("change", ["retag", "remove image", "new facts", "no facts"])
def test_what_a_container_status_reads_besides_its_record_is_seen(change: str) -> None:
    c, s = _records()
    node = _Node(c, s)
    before = _answers(node, c, s)
    if change == "retag":
        assert node.image is not None
        node.image = dataclasses.replace(node.image, repo_tags=("reg/busybox:2",))
    elif change == "remove image":
        node.image = None
    elif change == "new facts":
        node.facts = _facts(2)
    else:
        node.facts = None
    after = _answers(node, c, s)
    assert after == _fresh(node, c, s)
    assert after[0] != before[0]


def test_an_answer_holds_a_copy_of_the_kept_message() -> None:
    c, s = _records()
    node = _Node(c, s)
    cri: Any = node
    answer = api_pb2.ContainerStatusResponse(status=container_status(cri, c))
    answer.status.labels["added"] = "1"
    assert "added" not in container_status(cri, c).labels

"""A daemon killed in the middle of any CRI call loses nothing, and the call
succeeds when retried with the same arguments.

Each test arms one fault point (cri/faults.py): the daemon SIGKILLs itself
when the call reaches that step, so the kill lands at an exact place, not at
a moment picked with a timer.  The test then restarts the daemon (no fault),
retries the interrupted call with the very same request, checks what the
caller sees, and takes the pod through the rest of its life; the ``pods``
fixture then checks that nothing is left: no mount, netns, cgroup, shim,
process or IP.

What a retry must give, as kubelet needs it:
- RunPodSandbox: the same pod when the first call had finished it (READY on
  disk), else a new pod, the half-made one rolled back at restart;
- CreateContainer: the same container when the first call had made it;
- StartContainer: the container running (started by the retry, or found
  running: the shim may have started it before the daemon died);
- Stop* and Remove*: success, the object stopped or gone.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from google.protobuf import json_format
from runtime_service_fixture import Pods, container_config, pod_config, pods  # noqa: F401 (fixture)

from dockyard.cri import faults

pytestmark = pytest.mark.root

SEQUENCE = ("RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer",
            "StopPodSandbox", "RemovePodSandbox")
TICKER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


@dataclass
class Flow:
    """One pod with one container, taken through SEQUENCE by raw gRPC calls."""

    pods: Pods
    pod_config: api_pb2.PodSandboxConfig
    ctr_config: api_pb2.ContainerConfig
    ids: dict[str, str] = field(default_factory=dict)

    def request(self, rpc: str) -> Any:
        pod, cid = self.ids.get("pod", ""), self.ids.get("ctr", "")
        return {
            "RunPodSandbox": lambda: api_pb2.RunPodSandboxRequest(config=self.pod_config),
            "CreateContainer": lambda: api_pb2.CreateContainerRequest(
                pod_sandbox_id=pod, config=self.ctr_config, sandbox_config=self.pod_config),
            "StartContainer": lambda: api_pb2.StartContainerRequest(container_id=cid),
            "StopContainer": lambda: api_pb2.StopContainerRequest(container_id=cid, timeout=5),
            "RemoveContainer": lambda: api_pb2.RemoveContainerRequest(container_id=cid),
            "StopPodSandbox": lambda: api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod),
            "RemovePodSandbox": lambda: api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod),
        }[rpc]()

    def call(self, rpc: str, request: Any, timeout: float = 120) -> Any:
        with self.pods.daemon.channel() as ch:
            response = getattr(self.pods.daemon.runtime(ch), rpc)(request, timeout=timeout)
        if rpc == "RunPodSandbox":
            self.ids["pod"] = response.pod_sandbox_id
        elif rpc == "CreateContainer":
            self.ids["ctr"] = response.container_id
        return response

    def sandboxes(self) -> list[api_pb2.PodSandbox]:
        with self.pods.daemon.channel() as ch:
            return list(self.pods.daemon.runtime(ch).ListPodSandbox(api_pb2.ListPodSandboxRequest()).items)

    def containers(self) -> list[api_pb2.Container]:
        with self.pods.daemon.channel() as ch:
            return list(self.pods.daemon.runtime(ch).ListContainers(api_pb2.ListContainersRequest()).containers)


def make_flow(pods: Pods) -> Flow:
    pods.daemon.pull("busybox")
    pod = json_format.ParseDict(pod_config("killed", pods.logs / "killed"), api_pb2.PodSandboxConfig())
    ctr = json_format.ParseDict(container_config("ticker", TICKER), api_pb2.ContainerConfig())
    return Flow(pods, pod, ctr)


def restart(pods: Pods, env: dict[str, str]) -> None:
    pods.daemon.stop()
    pods.daemon.env = env
    pods.daemon.start()


LIFECYCLE_POINTS = sorted(p for p in faults.POINTS if p.split("/")[0] in SEQUENCE)


@pytest.mark.parametrize("point", LIFECYCLE_POINTS)
def test_call_interrupted_by_a_daemon_kill_succeeds_when_retried(pods: Pods, point: str) -> None:
    rpc = point.split("/")[0]
    flow = make_flow(pods)
    restart(pods, {faults.ENV: point})
    for earlier in SEQUENCE[:SEQUENCE.index(rpc)]:
        flow.call(earlier, flow.request(earlier))
    request = flow.request(rpc)
    with pytest.raises(grpc.RpcError) as info:
        flow.call(rpc, request)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    assert pods.daemon.proc is not None
    assert pods.daemon.proc.wait(60) == -signal.SIGKILL
    restart(pods, {})
    # Recovery asked every shim it rolled back to exit, rather than waiting
    # for one it never spoke to until the deadline and killing it (10 s a pod).
    assert "ignored shutdown" not in pods.daemon.log_text()

    before_retry = [p.id for p in flow.sandboxes()]
    if point == "RunPodSandbox/ready":  # READY is saved after the pause snapshot's metadata
        metadata = Path(pods.daemon.config["root_dir"]) / "snapshots" / "metadata.json"
        assert before_retry and before_retry[0] in json.loads(metadata.read_text())["active"]
    flow.call(rpc, request)
    if rpc == "RunPodSandbox":
        # READY on disk: the same pod; anything less was rolled back at restart.
        assert before_retry == ([flow.ids["pod"]] if point == "RunPodSandbox/ready" else []), before_retry
        listed = flow.sandboxes()
        assert [p.id for p in listed] == [flow.ids["pod"]], listed
        assert listed[0].state == api_pb2.SANDBOX_READY
    elif rpc in ("CreateContainer", "StartContainer"):
        listed = flow.containers()
        assert [c.id for c in listed] == [flow.ids["ctr"]], listed
        want = api_pb2.CONTAINER_CREATED if rpc == "CreateContainer" else api_pb2.CONTAINER_RUNNING
        assert listed[0].state == want, listed[0]
    elif rpc == "StopContainer":
        assert [c.state for c in flow.containers()] == [api_pb2.CONTAINER_EXITED]
    elif rpc == "RemoveContainer":
        assert flow.containers() == []
    elif rpc == "StopPodSandbox":
        assert [p.state for p in flow.sandboxes()] == [api_pb2.SANDBOX_NOTREADY]
    else:
        assert flow.sandboxes() == [] and flow.containers() == []
    for later in SEQUENCE[SEQUENCE.index(rpc) + 1:]:
        flow.call(later, flow.request(later))
    assert flow.sandboxes() == [] and flow.containers() == []


def create_killed_at(pods: Pods, point: str) -> tuple[Flow, api_pb2.CreateContainerRequest]:
    """A pod, then a CreateContainer whose daemon SIGKILLs itself at ``point``; the flow and the request."""
    flow = make_flow(pods)
    restart(pods, {faults.ENV: point})
    flow.call("RunPodSandbox", flow.request("RunPodSandbox"))
    request = flow.request("CreateContainer")
    with pytest.raises(grpc.RpcError) as info:
        flow.call("CreateContainer", request)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    assert pods.daemon.proc is not None and pods.daemon.proc.wait(60) == -signal.SIGKILL
    return flow, request


def retry_create_and_finish(flow: Flow, request: api_pb2.CreateContainerRequest) -> None:
    """The retried CreateContainer makes the container; the rest of the sequence removes everything."""
    flow.call("CreateContainer", request)
    listed = flow.containers()
    assert [c.id for c in listed] == [flow.ids["ctr"]] and listed[0].state == api_pb2.CONTAINER_CREATED
    for later in SEQUENCE[SEQUENCE.index("CreateContainer") + 1:]:
        flow.call(later, flow.request(later))
    assert flow.sandboxes() == [] and flow.containers() == []


def test_a_create_killed_before_its_record_landed_leaves_nothing(pods: Pods) -> None:
    """CreateContainer writes its CREATING record beside the bundle build
    (cri/server/container_create.py), so a daemon killed before the write
    lands leaves a bundle dir, a snapshot and a rootfs mount that no record
    names.  Made here for certain: killed at CreateContainer/mounted, with
    the record file removed if it had landed.  The restart removes them as
    orphans (cri/restart.py, assumption 7), and the retry makes the container."""
    flow, request = create_killed_at(pods, "CreateContainer/mounted")
    for record in (Path(pods.daemon.config["root_dir"]) / "containers").glob("*.json"):
        record.unlink()
    bundles = list((Path(pods.daemon.config["state_dir"]) / "containers").iterdir())
    assert len(bundles) == 1, bundles
    orphan = bundles[0]
    upper = rootfs_upper_dir(orphan / "rootfs")  # the snapshot's dir (its metadata comes later)
    assert upper.is_dir()
    snapshots = Path(pods.daemon.config["root_dir"]) / "snapshots" / "metadata.json"

    restart(pods, {})
    assert not orphan.exists()
    assert str(orphan) not in Path("/proc/self/mountinfo").read_text()
    assert not upper.parent.exists()
    assert orphan.name not in json.loads(snapshots.read_text())["active"]
    assert flow.containers() == []
    retry_create_and_finish(flow, request)


def rootfs_upper_dir(rootfs: Path) -> Path:
    """The overlay upper dir of the rootfs mounted at ``rootfs`` (<snapshots>/<n>/fs)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(rootfs):
            options = line.split(" - ", 1)[1].split()[2]
            return Path(next(o for o in options.split(",") if o.startswith("upperdir="))[len("upperdir="):])
    raise AssertionError(f"{rootfs} is not mounted")


def test_a_create_killed_between_its_record_and_its_snapshot_metadata_is_rolled_back(pods: Pods) -> None:
    """CreateContainer writes the CREATED record and the snapshot's metadata
    side by side and answers after both.  A daemon killed with the record on
    disk and the snapshot not in the metadata (made here for certain: killed
    after both, the snapshot then taken out of metadata.json) is rolled back
    at the restart: no container, no mount, no snapshot dir; the retry works."""
    flow, request = create_killed_at(pods, "CreateContainer/created")
    (bundle,) = list((Path(pods.daemon.config["state_dir"]) / "containers").iterdir())
    upper = rootfs_upper_dir(bundle / "rootfs")
    metadata = Path(pods.daemon.config["root_dir"]) / "snapshots" / "metadata.json"
    doc = json.loads(metadata.read_text())
    del doc["active"][bundle.name]
    metadata.write_text(json.dumps(doc))

    restart(pods, {})
    assert flow.containers() == []
    assert not bundle.exists() and not upper.parent.exists()
    assert str(bundle) not in Path("/proc/self/mountinfo").read_text()
    retry_create_and_finish(flow, request)


def test_a_run_killed_before_its_snapshot_metadata_landed_is_rolled_back(pods: Pods) -> None:
    """RunPodSandbox writes the pause snapshot's metadata while it makes the
    rest of the pod and saves READY after it.  A daemon killed with the pod
    INIT and the snapshot not in the metadata (made here for certain: killed
    with the pause container started, the snapshot then taken out of
    metadata.json) is rolled back at the restart: no pod, mount, snapshot dir
    or pod dir; the retried RunPodSandbox makes a new pod."""
    flow = make_flow(pods)
    restart(pods, {faults.ENV: "RunPodSandbox/pause-started"})
    request = flow.request("RunPodSandbox")
    with pytest.raises(grpc.RpcError) as info:
        flow.call("RunPodSandbox", request)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    assert pods.daemon.proc is not None and pods.daemon.proc.wait(60) == -signal.SIGKILL
    (pod_dir,) = list((Path(pods.daemon.config["state_dir"]) / "sandboxes").iterdir())
    upper = rootfs_upper_dir(pod_dir / "bundle" / "rootfs")
    metadata = Path(pods.daemon.config["root_dir"]) / "snapshots" / "metadata.json"
    doc = json.loads(metadata.read_text())
    doc["active"].pop(pod_dir.name, None)
    metadata.write_text(json.dumps(doc))

    restart(pods, {})
    assert flow.sandboxes() == []
    assert not pod_dir.exists() and not upper.parent.exists()
    assert str(pod_dir) not in Path("/proc/self/mountinfo").read_text()
    flow.call("RunPodSandbox", request)
    assert [p.id for p in flow.sandboxes()] == [flow.ids["pod"]] != [pod_dir.name]
    for later in SEQUENCE[1:]:
        flow.call(later, flow.request(later))
    assert flow.sandboxes() == [] and flow.containers() == []


IMAGE_POINTS = sorted(p for p in faults.POINTS if p.split("/")[0] in ("PullImage", "RemoveImage"))


@pytest.mark.parametrize("point", IMAGE_POINTS)
def test_image_call_interrupted_by_a_daemon_kill_succeeds_when_retried(pods: Pods, point: str) -> None:
    """A pull killed after its blobs are stored or a layer is unpacked lists
    nothing half-made, and its retry completes it; a removal killed after the
    record went answers OK on retry and leaves no blob or snapshot of the
    image (restart's GC takes them)."""
    rpc = point.split("/")[0]
    ref = "busybox"
    if rpc == "RemoveImage":
        pods.daemon.pull(ref)
    restart(pods, {faults.ENV: point})
    with pods.daemon.channel() as ch:
        images = pods.daemon.images(ch)
        request: Any = (api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)) if rpc == "PullImage"
                        else api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=ref)))
        with pytest.raises(grpc.RpcError) as info:
            getattr(images, rpc)(request, timeout=120)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
    assert pods.daemon.proc is not None and pods.daemon.proc.wait(60) == -signal.SIGKILL
    restart(pods, {})
    root = Path(pods.daemon.config["root_dir"])
    # Layers unpacked while the pull downloaded (staged, not committed) are gone too.
    assert not [p.name for p in (root / "snapshots" / "snapshots").iterdir() if p.name.startswith(".")]
    with pods.daemon.channel() as ch:
        images = pods.daemon.images(ch)
        assert list(images.ListImages(api_pb2.ListImagesRequest()).images) == []
        getattr(images, rpc)(request, timeout=120)
        listed = list(images.ListImages(api_pb2.ListImagesRequest()).images)
    if rpc == "PullImage":
        assert len(listed) == 1 and any(t.endswith("busybox:latest") for t in listed[0].repo_tags)
        assert pods.crictl("exec", "-s", start_one(pods), "echo", "ok") == "ok"
    else:
        assert listed == []
        assert json.loads((root / "snapshots" / "metadata.json").read_text())["committed"] == {}
        assert not any((root / "content" / "blobs" / "sha256").iterdir())
    assert not any((root / "content" / "ingest").iterdir())


def start_one(pods: Pods) -> str:
    pod, pod_cfg = pods.run_pod("afterpull")
    cid = pods.crictl("create", pod, pods.write("c", container_config("c", ["sleep", "1000"])), pod_cfg)
    pods.crictl("start", cid)
    return cid

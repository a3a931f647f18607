"""Image volumes (a CRI Mount with ``image`` set) through crictl: the image's files appear read-only
in the container (a multi-layer image with its whiteouts, a sub path, a one-layer image), survive a
daemon restart, and go with the container; a missing image is NOT_FOUND and a bad sub path
INVALID_ARGUMENT, both naming the field, with nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from google.protobuf import json_format
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root
LAYERS3 = "127.0.0.1:5000/layers3:latest"


def active_snapshots(pods: Pods) -> set[str]:
    doc = json.loads((pods.daemon.root / "snapshots" / "metadata.json").read_text())
    return set(doc["active"])


def image_mount(path: str, image: str, sub_path: str = "") -> dict[str, object]:
    return {"container_path": path, "image": {"image": image}, "image_sub_path": sub_path, "readonly": True}


def test_image_volumes_are_read_only_views_of_the_image(pods: Pods) -> None:
    """/vol is layers3 as its three layers make it (a whiteout hides a file, an opaque dir hides the
    lower content), /sub its data/ dir, /bb the one-layer busybox; all read-only; the views stay
    across a daemon restart and are gone with the container."""
    pods.daemon.pull("busybox")
    layers3_id = pods.daemon.pull(LAYERS3)
    pod, pod_cfg = pods.run_pod("imgvol")
    cfg = container_config("c", ["sleep", "1000"], mounts=[
        image_mount("/vol", layers3_id), image_mount("/sub", LAYERS3, "data"), image_mount("/bb", "busybox")])
    cid = pods.crictl("create", pod, pods.write("c", cfg), pod_cfg)
    pods.crictl("start", cid)
    out = pods.crictl("exec", "-s", cid, "sh", "-c",
                      "cat /vol/etc/keep-me; ls /vol/etc/remove-me 2>&1; ls /vol/data; ls /sub; "
                      "test -x /bb/bin/busybox && echo busybox; touch /vol/x /sub/x /bb/x 2>&1 | grep -c Read-only")
    assert out.splitlines() == ["kept", "ls: /vol/etc/remove-me: No such file or directory", "new", "new", "busybox",
                                "3"], out
    views = {k for k in active_snapshots(pods) if k.startswith(f"{cid}/")}
    assert views == {f"{cid}/image-mount/0", f"{cid}/image-mount/1", f"{cid}/image-mount/2"}
    status = json.loads(pods.crictl("inspect", cid))["status"]
    assert [m.get("image", {}).get("image") for m in status["mounts"]] == [layers3_id, LAYERS3, "busybox"]

    pods.daemon.stop()
    pods.daemon.start()
    assert views <= active_snapshots(pods), "recovery removed a live container's image volume"
    assert pods.crictl("exec", "-s", cid, "cat", "/sub/new") == "only file left in data"
    pods.crictl("rm", "-f", cid)
    assert not {k for k in active_snapshots(pods) if k.startswith(f"{cid}/")}
    assert not [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if cid in line]


def test_image_volume_errors_name_the_field(pods: Pods) -> None:
    """An image that is not here: NOT_FOUND (the runtime does not pull it; kubelet does, by the volume's
    pull policy); a sub path outside the image or missing in it: INVALID_ARGUMENT; nothing is left."""
    pods.daemon.pull("busybox")
    pods.daemon.pull(LAYERS3)
    pod, pod_cfg = pods.run_pod("imgvolbad")
    sandbox = json_format.ParseDict(json.loads(Path(pod_cfg).read_text()), api_pb2.PodSandboxConfig())
    before = active_snapshots(pods)
    cases = [
        ([image_mount("/v", "127.0.0.1:5000/never-pulled:1")], grpc.StatusCode.NOT_FOUND,
         "config.mounts[0].image.image: image '127.0.0.1:5000/never-pulled:1' not found"),
        ([image_mount("/a", "busybox"), image_mount("/v", LAYERS3, "../etc")], grpc.StatusCode.INVALID_ARGUMENT,
         "config.mounts[1].image_sub_path: '../etc' must not contain '..'"),
        ([image_mount("/a", "busybox"), image_mount("/v", LAYERS3, "data/old-a")], grpc.StatusCode.INVALID_ARGUMENT,
         "config.mounts[1].image_sub_path: 'data/old-a' does not exist in the image"),
        ([{"container_path": "/v", "host_path": "/tmp", "image": {"image": "busybox"}}], grpc.StatusCode.INVALID_ARGUMENT,
         "config.mounts[0].host_path: an image volume takes no host path"),
    ]
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        for i, (mounts, code, message) in enumerate(cases):
            config = json_format.ParseDict(container_config(f"c{i}", ["true"], mounts=mounts), api_pb2.ContainerConfig())
            with pytest.raises(grpc.RpcError) as info:
                rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=config, sandbox_config=sandbox))
            assert (info.value.code(), info.value.details()[:len(message)]) == (code, message), info.value.details()
    assert active_snapshots(pods) == before
    assert pods.crictl("ps", "-a", "-q") == ""

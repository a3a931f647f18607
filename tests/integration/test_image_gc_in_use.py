"""RemoveImage of an image whose layers back a running container.

What must hold (containerd's leases are the model): the image's record goes
at once and RemoveImage answers OK; the snapshots the container's rootfs is
built on stay while it exists, also across a daemon restart (whose startup
GC must not trip over them); they and the image's blobs are collected once
the container and its pod are removed.  No call fails after it changed
something, so there is never a record removed and its GC failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root


def committed_chains(pods: Pods) -> set[str]:
    doc = json.loads((Path(pods.daemon.config["root_dir"]) / "snapshots" / "metadata.json").read_text())
    return set(doc["committed"])


def image_ids(pods: Pods) -> set[str]:
    with pods.daemon.channel() as ch:
        return {i.id for i in pods.daemon.images(ch).ListImages(api_pb2.ListImagesRequest()).images}


def test_remove_image_used_by_a_running_container(pods: Pods) -> None:
    pod, pod_cfg = pods.run_pod("gc")
    pause_only = committed_chains(pods)
    pods.daemon.pull("busybox")
    with pods.daemon.channel() as ch:
        busybox = pods.daemon.images(ch).ImageStatus(api_pb2.ImageStatusRequest(
            image=api_pb2.ImageSpec(image="busybox"))).image
    cid = pods.crictl("create", pod, pods.write("c", container_config("c", ["sleep", "1000"])), pod_cfg)
    pods.crictl("start", cid)
    before = committed_chains(pods)

    with pods.daemon.channel() as ch:
        pods.daemon.images(ch).RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=busybox.id)))
    assert busybox.id not in image_ids(pods)
    assert committed_chains(pods) == before  # the container's layers stay
    assert pods.crictl("exec", "-s", cid, "echo", "alive") == "alive"

    pods.daemon.stop()
    pods.daemon.start()  # startup GC sees the snapshots in use and keeps them
    assert committed_chains(pods) == before
    assert json.loads(pods.crictl("inspect", cid))["status"]["state"] == "CONTAINER_RUNNING"

    assert before > pause_only
    pods.crictl("rm", "-f", cid)
    assert committed_chains(pods) == pause_only  # busybox's layers went with their last user
    blobs = Path(pods.daemon.config["root_dir"]) / "content" / "blobs" / "sha256"
    assert busybox.id.split(":")[1] not in {p.name for p in blobs.iterdir()}
    pods.crictl("rmp", "-f", pod)

"""Image garbage collection and ImageFsInfo under load, against a real daemon.

The rules (kubelet's image GC removes images with RemoveImage and watches
ImageFsInfo): an image is whole on disk from the moment PullImage answers
until its own RemoveImage, whatever other pulls, removals and containers do
beside it, even when they share its layers; RemoveImage answers once the
space is free; ImageFsInfo never fails under that load, and once things are
quiet it reports exactly what the image directories take, as du counts it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import REGISTRY, daemon_factory, test_registry  # noqa: F401 (fixtures)
from dockyard.cri.disk_usage import tree_usage
from google.protobuf import json_format
from runtime_service_fixture import Pods, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

# Two images with their own ids that share busybox's base layer (and so its chain); the test
# registry's other variants of busybox (v2s2, zstd, multi's linux/amd64) are busybox's id itself.
IMAGES = (f"{REGISTRY}/busybox:latest", f"{REGISTRY}/layers3:latest")
ROUNDS = 6


def on_disk(root: Path) -> tuple[set[str], set[str]]:
    """(blob digests, committed chain ids) the daemon's stores hold right now."""
    blobs = {f"sha256:{p.name}" for p in (root / "content" / "blobs" / "sha256").iterdir()}
    chains = set(json.loads((root / "snapshots" / "metadata.json").read_text())["committed"])
    return blobs, chains


def image_parts(root: Path, image_id: str) -> tuple[set[str], set[str]]:
    """(blobs, chains) the image's record names, read from the image store's file."""
    doc = json.loads((root / "images" / "images.json").read_text())
    [record] = [r for r in doc["images"] if r["id"] == image_id]
    return {record["id"], *record["layers"], *record["blobs"]}, set(record["chain_ids"])


def measured(root: Path) -> tuple[int, int]:
    parts = [tree_usage(str(root / d)) for d in ("content", "snapshots", "images")]
    return sum(b for b, _ in parts), sum(i for _, i in parts)


def fs_info(pods: Pods) -> api_pb2.FilesystemUsage:
    with pods.daemon.channel() as ch:
        [usage] = pods.daemon.images(ch).ImageFsInfo(api_pb2.ImageFsInfoRequest()).image_filesystems
    return usage


def test_concurrent_pulls_removes_and_containers(pods: Pods) -> None:
    """Two workers, each owning one image that shares its base layer with the other's, loop:
    pull, check the image whole on disk, create and start a container of it, remove the image
    (its own config blob is gone when RemoveImage answers), exec in the container, remove the
    container. A third creates and removes containers of the pause image meanwhile, a fourth
    calls ImageFsInfo and ImageStatus of every listed image; none fails. At the end only the pause
    image's blobs and snapshots are left."""
    root = pods.daemon.root
    pod, pod_cfg = pods.run_pod("gcload")
    sandbox_config = json_format.Parse(Path(pod_cfg).read_text(), api_pb2.PodSandboxConfig())
    pause_blobs, pause_chains = on_disk(root)
    failures: list[str] = []
    done = threading.Event()

    def worker(index: int, ref: str) -> None:
        try:
            with pods.daemon.channel() as ch:
                images, runtime = pods.daemon.images(ch), pods.daemon.runtime(ch)
                for round_ in range(ROUNDS):
                    image_id = images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref)),
                                                timeout=120).image_ref
                    blobs, chains = image_parts(root, image_id)
                    have_blobs, have_chains = on_disk(root)
                    if not (blobs <= have_blobs and chains <= have_chains):
                        failures.append(f"{ref} round {round_}: pulled image not whole: missing blobs "
                                        f"{blobs - have_blobs}, chains {chains - have_chains}")
                        return
                    config = api_pb2.ContainerConfig(
                        metadata=api_pb2.ContainerMetadata(name=f"w{index}", attempt=round_),
                        image=api_pb2.ImageSpec(image=image_id), command=["sleep", "1000"])
                    cid = runtime.CreateContainer(api_pb2.CreateContainerRequest(
                        pod_sandbox_id=pod, config=config, sandbox_config=sandbox_config)).container_id
                    runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
                    images.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image_id)))
                    if (root / "content" / "blobs" / "sha256" / image_id.split(":")[1]).exists():
                        # its config blob is its own: RemoveImage answers when it is collected
                        failures.append(f"{ref} round {round_}: RemoveImage answered before its GC")
                    status = images.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image_id)))
                    if status.HasField("image"):
                        failures.append(f"{ref} round {round_}: still listed after RemoveImage")
                    out = runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["cat", "/bin/busybox"],
                                                                   timeout=30))
                    if out.exit_code != 0 or len(out.stdout) < 100_000:
                        failures.append(f"{ref} round {round_}: the container lost its rootfs: {out.stderr!r}")
                    runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0))
                    runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
        except grpc.RpcError as err:
            failures.append(f"{ref}: {err.code().name}: {err.details()}")
        except Exception as err:  # a thread's failure must reach the test
            failures.append(f"{ref}: {type(err).__name__}: {err}")

    def churner() -> None:
        pause = pods.daemon.pull("registry.k8s.io/pause:3.10")
        try:
            with pods.daemon.channel() as ch:
                runtime = pods.daemon.runtime(ch)
                attempt = 0
                while not done.is_set() or attempt == 0:
                    config = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="churn", attempt=attempt),
                                                     image=api_pb2.ImageSpec(image=pause))
                    cid = runtime.CreateContainer(api_pb2.CreateContainerRequest(
                        pod_sandbox_id=pod, config=config, sandbox_config=sandbox_config)).container_id
                    runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
                    runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0))
                    runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
                    attempt += 1
        except grpc.RpcError as err:
            failures.append(f"churner: {err.code().name}: {err.details()}")
        except Exception as err:
            failures.append(f"churner: {type(err).__name__}: {err}")

    def watcher() -> None:
        calls = 0
        with pods.daemon.channel() as ch:
            images = pods.daemon.images(ch)
            while not done.is_set() or calls == 0:
                try:
                    images.ImageFsInfo(api_pb2.ImageFsInfoRequest())
                    for image in images.ListImages(api_pb2.ListImagesRequest()).images:
                        images.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image.id)))
                except grpc.RpcError as err:
                    failures.append(f"watcher: {err.code().name}: {err.details()}")
                    return
                except Exception as err:
                    failures.append(f"watcher: {type(err).__name__}: {err}")
                    return
                calls += 1

    threads = [threading.Thread(target=worker, args=(i, ref)) for i, ref in enumerate(IMAGES)]
    helpers = [threading.Thread(target=watcher), threading.Thread(target=churner)]
    for t in helpers + threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    done.set()
    for t in helpers:
        t.join(timeout=120)
    assert not failures, failures
    assert on_disk(root) == (pause_blobs, pause_chains)
    pods.crictl("rmp", "-f", pod)


def test_imagefs_info_is_what_the_image_dirs_take(pods: Pods) -> None:
    """Quiet, ImageFsInfo's bytes and inodes equal a du-like walk of the content store, the
    snapshots (writable layers included) and the image records; a container writing 4 MiB
    into its rootfs shows in it; its mountpoint is the snapshotter's root, an existing directory
    on the filesystem that holds the images."""
    root = pods.daemon.root
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("fsinfo")
    before = fs_info(pods)
    assert (before.used_bytes.value, before.inodes_used.value) == measured(root)
    mountpoint = Path(before.fs_id.mountpoint)
    assert mountpoint == root / "snapshots" and mountpoint.is_dir()
    assert os.stat(mountpoint).st_dev == os.stat(root / "content").st_dev

    cfg: dict[str, Any] = {"metadata": {"name": "writer"}, "image": {"image": "busybox"},
                           "command": ["sleep", "1000"], "linux": {}}
    cid = pods.crictl("create", pod, pods.write("writer", cfg), pod_cfg)
    pods.crictl("start", cid)
    pods.crictl("exec", "-s", cid, "dd", "if=/dev/urandom", "of=/big", "bs=1M", "count=4")
    after = fs_info(pods)
    assert (after.used_bytes.value, after.inodes_used.value) == measured(root)
    assert after.used_bytes.value - before.used_bytes.value >= 4 << 20
    # crictl shows the same numbers
    [crictl_fs] = json.loads(pods.crictl("imagefsinfo", "-o", "json"))["status"]["imageFilesystems"]
    assert (int(crictl_fs["usedBytes"]["value"]), int(crictl_fs["inodesUsed"]["value"])) == measured(root)
    assert crictl_fs["fsId"]["mountpoint"] == str(mountpoint)
    pods.crictl("rmp", "-f", pod)

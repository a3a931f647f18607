"""dockyardd's ImageService end to end: crictl and a gRPC client against a real
daemon pulling from the loopback test registry."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import Daemon, daemon_factory, dockyardd, test_registry  # noqa: F401 (fixtures)
from prometheus_client.parser import text_string_to_metric_families

BUSYBOX = "docker.io/library/busybox:latest"


def crictl_json(d: Daemon, *args: str) -> Any:
    return json.loads(d.crictl(args[0], "-o", "json", *args[1:]).stdout)


def blob_count(d: Daemon) -> int:
    blobs = d.root / "content" / "blobs" / "sha256"
    return len(list(blobs.iterdir())) if blobs.exists() else 0


def test_crictl_pull_images_inspecti_rmi(dockyardd: Daemon, test_registry: str) -> None:
    """crictl pull/images/inspecti/rmi: the short name normalises to docker.io/library,
    the image id is the config digest, and rmi removes every blob and snapshot."""
    out = dockyardd.crictl("pull", "busybox").stdout
    listed = crictl_json(dockyardd, "images")["images"]
    assert len(listed) == 1
    image = listed[0]
    assert image["repoTags"] == [BUSYBOX]
    assert image["id"] in out
    assert image["repoDigests"][0].startswith("docker.io/library/busybox@sha256:")
    config_blob = dockyardd.root / "content" / "blobs" / "sha256" / image["id"].removeprefix("sha256:")
    assert "sha256:" + hashlib.sha256(config_blob.read_bytes()).hexdigest() == image["id"]
    inspected = crictl_json(dockyardd, "inspecti", "busybox")
    assert inspected["status"]["id"] == image["id"]
    assert inspected["info"]["imageSpec"]["rootfs"]["type"] == "layers"
    assert blob_count(dockyardd) >= 3
    dockyardd.crictl("rmi", "busybox")
    assert crictl_json(dockyardd, "images")["images"] == []
    assert blob_count(dockyardd) == 0
    assert list((dockyardd.root / "snapshots" / "snapshots").iterdir()) == [], "snapshots left after rmi"


def test_crictl_imagefsinfo(dockyardd: Daemon, test_registry: str) -> None:
    """imagefsinfo reports the snapshot root as mountpoint and grows after a pull."""
    before = crictl_json(dockyardd, "imagefsinfo")["status"]["imageFilesystems"][0]
    dockyardd.crictl("pull", "busybox")
    after = crictl_json(dockyardd, "imagefsinfo")["status"]["imageFilesystems"][0]
    assert after["fsId"]["mountpoint"].startswith(str(dockyardd.root))
    assert int(after["usedBytes"]["value"]) > int(before["usedBytes"]["value"]) + 500_000
    assert int(after["inodesUsed"]["value"]) > int(before["inodesUsed"]["value"])


def test_version_and_status(dockyardd: Daemon) -> None:
    """Version names dockyard and CRI v1; Status: runtime ready, network not ready (no CNI yet)."""
    with dockyardd.channel() as ch:
        rt = dockyardd.runtime(ch)
        version = rt.Version(api_pb2.VersionRequest(), timeout=10)
        status = rt.Status(api_pb2.StatusRequest(verbose=True), timeout=10)
    assert version.runtime_name == "dockyard"
    assert version.runtime_api_version == "v1"
    assert version.runtime_version
    conditions = {c.type: c for c in status.status.conditions}
    assert conditions["RuntimeReady"].status is True
    assert conditions["NetworkReady"].status is False
    assert conditions["NetworkReady"].reason == "NetworkPluginNotReady"


def test_every_unary_cri_rpc_is_served(dockyardd: Daemon) -> None:
    """Every unary RPC of CRI v1's two services is served: called with an empty
    request, none answers UNIMPLEMENTED (an empty request may well be refused,
    as INVALID_ARGUMENT or NOT_FOUND). The server-streaming ones are served by
    their own tests (GetContainerEvents, StreamPodSandboxMetrics ...)."""
    unserved = []
    with dockyardd.channel() as ch:
        for service in ("RuntimeService", "ImageService"):
            for method in api_pb2.DESCRIPTOR.services_by_name[service].methods:
                if method.server_streaming or method.client_streaming:
                    continue
                request_class = getattr(api_pb2, method.input_type.name)
                response_class = getattr(api_pb2, method.output_type.name)
                call = ch.unary_unary(f"/runtime.v1.{service}/{method.name}",
                                      request_serializer=request_class.SerializeToString,
                                      response_deserializer=response_class.FromString)
                try:
                    call(request_class(), timeout=30)
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                        unserved.append(f"{service}.{method.name}: {e.details()}")
    assert unserved == []


def test_image_status_verbose_and_remove_by_digest(dockyardd: Daemon, test_registry: str) -> None:
    """ImageStatus(verbose) carries the config JSON; RemoveImage by repo digest removes the
    image, after which ImageStatus is empty (not an error) and RemoveImage is idempotent."""
    ref = dockyardd.pull(f"{test_registry}/layers3:latest")
    with dockyardd.channel() as ch:
        stub = dockyardd.images(ch)
        st = stub.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref), verbose=True), timeout=10)
        assert st.image.id == ref
        info = json.loads(st.info["info"])
        assert len(info["imageSpec"]["rootfs"]["diff_ids"]) == 3
        digest_ref = st.image.repo_digests[0]
        assert digest_ref.startswith(f"{test_registry}/layers3@sha256:")
        stub.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=digest_ref)), timeout=30)
        gone = stub.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref)), timeout=10)
        assert not gone.HasField("image")
        stub.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=digest_ref)), timeout=30)
    assert blob_count(dockyardd) == 0


def test_pause_image_is_pinned(dockyardd: Daemon, test_registry: str) -> None:
    """registry.k8s.io/pause:3.10 (the configured sandbox image) pulls through the mirror and is pinned."""
    ref = dockyardd.pull("registry.k8s.io/pause:3.10")
    with dockyardd.channel() as ch:
        st = dockyardd.images(ch).ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref)), timeout=10)
    assert st.image.pinned
    assert list(st.image.repo_tags) == ["registry.k8s.io/pause:3.10"]


def test_metrics_endpoint(dockyardd: Daemon, test_registry: str) -> None:
    """/metrics parses with prometheus_client and carries RPC and pull counters with labels."""
    dockyardd.pull("busybox")
    with dockyardd.channel() as ch, pytest.raises(grpc.RpcError):
        dockyardd.images(ch).PullImage(
            api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=f"{test_registry}/no-such-image:1")), timeout=60)
    families = {f.name: f for f in text_string_to_metric_families(dockyardd.scrape())}
    handled = {(s.labels["method"], s.labels["grpc_code"]): s.value
               for s in families["dockyard_grpc_server_handled"].samples if s.name.endswith("_total")}
    assert handled[("PullImage", "OK")] == 1
    assert handled[("PullImage", "NOT_FOUND")] == 1
    errors = {(s.labels["method"], s.labels["grpc_code"]) for s in families["dockyard_grpc_server_errors"].samples}
    assert ("PullImage", "NOT_FOUND") in errors
    assert any(s.name.endswith("_count") and s.labels["method"] == "PullImage"
               for s in families["dockyard_grpc_server_handling_seconds"].samples)
    successes = [s.value for s in families["dockyard_image_pulls_success"].samples if s.name.endswith("_total")]
    assert successes == [1]
    failures = {s.labels["reason"]: s.value for s in families["dockyard_image_pulls_failure"].samples
                if s.name.endswith("_total")}
    assert failures == {"not_found": 1}
    pulled = [s.value for s in families["dockyard_image_pulls_bytes"].samples if s.name.endswith("_total")]
    assert pulled[0] > 500_000
    assert [s.value for s in families["dockyard_image_pulls_in_progress"].samples] == [0]


def test_images_survive_restart(daemon_factory: Any, test_registry: str) -> None:
    """Pulled images, their ids and tags are still there after SIGTERM and a new start."""
    d: Daemon = daemon_factory().start()
    ref = d.pull("busybox")
    d.pull("registry.k8s.io/pause:3.10")
    assert d.stop() == 0
    d.start()
    listed = {i["id"]: i["repoTags"] for i in crictl_json(d, "images")["images"]}
    assert listed[ref] == [BUSYBOX]
    assert len(listed) == 2
    # and the second pull reuses everything already present
    assert d.pull("busybox") == ref


def test_concurrent_pulls_share_one_download(dockyardd: Daemon, test_registry: str) -> None:
    """Two PullImage calls of the same image at once both succeed with the same id,
    and the daemon fetched and unpacked it once (one pull in the metrics, ~one image of bytes)."""
    import threading

    ref = f"{test_registry}/big:latest"
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(dockyardd.pull(ref, timeout=300))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 2 and results[0] == results[1]
    families = {f.name: f for f in text_string_to_metric_families(dockyardd.scrape())}
    handled = {(s.labels["method"], s.labels["grpc_code"]): s.value
               for s in families["dockyard_grpc_server_handled"].samples if s.name.endswith("_total")}
    assert handled[("PullImage", "OK")] == 2
    assert [s.value for s in families["dockyard_image_pulls_success"].samples if s.name.endswith("_total")] == [1]
    pulled = [s.value for s in families["dockyard_image_pulls_bytes"].samples if s.name.endswith("_total")][0]
    with dockyardd.channel() as ch:
        size = dockyardd.images(ch).ImageStatus(
            api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref)), timeout=10).image.size
    assert pulled < 1.2 * size

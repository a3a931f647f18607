"""dockyardd against a misbehaving registry (the stub registry of registry_fixture):
each fault fails PullImage with its gRPC code and a message naming the image,
the failure is counted under its reason, nothing is kept, and the daemon stays
healthy."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import Daemon, daemon_factory  # noqa: F401 (fixture)
from prometheus_client.parser import text_string_to_metric_families
from registry_fixture import PASSWORD, USER, StubRegistry, _stub_server, registries, stub_registry  # noqa: F401

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def busybox_layer(upstream: str) -> str:
    req = urllib.request.Request(f"http://{upstream}/v2/busybox/manifests/latest",
                                 headers={"Accept": OCI_MANIFEST + ", application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["layers"][0]["digest"])


def failure_reasons(d: Daemon) -> dict[str, float]:
    for family in text_string_to_metric_families(d.scrape()):
        if family.name == "dockyard_image_pulls_failure":
            return {s.labels["reason"]: s.value for s in family.samples if s.name.endswith("_total")}
    return {}


def expect_failure(d: Daemon, ref: str, code: grpc.StatusCode, reason: str,
                   auth: api_pb2.AuthConfig | None = None) -> str:
    with d.channel() as ch, pytest.raises(grpc.RpcError) as info:
        d.images(ch).PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref), auth=auth), timeout=120)
    assert info.value.code() == code, info.value.details()
    assert ref.rsplit(":", 1)[0] in info.value.details()
    assert failure_reasons(d).get(reason) == 1
    # keeps nothing, stays healthy
    assert d.ingest_files() == []
    blobs = d.root / "content" / "blobs" / "sha256"
    assert not blobs.exists() or list(blobs.iterdir()) == []
    with d.channel() as ch:
        assert d.runtime(ch).Version(api_pb2.VersionRequest(), timeout=10).runtime_name == "dockyard"
        assert not d.images(ch).ListImages(api_pb2.ListImagesRequest(), timeout=10).images
    return str(info.value.details())


@pytest.fixture
def daemon(daemon_factory: Any) -> Daemon:
    d: Daemon = daemon_factory(registry={"image_pull_progress_timeout": "2s", "retries": 1})
    return d.start()


def test_corrupt_layer_is_digest_mismatch(daemon: Daemon, stub_registry: StubRegistry) -> None:
    """A layer whose bytes do not match its digest: INVALID_ARGUMENT, reason digest_mismatch."""
    stub_registry.faults[busybox_layer(stub_registry.upstream)] = "corrupt"
    expect_failure(daemon, f"{stub_registry.address}/busybox:latest", grpc.StatusCode.INVALID_ARGUMENT, "digest_mismatch")


def test_registry_500_is_unavailable(daemon: Daemon, stub_registry: StubRegistry) -> None:
    """A registry answering 500 for a layer (after retries): UNAVAILABLE, reason registry_error."""
    stub_registry.faults[busybox_layer(stub_registry.upstream)] = "500"
    expect_failure(daemon, f"{stub_registry.address}/busybox:latest", grpc.StatusCode.UNAVAILABLE, "registry_error")


def test_stalled_layer_hits_no_progress_timeout(daemon: Daemon, stub_registry: StubRegistry) -> None:
    """A layer download that stops sending is cancelled by image_pull_progress_timeout: DEADLINE_EXCEEDED."""
    stub_registry.faults[busybox_layer(stub_registry.upstream)] = "stall"
    expect_failure(daemon, f"{stub_registry.address}/busybox:latest", grpc.StatusCode.DEADLINE_EXCEEDED, "no_progress")


def test_unknown_manifest_media_type(daemon: Daemon, stub_registry: StubRegistry) -> None:
    """A manifest of a media type the daemon does not know: INVALID_ARGUMENT, reason bad_media_type."""
    stub_registry.manifests["busybox:weird"] = (b'{"schemaVersion":2,"mediaType":"application/x-weird"}', "application/x-weird")
    expect_failure(daemon, f"{stub_registry.address}/busybox:weird", grpc.StatusCode.INVALID_ARGUMENT, "bad_media_type")


def test_bearer_token_flow(daemon: Daemon, stub_registry: StubRegistry) -> None:
    """A registry asking for a bearer token: wrong credentials are UNAUTHENTICATED (no secret in the
    message), the right ones (CRI AuthConfig.auth, base64 user:password) pull."""
    stub_registry.require_bearer = True
    ref = f"{stub_registry.address}/busybox:latest"
    wrong = api_pb2.AuthConfig(username=USER, password="wrong-secret-plugh")
    details = expect_failure(daemon, ref, grpc.StatusCode.UNAUTHENTICATED, "unauthorized", auth=wrong)
    assert "plugh" not in details
    import base64

    right = api_pb2.AuthConfig(auth=base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    assert daemon.pull(ref, auth=right).startswith("sha256:")
    assert "plugh" not in daemon.log_text() and PASSWORD not in daemon.log_text()

"""dockyardd against a misbehaving registry (the stub registry of registry_fixture):
each fault fails PullImage with its gRPC code and a message naming the image,
the failure is counted under its reason, nothing is kept, and the daemon stays
healthy."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import Daemon, daemon_factory  # noqa: F401 (fixture)
from prometheus_client.parser import text_string_to_metric_families
from registry_fixture import (  # noqa: F401
    PASSWORD,
    USER,
    StubRegistry,
    _stub_server,
    registries,
    stub_registry,
)

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


def test_a_layer_download_cut_short_is_retried_and_unpacked_from_the_retry(daemon: Daemon, stub_registry: StubRegistry) -> None:
    """The layer's first download breaks half-way while the layer unpacks from
    its bytes: the pull retries it, unpacks what the retry brings, and keeps
    nothing of the first attempt (no ingest file, no staged dir, one snapshot)."""
    layer = busybox_layer(stub_registry.upstream)
    stub_registry.faults[layer] = "drop-once"
    assert daemon.pull(f"{stub_registry.address}/busybox:latest").startswith("sha256:")
    assert stub_registry.hits[f"/v2/busybox/blobs/{layer}"] == 2
    assert failure_reasons(daemon) == {}
    assert daemon.ingest_files() == []
    assert [str(p) for p in daemon.root.rglob("*") if p.name.startswith(".tmp-")] == []
    assert len(json.loads((daemon.root / "snapshots" / "metadata.json").read_text())["committed"]) == 1
    assert len(os.listdir(daemon.root / "snapshots" / "snapshots")) == 1


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


# --- layers the unpacker must refuse: the blob matches its digest, so only
# --- the unpack can catch them; the image is served whole by the stub.

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def serve_image(stub: StubRegistry, repo_tag: str, layer_blob: bytes, diff_id: str) -> str:
    """Serve a one-layer OCI image at ``repo_tag`` whose manifest gives the
    layer blob's true digest and size; returns the layer digest."""
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }).encode()
    layer_digest = sha256(layer_blob)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer_blob)}],
    }).encode()
    stub.blobs[sha256(config)] = config
    stub.blobs[layer_digest] = layer_blob
    stub.manifests[repo_tag] = (manifest, OCI_MANIFEST)
    return layer_digest


def tar_of(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, mode, 1_700_000_000
    return info


def innocent_tar() -> bytes:
    """A layer of a few files, big enough that half its gzip cuts a member's data."""
    payload = os.urandom(256 * 1024)  # incompressible: the gzip is as long as the tar
    return tar_of([
        (member("bin", tarfile.DIRTYPE, mode=0o755), None),
        (member("bin/tool", mode=0o755), payload),
        (member("etc", tarfile.DIRTYPE, mode=0o755), None),
        (member("etc/motd"), b"hello\n"),
    ])


def assert_nothing_kept(d: Daemon, layer: str) -> None:
    """No blob of the layer, no committed snapshot, no temp file or dir anywhere under the root."""
    assert not (d.root / "content" / "blobs" / "sha256" / layer.split(":", 1)[1]).exists()
    metadata = d.root / "snapshots" / "metadata.json"
    if metadata.exists():
        assert json.loads(metadata.read_text())["committed"] == {}
    snapshots = d.root / "snapshots" / "snapshots"
    assert not snapshots.exists() or sorted(os.listdir(snapshots)) == []
    temps = [str(p) for p in d.root.rglob("*") if p.name.startswith(".tmp-")]
    assert temps == []


def assert_recovers(d: Daemon, stub: StubRegistry) -> None:
    """A good pull right after works, and the metrics counted the failure and the success."""
    assert d.pull(f"{stub.address}/busybox:latest").startswith("sha256:")
    assert failure_reasons(d) == {"bad_layer": 1}
    successes = [s.value for f in text_string_to_metric_families(d.scrape())
                 if f.name == "dockyard_image_pulls_success" for s in f.samples if s.name.endswith("_total")]
    assert successes == [1]


def test_crafted_image_pulls_when_intact(daemon: Daemon, stub_registry: StubRegistry) -> None:
    """Control for the two tests below: the stub's crafted image pulls when its
    layer is whole and harmless, so their failures come from the layer alone."""
    tar = innocent_tar()
    serve_image(stub_registry, "crafted:ok", gzip.compress(tar, mtime=0), sha256(tar))
    assert daemon.pull(f"{stub_registry.address}/crafted:ok").startswith("sha256:")
    assert failure_reasons(daemon) == {}


@pytest.mark.parametrize("cut", ["half", "trailer"])
def test_truncated_gzip_layer_is_bad_layer(daemon: Daemon, stub_registry: StubRegistry, cut: str) -> None:
    """A gzip layer cut short -- in the middle of the deflate data, or only its
    8-byte CRC/size trailer -- whose manifest digest and size match the cut bytes
    (so the download verifies): the unpack refuses it, INVALID_ARGUMENT naming
    the layer, reason bad_layer; nothing is kept and the daemon pulls normally after."""
    tar = innocent_tar()
    gz = gzip.compress(tar, mtime=0)
    blob = gz[: len(gz) // 2] if cut == "half" else gz[:-8]
    layer = serve_image(stub_registry, f"trunc:{cut}", blob, sha256(tar))
    details = expect_failure(daemon, f"{stub_registry.address}/trunc:{cut}", grpc.StatusCode.INVALID_ARGUMENT, "bad_layer")
    assert layer in details and "truncated" in details, details
    assert_nothing_kept(daemon, layer)
    assert_recovers(daemon, stub_registry)


# Each attack: its members (relative links may use {up}, the ../ path from the
# unpack directory up to the test's tmp dir) and what its error must mention.
ATTACKS: dict[str, tuple[list[tuple[str, bytes, str, bytes | None]], str]] = {
    "dotdot-member": ([("../../escape", tarfile.REGTYPE, "", b"pwned\n")], "'..'"),
    "symlink-absolute-write-through": (
        [("evil", tarfile.SYMTYPE, "{outside}", None), ("evil/pwned", tarfile.REGTYPE, "", b"pwned\n")],
        "symlink",
    ),
    "symlink-relative-write-through": (
        [("evil", tarfile.SYMTYPE, "{up}outside", None), ("evil/pwned", tarfile.REGTYPE, "", b"pwned\n")],
        "symlink",
    ),
    "hardlink-dotdot": ([("link", tarfile.LNKTYPE, "../../../victim", None)], "'..'"),
    "hardlink-absolute": ([("link", tarfile.LNKTYPE, "{outside}/victim", None)], "not in the layer"),
    "hardlink-through-symlink": (
        [("evil", tarfile.SYMTYPE, "{outside}", None), ("link", tarfile.LNKTYPE, "evil/victim", None)],
        "symlink",
    ),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_malicious_tar_layer_is_refused(daemon: Daemon, stub_registry: StubRegistry, tmp_path: Path, attack: str) -> None:
    """A well-formed gzip tar whose members try to write or link outside the
    snapshot ('..' names, a symlink then a write or hardlink through it, a
    hardlink to an outside file): PullImage fails INVALID_ARGUMENT naming the
    layer, reason bad_layer; nothing is written or linked outside, nothing is
    kept, and the daemon pulls normally after."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("keep me\n")
    # Unpacks run in <root>/snapshots/snapshots/.tmp-*/fs; {up} climbs from there to tmp_path.
    up = "../" * (len((daemon.root / "snapshots" / "snapshots" / "x" / "fs").relative_to(tmp_path).parts))
    members, mention = ATTACKS[attack]
    tar = tar_of([
        (member("etc", tarfile.DIRTYPE, mode=0o755), None),
        (member("etc/motd"), b"hello\n"),
        *((member(name, kind, link.format(outside=outside, up=up)), data) for name, kind, link, data in members),
    ])
    layer = serve_image(stub_registry, f"evil:{attack}", gzip.compress(tar, mtime=0), sha256(tar))
    details = expect_failure(daemon, f"{stub_registry.address}/evil:{attack}", grpc.StatusCode.INVALID_ARGUMENT, "bad_layer")
    assert layer in details and mention in details, details
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert victim.stat().st_nlink == 1 and victim.read_text() == "keep me\n"
    assert [str(p) for p in tmp_path.rglob("*escape*")] == []
    assert_nothing_kept(daemon, layer)
    assert_recovers(daemon, stub_registry)

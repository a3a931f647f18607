"""Image archives (cri/image/archive): reading the stream into the content store, finding the
images and their names in either layout, and the errors that name the entry at fault.
The archives are made here with tarfile; the content store is a real one in a temp dir."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dockyard.cri.content.store import ContentStore
from dockyard.cri.errors import InvalidArgument
from dockyard.cri.image.archive import export, layout, reader
from dockyard.cri.image.platform import Platform
from dockyard.cri.image.reference import parse_reference
from dockyard.cri.snapshot.unpack import decompressed, sniff_compression

AMD64 = Platform("linux", "amd64")
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


LAYER = layer_tar({"hello": b"world"})
LAYER_GZ = gzip.compress(LAYER, mtime=0)


def config_for(*layers: bytes, arch: str = "amd64") -> bytes:
    return json.dumps({"architecture": arch, "os": "linux",
                       "rootfs": {"type": "layers", "diff_ids": [sha(gzip.decompress(l) if l[:2] == b"\x1f\x8b" else l)
                                                                  for l in layers]}}).encode()


def manifest_for(config: bytes, *layers: bytes) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": layout.OCI_MANIFEST,
                       "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
                       "layers": [{"mediaType": OCI_LAYER_GZ, "digest": sha(l), "size": len(l)} for l in layers]}).encode()


def descriptor(blob: bytes, media_type: str = layout.OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(blob), "size": len(blob), **extra}


def tar_of(members: list[tuple[str, Any]], compress: bool = False) -> bytes:
    """(name, bytes) files, (name, ("symlink"|"hardlink", target)) links, (name, "dir"|"fifo")."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, body in members:
            info = tarfile.TarInfo(name)
            if isinstance(body, bytes):
                info.size = len(body)
                t.addfile(info, io.BytesIO(body))
                continue
            if isinstance(body, tuple):
                info.type = tarfile.SYMTYPE if body[0] == "symlink" else tarfile.LNKTYPE
                info.linkname = body[1]
            else:
                info.type = tarfile.DIRTYPE if body == "dir" else tarfile.FIFOTYPE
            t.addfile(info)
    data = out.getvalue()
    return gzip.compress(data, mtime=0) if compress else data


def oci_archive(entries: list[dict[str, Any]], blobs: list[bytes], **kw: Any) -> bytes:
    members: list[tuple[str, Any]] = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("blobs", "dir")]
    members += [(f"blobs/sha256/{sha(b)[7:]}", b) for b in dict.fromkeys(blobs)]
    members.append(("index.json", json.dumps({"schemaVersion": 2, "manifests": entries}).encode()))
    return tar_of(members, **kw)


def read(store: ContentStore, archive: bytes) -> reader.Entries:
    return reader.read_archive(decompressed(io.BytesIO(archive), "archive"), store)


def images(store: ContentStore, archive: bytes, base_name: str = "", platform: Platform = AMD64) -> list[layout.ArchiveImage]:
    entries = read(store, archive)
    return layout.images_in(entries, store.read, lambda d: sniff_compression(store.read(d)[:8]), platform,
                            base_name, parse_reference)


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(str(tmp_path / "content"))


def one_image() -> tuple[bytes, bytes, bytes]:
    config = config_for(LAYER_GZ)
    return config, manifest_for(config, LAYER_GZ), LAYER_GZ


@pytest.mark.parametrize(
    ("annotations", "base_name", "names"),
    [
        ({"io.containerd.image.name": "docker.io/library/app:1"}, "", ["docker.io/library/app:1"]),
        ({"org.opencontainers.image.ref.name": "app:2"}, "", ["docker.io/library/app:2"]),
        ({"org.opencontainers.image.ref.name": "example.com/x/app:3"}, "", ["example.com/x/app:3"]),
        ({"org.opencontainers.image.ref.name": "latest"}, "", []),
        ({"org.opencontainers.image.ref.name": "v4"}, "example.com/app", ["example.com/app:v4"]),
        ({"io.containerd.image.name": "q.io/a:1", "org.opencontainers.image.ref.name": "1"}, "", ["q.io/a:1"]),
        ({}, "", []),
    ],
)
def test_oci_names(store: ContentStore, annotations: dict[str, str], base_name: str, names: list[str]) -> None:
    """Names come from io.containerd.image.name, else a whole-reference ref.name; a tag alone needs a base name."""
    config, manifest, layer = one_image()
    archive = oci_archive([descriptor(manifest, annotations=annotations)], [config, manifest, layer], compress=True)
    [image] = images(store, archive, base_name)
    assert image.names == names
    assert (image.config_digest, image.manifest_digest, image.manifest_in_archive) == (sha(config), sha(manifest), True)
    assert image.layers == (layout.Layer(sha(layer), OCI_LAYER_GZ, len(layer)),)
    assert image.diff_ids == (sha(LAYER),)


def test_oci_index_entries_and_platforms(store: ContentStore) -> None:
    """An entry that is an index gives the manifest for the platform; two entries naming one manifest
    are one image with both names; an entry for a platform the node cannot run is skipped."""
    config, manifest, layer = one_image()
    arm_config = config_for(LAYER_GZ, arch="arm64")
    arm_manifest = manifest_for(arm_config, LAYER_GZ)
    index = json.dumps({"schemaVersion": 2, "mediaType": layout.OCI_INDEX, "manifests": [
        descriptor(arm_manifest, platform={"os": "linux", "architecture": "arm64"}),
        descriptor(manifest, platform={"os": "linux", "architecture": "amd64"})]}).encode()
    entries = [
        descriptor(index, layout.OCI_INDEX, annotations={"io.containerd.image.name": "a.io/multi:1"}),
        descriptor(manifest, annotations={"io.containerd.image.name": "a.io/single:1"}),
        descriptor(arm_manifest, platform={"os": "linux", "architecture": "arm64"},
                   annotations={"io.containerd.image.name": "a.io/armonly:1"}),
    ]
    archive = oci_archive(entries, [config, manifest, layer, arm_config, arm_manifest, index])
    [image] = images(store, archive)
    assert image.names == ["a.io/multi:1", "a.io/single:1"]
    assert image.top_digest == sha(index) and image.blobs == (sha(index),) and image.config_digest == sha(config)
    with pytest.raises(InvalidArgument, match=r"index.json: no image for platform linux/ppc64le \(offered: linux/arm64/v8\)"):
        images(ContentStore(store.root + "2"), oci_archive([entries[2]], [arm_config, arm_manifest, layer]),
               platform=Platform("linux", "ppc64le"))


def docker_archive(items: list[dict[str, Any]], files: dict[str, Any]) -> bytes:
    return tar_of([*files.items(), ("manifest.json", json.dumps(items).encode())])


def test_docker_archive(store: ContentStore) -> None:
    """docker save's layout: names from RepoTags, layer types from their bytes, a made manifest that
    is the same bytes every time; a layer linked from another entry (legacy layout) resolves."""
    config = config_for(LAYER, LAYER_GZ)
    items = [{"Config": "abc.json", "RepoTags": ["busybox:latest", "example.com/b:2"],
              "Layers": ["l1/layer.tar", "l2/layer.tar"]}]
    files: dict[str, Any] = {"abc.json": config, "l1/layer.tar": LAYER, "l0": "dir", "l0/layer.tar": LAYER_GZ,
                             "l2/layer.tar": ("symlink", "../l0/layer.tar"), "l1/VERSION": b"1.0"}
    [image] = images(store, docker_archive(items, files))
    assert image.names == ["docker.io/library/busybox:latest", "example.com/b:2"]
    assert not image.manifest_in_archive and image.top_digest == image.manifest_digest == sha(image.manifest)
    assert [(l.media_type, l.digest) for l in image.layers] == [
        ("application/vnd.docker.image.rootfs.diff.tar", sha(LAYER)),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", sha(LAYER_GZ))]
    doc = json.loads(image.manifest)
    assert doc["mediaType"] == layout.DOCKER_MANIFEST and doc["config"]["digest"] == sha(config)
    [again] = images(ContentStore(store.root + "2"), docker_archive(items, files))
    assert again.manifest == image.manifest


def test_two_images_in_one_docker_archive(store: ContentStore) -> None:
    c1, c2 = config_for(LAYER), config_for(LAYER, LAYER_GZ)
    items = [{"Config": "c1.json", "RepoTags": ["a:1"], "Layers": ["l.tar"]},
             {"Config": "c2.json", "RepoTags": ["b:1"], "Layers": ["l.tar", "lz.tar"]}]
    found = images(store, docker_archive(items, {"c1.json": c1, "c2.json": c2, "l.tar": LAYER, "lz.tar": LAYER_GZ}))
    assert [(i.names, i.config_digest) for i in found] == [
        (["docker.io/library/a:1"], sha(c1)), (["docker.io/library/b:1"], sha(c2))]


GOOD = one_image()


def _bad_blob() -> bytes:
    config, manifest, layer = GOOD
    members = [("oci-layout", b"{}"), (f"blobs/sha256/{sha(layer)[7:]}", layer + b"x"),
               ("index.json", json.dumps({"manifests": [descriptor(manifest)]}).encode())]
    return tar_of(members)


MALFORMED: list[tuple[str, Callable[[], bytes], str]] = [
    ("a blob whose content is not its name", _bad_blob,
     rf"archive entry 'blobs/sha256/{sha(GOOD[2])[7:]}': blob {sha(GOOD[2])}: "),
    ("an entry climbing out", lambda: tar_of([("../etc/passwd", b"x")]), r"archive entry '../etc/passwd': path with '..'"),
    ("an absolute entry", lambda: tar_of([("/etc/passwd", b"x")]), r"archive entry '/etc/passwd': absolute path"),
    ("a fifo", lambda: tar_of([("p", "fifo")]), r"archive entry 'p': unexpected member type"),
    ("an entry twice", lambda: tar_of([("a", b"1"), ("a", b"2")]), r"archive entry 'a': appears twice"),
    ("a link to nothing", lambda: tar_of([("a", ("symlink", "b"))]), r"archive entry 'a': links to 'b'"),
    ("a link out", lambda: tar_of([("d/a", ("symlink", "../../etc/passwd"))]), r"archive entry 'd/a': links out"),
    ("not a tar", lambda: b"hello, this is not a tar archive" * 40, r"archive: not a valid tar stream"),
    ("a truncated gzip", lambda: oci_archive([], [], compress=True)[:-20], r"archive: gzip stream is truncated"),
    ("neither layout", lambda: tar_of([("x", b"1")]), r"archive: neither an OCI image layout"),
    ("index.json not JSON", lambda: tar_of([("oci-layout", b"{}"), ("index.json", b"{")]),
     r"archive entry 'index.json': not valid JSON"),
    ("a manifest not in the archive", lambda: oci_archive([descriptor(GOOD[1])], [GOOD[0], GOOD[2]]),
     rf"index.json manifests\[0\]: blob {sha(GOOD[1])} is not in the archive"),
    ("a bad descriptor digest", lambda: oci_archive([{**descriptor(GOOD[1]), "digest": "md5:x"}], list(GOOD)),
     r"index.json manifests\[0\].digest: 'md5:x' is not a sha256 digest"),
    ("a layer missing", lambda: oci_archive([descriptor(GOOD[1])], [GOOD[0], GOOD[1]]),
     rf"index.json manifests\[0\]: manifest {sha(GOOD[1])} layers\[0\]: blob {sha(GOOD[2])} is not in the archive"),
    ("a bad name", lambda: oci_archive([descriptor(GOOD[1], annotations={"io.containerd.image.name": "no spaces"})],
                                       list(GOOD)),
     r"index.json manifests\[0\].annotations\[io.containerd.image.name\]: invalid image reference"),
    ("docker: a layer entry missing", lambda: docker_archive(
        [{"Config": "c.json", "RepoTags": ["a:1"], "Layers": ["l.tar", "gone.tar"]}],
        {"c.json": config_for(LAYER, LAYER), "l.tar": LAYER}),
     r"manifest.json\[0\].Layers\[1\]: entry 'gone.tar' is not in the archive"),
    ("docker: diff_ids do not match", lambda: docker_archive(
        [{"Config": "c.json", "RepoTags": ["a:1"], "Layers": ["l.tar"]}], {"c.json": config_for(), "l.tar": LAYER}),
     r"manifest.json\[0\].Config \(c.json\): 1 layers but 0 rootfs.diff_ids"),
    ("docker: a bad tag", lambda: docker_archive(
        [{"Config": "c.json", "RepoTags": ["a:b:c"], "Layers": []}], {"c.json": config_for()}),
     r"manifest.json\[0\].RepoTags\[0\]: invalid image reference"),
]


@pytest.mark.parametrize(("what", "make", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_archives_name_the_entry(store: ContentStore, what: str, make: Callable[[], bytes],
                                           message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        images(store, make())
    assert os.listdir(store.ingest_dir) == []  # nothing half-written stays


def test_export_index_and_docker_manifest() -> None:
    """The exported index names each image once per name (full name and tag), docker's manifest.json
    lists short names; an unnamed image gets one entry without names."""
    config, manifest, layer = GOOD
    named = export.ExportImage(("docker.io/library/busybox:latest", "a.io/x/y:2"), manifest, sha(manifest),
                               layout.OCI_MANIFEST, sha(config), (sha(layer),))
    unnamed = export.ExportImage((), manifest, sha(manifest), layout.OCI_MANIFEST, sha(config), (sha(layer),))
    index = json.loads(export.index_document([named, unnamed]))
    assert [m.get("annotations") for m in index["manifests"]] == [
        {"io.containerd.image.name": "docker.io/library/busybox:latest", "org.opencontainers.image.ref.name": "latest"},
        {"io.containerd.image.name": "a.io/x/y:2", "org.opencontainers.image.ref.name": "2"},
        None]
    docker = json.loads(export.docker_manifest_document([named]))
    assert docker == [{"Config": f"blobs/sha256/{sha(config)[7:]}", "RepoTags": ["busybox:latest", "a.io/x/y:2"],
                       "Layers": [f"blobs/sha256/{sha(layer)[7:]}"]}]


def test_export_then_read_gives_the_same_image(store: ContentStore, tmp_path: Path) -> None:
    """An exported archive reads back as the same image, names and manifest included."""
    config, manifest, layer = GOOD
    for blob in GOOD:
        store.put(sha(blob), blob)
    image = export.ExportImage(("docker.io/library/app:1",), manifest, sha(manifest), layout.OCI_MANIFEST,
                               sha(config), (sha(layer),))
    out = io.BytesIO()
    export.write_layout([image], store.path, out)
    [back] = images(ContentStore(str(tmp_path / "other")), out.getvalue())
    assert (back.names, back.manifest_digest, back.config_digest) == (["docker.io/library/app:1"], sha(manifest), sha(config))
    out2 = io.BytesIO()
    export.write_layout([image], store.path, out2)
    assert out2.getvalue() == out.getvalue()  # the same images give the same bytes

"""Writing images as an OCI image layout tar that docker load reads too.

The archive holds ``oci-layout``, ``blobs/sha256/<hex>`` for every manifest,
config and layer (each once, however many images share it), ``index.json``
with one entry per name of each image (``io.containerd.image.name`` the
whole reference, ``org.opencontainers.image.ref.name`` its tag, as
containerd and docker 25 write them; an image without a name gets one entry
without annotations) and docker's ``manifest.json`` naming the same files
(docker load reads it; ``RepoTags`` in docker's short form, "busybox:latest").
Members are written in that order, metadata last as docker does, with fixed
owners, modes and times, so the same images give the same bytes.

The manifest written for an image is the one it was pulled or imported with
when the store still has it (the digest then matches the registry's); an
image recorded before its manifest was kept gets one made from its config
and layers (``made_manifest``).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from .layout import IMAGE_NAME, OCI_INDEX, OCI_MANIFEST, REF_NAME

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TYPES = {
    "": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


@dataclass(frozen=True, slots=True)
class ExportImage:
    names: tuple[str, ...]      # normalized references with a tag
    manifest: bytes
    manifest_digest: str
    manifest_media_type: str
    config_digest: str
    layers: tuple[str, ...]     # layer blob digests, bottom first


def manifest_media_type(doc: dict[str, Any]) -> str:
    declared = doc.get("mediaType")
    return declared if isinstance(declared, str) and declared else OCI_MANIFEST


def describes(doc: Any, config_digest: str) -> bool:
    """Whether a parsed blob is an image manifest for the config ``config_digest``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        return False
    config = doc.get("config")
    return isinstance(config, dict) and config.get("digest") == config_digest


def made_manifest(config_digest: str, config_size: int, layers: Sequence[tuple[str, int, str]]) -> bytes:
    """An OCI manifest for a config and its layers ((digest, size, compression) each)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER_TYPES[c], "digest": d, "size": s} for d, s, c in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def short_name(name: str) -> str:
    """docker's short form of a reference ("docker.io/library/busybox:latest" -> "busybox:latest")."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def tag_of(name: str) -> str:
    tail = name.rsplit("/", 1)[-1]
    return tail.rsplit(":", 1)[1] if ":" in tail else ""


def index_document(images: Sequence[ExportImage]) -> bytes:
    entries = []
    for image in images:
        base = {"mediaType": image.manifest_media_type, "digest": image.manifest_digest, "size": len(image.manifest)}
        if not image.names:
            entries.append(base)
        for name in image.names:
            entries.append({**base, "annotations": {IMAGE_NAME: name, REF_NAME: tag_of(name)}})
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, separators=(",", ":")).encode()


def docker_manifest_document(images: Sequence[ExportImage]) -> bytes:
    items = [{"Config": _blob_path(image.config_digest),
              "RepoTags": [short_name(n) for n in image.names],
              "Layers": [_blob_path(d) for d in image.layers]} for image in images]
    return json.dumps(items, separators=(",", ":")).encode()


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def write_layout(images: Sequence[ExportImage], blob_file: Callable[[str], str], out: BinaryIO) -> None:
    """Stream the archive of ``images`` into ``out``; ``blob_file`` gives a stored blob's path."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        written: set[str] = set()
        for image in images:
            for digest in (image.config_digest, *image.layers):
                if digest not in written:
                    written.add(digest)
                    with open(blob_file(digest), "rb") as f:
                        info = _info(_blob_path(digest), os.fstat(f.fileno()).st_size)
                        tar.addfile(info, f)
            if image.manifest_digest not in written:
                written.add(image.manifest_digest)
                _add_bytes(tar, _blob_path(image.manifest_digest), image.manifest)
        _add_bytes(tar, "index.json", index_document(images))
        _add_bytes(tar, "manifest.json", docker_manifest_document(images))


def _info(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_info(name, 0, tarfile.DIRTYPE))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))

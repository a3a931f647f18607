"""Which images an archive holds, and under which names (pure, over the blobs read).

Two layouts, as containerd's importer reads them:

* An OCI image layout (``oci-layout`` present): each entry of
  ``index.json``'s ``manifests`` is a manifest, or an image index from
  which the manifest for the wanted platform is chosen; an entry whose own
  ``platform`` the node cannot run is skipped.  Its name is the
  ``io.containerd.image.name`` annotation, else
  ``org.opencontainers.image.ref.name`` when that is a whole reference
  ("docker.io/library/busybox:latest", as skopeo and docker write it); a
  ref name that is only a tag ("latest") names the image only with a base
  name ("example.com/app" gives "example.com/app:latest"), and is otherwise
  left unnamed: the image is imported, known by its id.
* docker save's layout (``manifest.json``): each item names its config and
  layer files and its ``RepoTags`` ("busybox:latest" is
  "docker.io/library/busybox:latest").  Docker's layout has no manifest
  blob, so one is made (a Docker schema 2 manifest, the layers' media types
  from their first bytes) and stored with the image, which makes its repo
  digest and lets ``dockyard images export`` give the same image back.

When both are present (docker 25 writes both), the OCI layout is read.
Entries naming the same manifest are one image with all their names.  Every
error is InvalidArgument naming the archive entry and field
(``index.json manifests[1].digest``, ``manifest.json[0].Layers[2]``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.cri.errors import InvalidArgument, NotFound, shorten
from dockyard.cri.image.platform import Platform, choose, platform_of
from dockyard.cri.image.reference import is_valid_digest
from dockyard.cri.snapshot.unpack import LAYER_MEDIA_TYPES

from .reader import Blob, Entries, entry_name

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
CONFIG_TYPES = frozenset({"application/vnd.oci.image.config.v1+json", DOCKER_CONFIG})
IMAGE_NAME = "io.containerd.image.name"
REF_NAME = "org.opencontainers.image.ref.name"
MAX_DOCUMENT = 4 << 20  # manifests, indexes and configs, as a registry pull allows

# docker save's layer files by what their first bytes show.
DOCKER_LAYER_TYPES = {
    "": "application/vnd.docker.image.rootfs.diff.tar",
    "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    media_type: str
    size: int


@dataclass(slots=True)
class ArchiveImage:
    """One image to import: its manifest (and the blob an entry named, an index perhaps),
    config and layers, and its names."""

    source: str                      # the entry that named it, for messages
    top_digest: str                  # what the names point at (the manifest, or the index it came from)
    manifest: bytes
    manifest_digest: str
    manifest_in_archive: bool        # False: made from docker's manifest.json, to be stored
    config_digest: str
    config: dict[str, Any]
    layers: tuple[Layer, ...]
    diff_ids: tuple[str, ...]
    names: list[str] = field(default_factory=list)
    blobs: tuple[str, ...] = ()      # every blob the image keeps besides config and layers


ReadBlob = Callable[[str], bytes]
Sniff = Callable[[str], str]  # blob digest -> "gzip" | "zstd" | ""
ParseReference = Callable[[str], Any]


def images_in(entries: Entries, read: ReadBlob, sniff: Sniff, platform: Platform, base_name: str,
              parse_reference: ParseReference) -> list[ArchiveImage]:
    if "oci-layout" in entries.layout or "index.json" in entries.layout:
        return _oci(entries, read, platform, base_name, parse_reference)
    if "manifest.json" in entries.layout:
        return _docker(entries, read, sniff, parse_reference)
    raise InvalidArgument("archive: neither an OCI image layout (index.json) nor a docker save archive (manifest.json)")


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidArgument(f"{where}: not valid JSON: {err}") from err


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{where}: not a JSON object")
    return value


def _string(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"{where}.{key}: missing or not a string")
    return value


def _descriptor(raw: Any, where: str, allowed: frozenset[str] | None = None) -> tuple[str, str, int]:
    doc = _object(raw, where)
    media_type, digest, size = doc.get("mediaType"), doc.get("digest"), doc.get("size")
    if not isinstance(digest, str) or not is_valid_digest(digest):
        raise InvalidArgument(f"{where}.digest: {shorten(str(digest))!r} is not a sha256 digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{where}.size: {size!r} is not a size")
    if not isinstance(media_type, str) or (allowed is not None and media_type not in allowed):
        raise InvalidArgument(f"{where}.mediaType: unsupported {shorten(str(media_type))!r}")
    return media_type, digest, size


class _Blobs:
    """The archive's blobs by digest, read with the limits and messages of an import."""

    def __init__(self, entries: Entries, read: ReadBlob) -> None:
        self._by_digest: dict[str, Blob] = {b.digest: b for b in entries.files.values()}
        self._read = read

    def has(self, digest: str) -> bool:
        return digest in self._by_digest

    def require(self, digest: str, size: int | None, where: str) -> Blob:
        blob = self._by_digest.get(digest)
        if blob is None:
            raise InvalidArgument(f"{where}: blob {digest} is not in the archive")
        if size is not None and blob.size != size:
            raise InvalidArgument(f"{where}: blob {digest} has {blob.size} bytes, the descriptor says {size}")
        return blob

    def document(self, digest: str, size: int | None, where: str) -> tuple[bytes, dict[str, Any]]:
        blob = self.require(digest, size, where)
        if blob.size > MAX_DOCUMENT:
            raise InvalidArgument(f"{where}: blob {digest} is larger than {MAX_DOCUMENT} bytes")
        data = self._read(digest)
        return data, _object(_json(data, f"{where}: blob {digest}"), f"{where}: blob {digest}")


def _image_from_manifest(blobs: _Blobs, source: str, top: str, manifest_digest: str, manifest: bytes,
                         doc: dict[str, Any], extra: tuple[str, ...]) -> ArchiveImage:
    where = f"{source}: manifest {manifest_digest}"
    _, config_digest, config_size = _descriptor(doc.get("config"), f"{where} config", CONFIG_TYPES)
    _, config = blobs.document(config_digest, config_size, f"{where} config")
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise InvalidArgument(f"{where}: no layers list")
    layers = []
    for i, raw in enumerate(raw_layers):
        media_type, digest, size = _descriptor(raw, f"{where} layers[{i}]", frozenset(LAYER_MEDIA_TYPES))
        blobs.require(digest, size, f"{where} layers[{i}]")
        layers.append(Layer(digest, media_type, size))
    return ArchiveImage(source=source, top_digest=top, manifest=manifest, manifest_digest=manifest_digest,
                        manifest_in_archive=True, config_digest=config_digest, config=config,
                        layers=tuple(layers), diff_ids=_diff_ids(config, len(layers), f"{where} config"),
                        blobs=extra)


def _diff_ids(config: Mapping[str, Any], count: int, where: str) -> tuple[str, ...]:
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and is_valid_digest(d) for d in diff_ids):
        raise InvalidArgument(f"{where}: rootfs.diff_ids is not a list of sha256 digests")
    if len(diff_ids) != count:
        raise InvalidArgument(f"{where}: {count} layers but {len(diff_ids)} rootfs.diff_ids")
    return tuple(diff_ids)


def _oci(entries: Entries, read: ReadBlob, platform: Platform, base_name: str,
         parse_reference: ParseReference) -> list[ArchiveImage]:
    if "index.json" not in entries.layout:
        raise InvalidArgument("archive entry 'index.json': missing from the OCI image layout")
    layout_version = _object(_json(entries.layout.get("oci-layout", b"{}"), "archive entry 'oci-layout'"),
                             "archive entry 'oci-layout'").get("imageLayoutVersion", "1.0.0")
    if not isinstance(layout_version, str) or not layout_version.startswith("1."):
        raise InvalidArgument(f"archive entry 'oci-layout': unsupported imageLayoutVersion {layout_version!r}")
    index = _object(_json(entries.layout["index.json"], "archive entry 'index.json'"), "archive entry 'index.json'")
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidArgument("index.json: no manifests list")
    blobs = _Blobs(entries, read)
    images: dict[str, ArchiveImage] = {}
    skipped: list[str] = []
    for i, raw in enumerate(manifests):
        where = f"index.json manifests[{i}]"
        media_type, digest, size = _descriptor(raw, where, frozenset({OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST}))
        own = platform_of(raw)
        if own is not None and platform.rank(own) is None:
            skipped.append(own.normalized().string())
            continue
        data, doc = blobs.document(digest, size, where)
        extra: tuple[str, ...] = ()
        manifest_digest = digest
        if media_type in (OCI_INDEX, DOCKER_LIST):
            try:
                chosen = choose(doc, platform)
            except NotFound as err:
                raise InvalidArgument(f"{where}: {err.message}") from err
            child_type, manifest_digest, child_size = _descriptor(chosen, f"{where}: index {digest} entry")
            if child_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
                raise InvalidArgument(f"{where}: index {digest} entry {manifest_digest} is not an image manifest")
            extra = (digest,)
            data, doc = blobs.document(manifest_digest, child_size, f"{where}: index {digest}")
        image = images.get(manifest_digest)
        if image is None:
            image = _image_from_manifest(blobs, where, digest, manifest_digest, data, doc, extra)
            images[manifest_digest] = image
        name = _oci_name(raw, base_name, parse_reference, where)
        if name and name not in image.names:
            image.names.append(name)
    if not images:
        offered = ", ".join(sorted(set(skipped))) or "none"
        raise InvalidArgument(f"index.json: no image for platform {platform.normalized().string()} (offered: {offered})")
    return list(images.values())


def _oci_name(descriptor: Mapping[str, Any], base_name: str, parse_reference: ParseReference, where: str) -> str:
    annotations = descriptor.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise InvalidArgument(f"{where}.annotations: not an object")
    full = annotations.get(IMAGE_NAME)
    ref = annotations.get(REF_NAME)
    field_name, text = (IMAGE_NAME, full) if full else (REF_NAME, ref)
    if not text:
        return ""
    if not isinstance(text, str):
        raise InvalidArgument(f"{where}.annotations[{field_name}]: not a string")
    if field_name == REF_NAME and "/" not in text and ":" not in text:
        if not base_name:
            return ""  # only a tag, and no repository to put it on
        text = f"{base_name}:{text}"
    try:
        return str(parse_reference(text).string())
    except InvalidArgument as err:
        raise InvalidArgument(f"{where}.annotations[{field_name}]: {err.message}") from err


def _docker(entries: Entries, read: ReadBlob, sniff: Sniff, parse_reference: ParseReference) -> list[ArchiveImage]:
    items = _json(entries.layout["manifest.json"], "archive entry 'manifest.json'")
    if not isinstance(items, list) or not items:
        raise InvalidArgument("archive entry 'manifest.json': not a non-empty list")
    blobs = _Blobs(entries, read)
    images: dict[str, ArchiveImage] = {}
    for i, raw in enumerate(items):
        where = f"manifest.json[{i}]"
        item = _object(raw, where)
        config_entry = _string(item, "Config", where)
        config_blob = _entry(entries, config_entry, f"{where}.Config")
        _, config = blobs.document(config_blob.digest, None, f"{where}.Config")
        layer_entries = item.get("Layers")
        if not isinstance(layer_entries, list) or not all(isinstance(e, str) for e in layer_entries):
            raise InvalidArgument(f"{where}.Layers: not a list of entry names")
        layers = []
        for j, name in enumerate(layer_entries):
            blob = _entry(entries, name, f"{where}.Layers[{j}]")
            layers.append(Layer(blob.digest, DOCKER_LAYER_TYPES[sniff(blob.digest)], blob.size))
        diff_ids = _diff_ids(config, len(layers), f"{where}.Config ({config_entry})")
        manifest = _docker_manifest(config_blob, layers)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        image = images.get(digest)
        if image is None:
            image = ArchiveImage(source=where, top_digest=digest, manifest=manifest, manifest_digest=digest,
                                 manifest_in_archive=False, config_digest=config_blob.digest, config=config,
                                 layers=tuple(layers), diff_ids=diff_ids)
            images[digest] = image
        tags = item.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidArgument(f"{where}.RepoTags: not a list of names")
        for j, tag in enumerate(tags):
            try:
                name = str(parse_reference(tag).string())
            except InvalidArgument as err:
                raise InvalidArgument(f"{where}.RepoTags[{j}]: {err.message}") from err
            if name not in image.names:
                image.names.append(name)
    return list(images.values())


def _entry(entries: Entries, name: str, where: str) -> Blob:
    blob = entries.files.get(entry_name(name))
    if blob is None:
        raise InvalidArgument(f"{where}: entry {shorten(name)!r} is not in the archive")
    return blob


def _docker_manifest(config: Blob, layers: list[Layer]) -> bytes:
    """The Docker schema 2 manifest of a docker save image: deterministic bytes."""
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": config.size, "digest": config.digest},
        "layers": [{"mediaType": layer.media_type, "size": layer.size, "digest": layer.digest} for layer in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()

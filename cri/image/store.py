"""Image metadata: which references (tags, digests) name which image, and what a container needs of it.

An image's id is its config digest ("sha256:<hex>"), the same string in
PullImage's answer, Image.id and ContainerStatus.image_id.  A reference
(``docker.io/library/busybox:latest`` or ``docker.io/library/busybox@sha256:..``)
names at most one image: putting an image with a tag that another image
holds moves the tag (that image stays, perhaps with no tags, as containerd
and docker keep it).

Lookups (``get``), in order:

1. an exact reference among the images' repo_tags / repo_digests (the caller
   normalises text like ``busybox`` first);
2. an id: ``sha256:<64 hex>``;
3. an id prefix, with or without ``sha256:`` (crictl prints truncated ids):
   it must match exactly one image, else NotFound / InvalidArgument (ambiguous).

Everything lives in one versioned JSON file, rewritten atomically (temp,
fsync, rename, fsync dir) under one lock per store, so a crash leaves the
previous or the new state and tags never point at two images.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..content.digest import is_digest
from ..content.durable import read_versioned, write_atomic
from ..disk_usage import tree_usage
from ..errors import Internal, InvalidArgument, NotFound

STORE_VERSION = 1

_HEX_PREFIX = re.compile(r"[0-9a-f]{1,64}")


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image: its id, names, storage it uses, and the config fields containers need."""

    id: str  # config digest
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()  # "domain/path@sha256:<manifest or index digest>"
    size: int = 0  # sum of the compressed layer sizes, as containerd reports
    chain_ids: tuple[str, ...] = ()  # committed snapshot of each layer, bottom first
    layers: tuple[str, ...] = ()  # layer blob digests, bottom first
    blobs: tuple[str, ...] = ()  # other blobs to keep: manifest, index
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls,
        *,
        id: str,
        config: Mapping[str, Any],
        repo_tags: Iterable[str] = (),
        repo_digests: Iterable[str] = (),
        size: int = 0,
        chain_ids: Iterable[str] = (),
        layers: Iterable[str] = (),
        blobs: Iterable[str] = (),
        annotations: Mapping[str, str] | None = None,
    ) -> ImageRecord:
        """Build a record from an OCI/docker image config (its ``config`` section may be absent or null)."""
        section = config.get("config")
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            raise InvalidArgument(f"image {id}: config.config is not an object")
        return cls(
            id=id,
            repo_tags=tuple(repo_tags),
            repo_digests=tuple(repo_digests),
            size=size,
            chain_ids=tuple(chain_ids),
            layers=tuple(layers),
            blobs=tuple(blobs),
            entrypoint=_strings(section, "Entrypoint", id),
            cmd=_strings(section, "Cmd", id),
            env=_strings(section, "Env", id),
            working_dir=_string(section, "WorkingDir", id),
            user=_string(section, "User", id),
            exposed_ports=tuple(sorted(_keys(section, "ExposedPorts", id))),
            volumes=tuple(sorted(_keys(section, "Volumes", id))),
            stop_signal=_string(section, "StopSignal", id),
            labels=dict(_str_map(section, "Labels", id)),
            annotations=dict(annotations or {}),
        )

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["labels"] = dict(self.labels)
        doc["annotations"] = dict(self.annotations)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ImageRecord:
        tuples = {
            "repo_tags", "repo_digests", "chain_ids", "layers", "blobs", "entrypoint", "cmd", "env",
            "exposed_ports", "volumes",
        }
        kwargs: dict[str, Any] = {}
        for key, value in doc.items():
            if key in tuples:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"field {key} is not a list of strings")
                kwargs[key] = tuple(value)
            elif key in ("labels", "annotations"):
                if not isinstance(value, dict):
                    raise ValueError(f"field {key} is not an object")
                kwargs[key] = dict(value)
            else:
                kwargs[key] = value
        record = cls(**kwargs)
        if not is_digest(record.id):
            raise ValueError(f"id {record.id!r} is not a sha256 digest")
        return record


def _strings(section: Mapping[str, Any], key: str, image: str) -> tuple[str, ...]:
    value = section.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"image {image}: config {key} is not a list of strings")
    return tuple(value)


def _string(section: Mapping[str, Any], key: str, image: str) -> str:
    value = section.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"image {image}: config {key} is not a string")
    return value


def _keys(section: Mapping[str, Any], key: str, image: str) -> list[str]:
    value = section.get(key)
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"image {image}: config {key} is not an object")
    return [str(k) for k in value]


def _str_map(section: Mapping[str, Any], key: str, image: str) -> dict[str, str]:
    value = section.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"image {image}: config {key} is not an object of strings")
    return {str(k): v for k, v in value.items()}


def _merge(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(old + new))


class ImageStore:
    """Image records by id with reference lookups; persisted in ``<root>/images.json``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, "images.json")
        os.makedirs(root, mode=0o700, exist_ok=True)
        # _lock guards _images and images.json.
        self._lock = threading.Lock()
        self._images: dict[str, ImageRecord] = {}
        self._load()

    def _load(self) -> None:
        doc = read_versioned(self.path, "image store", STORE_VERSION)
        if doc is None:
            return
        try:
            records = [ImageRecord.from_json(d) for d in doc["images"]]
        except (KeyError, TypeError, ValueError) as err:
            raise Internal(f"image store {self.path} is corrupt: {err}") from err
        self._images = {r.id: r for r in records}

    def _save(self) -> None:
        doc = {"version": STORE_VERSION, "images": [r.to_json() for r in sorted(self._images.values(), key=lambda r: r.id)]}
        write_atomic(self.path, json.dumps(doc, sort_keys=True).encode())

    # -- writes -------------------------------------------------------------------

    def put(self, record: ImageRecord) -> ImageRecord:
        """Store ``record``; references it names move to it.  Returns the stored record.

        An image already stored under the same id keeps its other references
        (a second tag of the same image adds to repo_tags).
        """
        return self.put_all([record])[0]

    def put_all(self, records: Sequence[ImageRecord]) -> list[ImageRecord]:
        """``put`` of several records in one write: after a crash all are stored or none
        (an archive's images).  A later record's names win over an earlier one's."""
        for record in records:
            if not is_digest(record.id):
                raise InvalidArgument(f"image id {record.id!r} is not a sha256 digest")
        with self._lock:
            previous = dict(self._images)
            stored = [self._put_locked(record) for record in records]
            try:
                self._save()
            except BaseException:
                self._images = previous
                raise
            return [self._images[r.id] for r in stored]

    def _put_locked(self, record: ImageRecord) -> ImageRecord:
        old = self._images.get(record.id)
        if old is not None:
            record = replace(
                record,
                repo_tags=_merge(old.repo_tags, record.repo_tags),
                repo_digests=_merge(old.repo_digests, record.repo_digests),
                blobs=_merge(old.blobs, record.blobs),
            )
        taken = set(record.repo_tags) | set(record.repo_digests)
        for other in list(self._images.values()):
            if other.id == record.id:
                continue
            if taken.intersection(other.repo_tags) or taken.intersection(other.repo_digests):
                self._images[other.id] = replace(
                    other,
                    repo_tags=tuple(t for t in other.repo_tags if t not in taken),
                    repo_digests=tuple(d for d in other.repo_digests if d not in taken),
                )
        self._images[record.id] = record
        return record

    def remove(self, ref_or_id: str) -> ImageRecord:
        """Remove the whole image ``ref_or_id`` names (every reference of it); return its record."""
        with self._lock:
            record = self._lookup(ref_or_id)
            previous = dict(self._images)
            del self._images[record.id]
            try:
                self._save()
            except BaseException:
                self._images = previous
                raise
            return record

    # -- reads -----------------------------------------------------------------------

    def get(self, ref_or_id: str) -> ImageRecord:
        """The image a reference, id or unique id prefix names; NotFound names the text."""
        with self._lock:
            return self._lookup(ref_or_id)

    def _lookup(self, text: str) -> ImageRecord:
        if not text:
            raise InvalidArgument("image reference is empty")
        for record in self._images.values():
            if text in record.repo_tags or text in record.repo_digests:
                return record
        found = self._images.get(text)
        if found is not None:
            return found
        prefix = text[len("sha256:") :] if text.startswith("sha256:") else text
        if _HEX_PREFIX.fullmatch(prefix):
            matches = [r for r in self._images.values() if r.id[len("sha256:") :].startswith(prefix)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidArgument(f"image id prefix {text!r} is ambiguous ({len(matches)} images)")
        raise NotFound(f"image {text!r} not found")

    def list(self) -> list[ImageRecord]:
        with self._lock:
            return sorted(self._images.values(), key=lambda r: r.id)

    def referenced_blobs(self) -> set[str]:
        """Every blob an image needs: config, layers, manifests/indexes (and repo digests' targets)."""
        with self._lock:
            out: set[str] = set()
            for r in self._images.values():
                out.add(r.id)
                out.update(r.layers)
                out.update(r.blobs)
                for ref in r.repo_digests:
                    _, _, digest = ref.rpartition("@")
                    if is_digest(digest):
                        out.add(digest)
            return out

    def usage(self) -> tuple[int, int]:
        """(bytes, inodes) of the store's directory, for ImageFsInfo."""
        return tree_usage(self.root)

    def referenced_chains(self) -> set[str]:
        with self._lock:
            return {c for r in self._images.values() for c in r.chain_ids}

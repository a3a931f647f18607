"""The container checkpoint archive: what CheckpointContainer writes and CreateContainer restores.

The layout is CRI-O's (and checkpointctl's, which reads both CRI-O's and
containerd's), so the tools that inspect kubelet checkpoints read ours: an
uncompressed tar holding

    checkpoint/        the runtime's CRIU images (with descriptors.json)
    config.dump        JSON: id, name, rootfsImage, rootfsImageRef (the image
                       id), rootfsImageName, runtime, createdTime,
                       checkpointedTime, restoredTime, restored
    spec.dump          the container's OCI spec (its config.json)
    rootfs-diff.tar    the files the container changed or added (its
                       writable layer, whiteouts left out)
    deleted.files      JSON list of the image's files the container deleted
                       (present only when there are any)
    dump.log           criu's log of the dump

kubelet names the file (``/var/lib/kubelet/checkpoints/checkpoint-<pod>-
<container>-<time>.tar``) and never opens it; a restore is a CreateContainer
whose ``image.image`` is the archive's path (CRI-O's convention).  At restore
the image named by ``rootfsImageRef`` must be here (NotFound otherwise), the
changed files are applied to the new container's writable layer through the
layer unpacker (its path rules, with deletions as overlay whiteouts), and
``checkpoint/`` is unpacked into the new bundle for the runtime's restore.

The archive is read with tarfile's "data" filter into a directory of its own
and only the members above are taken; a member outside them is refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import errors

CHECKPOINT_DIR = "checkpoint"
CONFIG_DUMP = "config.dump"
SPEC_DUMP = "spec.dump"
ROOTFS_DIFF = "rootfs-diff.tar"
DELETED_FILES = "deleted.files"
DUMP_LOG = "dump.log"
TOP_LEVEL = frozenset({CONFIG_DUMP, SPEC_DUMP, ROOTFS_DIFF, DELETED_FILES, DUMP_LOG, "stats-dump", "status"})
ZERO_TIME = "0001-01-01T00:00:00Z"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True, slots=True)
class CheckpointMeta:
    """config.dump: which container, from which image."""

    container_id: str
    name: str
    image_ref: str  # the image id
    image_name: str
    runtime: str


def rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def config_dump(meta: CheckpointMeta, created_ns: int, checkpointed_ns: int) -> dict[str, Any]:
    """config.dump's document (pure)."""
    return {"id": meta.container_id, "name": meta.name, "rootfsImage": meta.image_name,
            "rootfsImageRef": meta.image_ref, "rootfsImageName": meta.image_name, "runtime": meta.runtime,
            "createdTime": rfc3339(created_ns), "checkpointedTime": rfc3339(checkpointed_ns),
            "restoredTime": ZERO_TIME, "restored": False}


def parse_config_dump(doc: object, where: str) -> CheckpointMeta:
    """config.dump -> CheckpointMeta; InvalidArgument naming ``where`` (pure)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("rootfsImageRef", doc.get("rootfsImageName")), str):
        raise errors.InvalidArgument(f"{where}: {CONFIG_DUMP} names no image (rootfsImageRef)")
    return CheckpointMeta(container_id=str(doc.get("id", "")), name=str(doc.get("name", "")),
                          image_ref=str(doc.get("rootfsImageRef", "")), image_name=str(doc.get("rootfsImageName", "")),
                          runtime=str(doc.get("runtime", "")))


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def walk_layer(upper: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to ``upper``, lstat) of everything in a writable layer, parents first."""
    for dirpath, dirnames, filenames in os.walk(upper):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            yield os.path.relpath(full, upper), os.lstat(full)


def write_rootfs_diff(upper: str, out: str) -> list[str]:
    """rootfs-diff.tar of a writable layer (overlay whiteouts left out); returns the deleted paths."""
    deleted: list[str] = []
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for rel, st in walk_layer(upper):
            if is_whiteout(st):
                deleted.append("/" + rel)
                continue
            tar.add(os.path.join(upper, rel), arcname=rel, recursive=False)
    return deleted


def write_archive(location: str, image_dir: str, work_dir: str, upper: str, spec_path: str,
                  config: Mapping[str, Any]) -> None:
    """The archive at ``location``, written beside it and renamed into place (blocking)."""
    scratch = os.path.dirname(image_dir)
    diff = os.path.join(scratch, ROOTFS_DIFF)
    deleted = write_rootfs_diff(upper, diff) if upper else []
    directory = os.path.dirname(location) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", suffix=".tar", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(image_dir, arcname=CHECKPOINT_DIR)
            _add_bytes(tar, CONFIG_DUMP, json.dumps(config, indent=1).encode())
            tar.add(spec_path, arcname=SPEC_DUMP)
            if upper:
                tar.add(diff, arcname=ROOTFS_DIFF)
            if deleted:
                _add_bytes(tar, DELETED_FILES, json.dumps(deleted).encode())
            log = os.path.join(work_dir, DUMP_LOG)
            if os.path.exists(log):
                tar.add(log, arcname=DUMP_LOG)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, location)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def looks_like_archive(path: str) -> bool:
    """A CreateContainer image that names a checkpoint archive: an absolute path to a file."""
    return path.startswith("/") and os.path.isfile(path)


def read_meta(path: str, where: str) -> CheckpointMeta:
    """config.dump of the archive at ``path`` (blocking); InvalidArgument naming ``where``."""
    try:
        with tarfile.open(path, "r:") as tar:
            member = tar.getmember(CONFIG_DUMP)
            f = tar.extractfile(member)
            if f is None:
                raise KeyError(CONFIG_DUMP)
            doc = json.loads(f.read(1 << 20))
            names = tar.getnames()
    except (tarfile.TarError, OSError, KeyError, ValueError) as err:
        raise errors.InvalidArgument(f"{where}: {path} is not a container checkpoint archive ({err})") from err
    if f"{CHECKPOINT_DIR}/inventory.img" not in names:
        raise errors.InvalidArgument(f"{where}: {path} holds no CRIU images ({CHECKPOINT_DIR}/inventory.img)")
    return parse_config_dump(doc, where)


def unpack(path: str, dest: str, upper: str, where: str) -> str:
    """Extract the archive's checkpoint images into ``dest`` and apply its file changes to the
    writable layer ``upper`` (blocking); returns the images' directory."""
    from .snapshot.unpack import apply_layer

    os.makedirs(dest, mode=0o700, exist_ok=True)
    try:
        with tarfile.open(path, "r:") as tar:
            members = []
            for m in tar.getmembers():
                top = m.name.split("/", 1)[0]
                if top != CHECKPOINT_DIR and m.name not in TOP_LEVEL:
                    raise errors.InvalidArgument(f"{where}: unexpected member {m.name!r} in {path}")
                members.append(m)
            tar.extractall(dest, members=members, filter="data")
    except tarfile.TarError as err:
        raise errors.InvalidArgument(f"{where}: {path}: {err}") from err
    diff = os.path.join(dest, ROOTFS_DIFF)
    if upper and os.path.exists(diff):
        with open(diff, "rb") as f:
            apply_layer(f, upper, LAYER_MEDIA_TYPE, layer=f"{path}:{ROOTFS_DIFF}")
    deleted_path = os.path.join(dest, DELETED_FILES)
    if upper and os.path.exists(deleted_path):
        with open(deleted_path, encoding="utf-8") as f:
            deleted = json.load(f)
        if not isinstance(deleted, list) or not all(isinstance(p, str) for p in deleted):
            raise errors.InvalidArgument(f"{where}: {DELETED_FILES} of {path} is not a list of paths")
        apply_layer(io.BytesIO(whiteout_tar(deleted)), upper, LAYER_MEDIA_TYPE, layer=f"{path}:{DELETED_FILES}")
    return os.path.join(dest, CHECKPOINT_DIR)


def whiteout_tar(paths: list[str]) -> bytes:
    """A layer deleting ``paths``: one ``.wh.`` member each (pure; the unpacker checks the names)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in paths:
            parent, _, name = p.strip("/").rpartition("/")
            info = tarfile.TarInfo(f"{parent}/.wh.{name}" if parent else f".wh.{name}")
            tar.addfile(info, io.BytesIO(b""))
    return buf.getvalue()


def writable_layer(mounts: list[Any]) -> str:
    """The directory holding a container's own files, from its snapshot's mounts (pure): the
    overlay's upper dir, or a copied snapshot's whole tree (every file then counts as changed)."""
    for m in mounts:
        if m.type == "overlay":
            for opt in m.options:
                if opt.startswith("upperdir="):
                    return str(opt[len("upperdir="):])
        elif m.type == "bind" and "ro" not in m.options:
            return str(m.source)
    return ""

"""The container checkpoint archive: what CheckpointContainer writes and CreateContainer restores.

The layout is CRI-O's, the one checkpointctl (the tool that inspects
kubelet checkpoints) reads; checkpointctl itself is not run here (its
go-criu dependency is not on the Go module proxy this VM reaches).  An
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

The new container's spec is the one its CreateContainer config makes, with
the dumped process's command line, environment and working directory put
back (the restored process is that one, and the status should say so:
``restored_spec``).  CRIU binds each of the dumped container's bind mounts
by destination (runtime/criu.py), so every one of them must be in the new
spec too; a missing one is refused before CRIU runs, naming it.

The archive is read into a directory of its own, plain files and
directories only, and only the members above are taken; others (CRI-O adds bind.mounts,
network.status, stats-dump...) are skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import errors

CHECKPOINT_DIR = "checkpoint"
CONFIG_DUMP = "config.dump"
SPEC_DUMP = "spec.dump"
ROOTFS_DIFF = "rootfs-diff.tar"
DELETED_FILES = "deleted.files"
DUMP_LOG = "dump.log"
TOP_LEVEL = frozenset({CONFIG_DUMP, SPEC_DUMP, ROOTFS_DIFF, DELETED_FILES, DUMP_LOG})
MAX_DUMP_BYTES = 1 << 22  # config.dump and spec.dump are read into memory
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
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def names_archive(image: str) -> bool:
    """A CreateContainer image that names a checkpoint archive (pure): an absolute path, which no
    image reference can be."""
    return image.startswith("/")


@dataclass(frozen=True, slots=True)
class ArchiveHead:
    """What CreateContainer reads of an archive before it makes anything."""

    meta: CheckpointMeta
    spec: Mapping[str, Any]  # spec.dump


def read_head(path: str, where: str) -> ArchiveHead:
    """config.dump and spec.dump of the archive at ``path`` (blocking); InvalidArgument naming
    ``where`` when it is no checkpoint archive."""
    docs: dict[str, Any] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            names = set()
            for m in tar:
                names.add(m.name)
                if m.name in (CONFIG_DUMP, SPEC_DUMP) and m.isfile():
                    if m.size > MAX_DUMP_BYTES:
                        raise ValueError(f"{m.name} is {m.size} bytes")
                    f = tar.extractfile(m)
                    assert f is not None
                    docs[m.name] = json.loads(f.read())
    except FileNotFoundError as err:
        raise errors.NotFound(f"{where}: checkpoint archive {path} does not exist") from err
    except (tarfile.TarError, OSError, ValueError) as err:
        raise errors.InvalidArgument(f"{where}: {path} is not a container checkpoint archive ({err})") from err
    for name in (CONFIG_DUMP, SPEC_DUMP, f"{CHECKPOINT_DIR}/inventory.img"):
        if name not in names:
            raise errors.InvalidArgument(f"{where}: {path} is not a container checkpoint archive (no {name})")
    spec = docs.get(SPEC_DUMP)
    if not isinstance(spec, Mapping):
        raise errors.InvalidArgument(f"{where}: {SPEC_DUMP} of {path} is not an OCI spec")
    return ArchiveHead(parse_config_dump(docs.get(CONFIG_DUMP), where), spec)


def bind_destinations(spec: Mapping[str, Any]) -> list[str]:
    """The destinations of a spec's bind mounts, in order (pure)."""
    out = []
    for m in spec.get("mounts") or []:
        if isinstance(m, Mapping) and (m.get("type") == "bind" or
                                       {"bind", "rbind"} & set(m.get("options") or [])):
            out.append(str(m.get("destination", "")))
    return out


# The namespaces CRIU restores as they were dumped (its own, the pod's, or the host's), with the
# CRI field that chooses each.
MATCHING_NAMESPACES = {
    "pid": "config.linux.security_context.namespace_options.pid",
    "network": "sandbox_config.linux.security_context.namespace_options.network",
}


def namespace_mode(spec: Mapping[str, Any], kind: str) -> str | None:
    """"own", "joined" (by path: the pod's) or "host" (no entry) for a spec's namespace of ``kind``;
    None when the spec lists no namespaces at all (pure)."""
    linux = spec.get("linux")
    if not isinstance(linux, Mapping) or not isinstance(linux.get("namespaces"), list):
        return None
    for ns in linux["namespaces"]:
        if isinstance(ns, Mapping) and ns.get("type") == kind:
            return "joined" if ns.get("path") else "own"
    return "host"


_NS_WORDS = {"own": "its own", "joined": "the pod's", "host": "the host's"}


def restored_spec(new: Mapping[str, Any], dumped: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The spec a restored container runs with (pure): ``new`` (its CreateContainer config's) with
    the dumped process's args, env and cwd.  FailedPrecondition when the dumped process had a
    terminal, when its PID or network namespace was of another kind (its own, the pod's, the
    host's) than the new one's, or when a bind mount of the dumped container is missing from
    ``new`` (CRIU binds each by destination and could not restore without it)."""
    old_process = dumped.get("process") if isinstance(dumped.get("process"), Mapping) else {}
    assert isinstance(old_process, Mapping)
    if old_process.get("terminal"):
        raise errors.FailedPrecondition(f"{where}: the checkpointed container had a terminal; it cannot be restored")
    for kind, field_name in MATCHING_NAMESPACES.items():
        was, now = namespace_mode(dumped, kind), namespace_mode(new, kind)
        if was is not None and now is not None and was != now:
            raise errors.FailedPrecondition(
                f"{field_name}: the checkpointed container's {kind} namespace was {_NS_WORDS[was]}, "
                f"the restored one's would be {_NS_WORDS[now]}")
    have = set(bind_destinations(new))
    missing = [d for d in bind_destinations(dumped) if d not in have]
    if missing:
        raise errors.FailedPrecondition(
            f"config.mounts: the checkpointed container had bind mounts at {', '.join(missing)}; "
            "the restored one needs a mount at each")
    process = dict(new.get("process") or {})
    for key in ("args", "env", "cwd"):
        if key in old_process:
            process[key] = old_process[key]
    return {**new, "process": process}


def unpack(path: str, dest: str, upper: str, where: str) -> str:
    """Extract the archive's checkpoint images into ``dest`` and apply its file changes to the
    writable layer ``upper`` (blocking); returns the images' directory."""
    os.makedirs(dest, mode=0o700, exist_ok=True)
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if m.name.split("/", 1)[0] == CHECKPOINT_DIR or m.name in TOP_LEVEL:
                    _extract(tar, m, dest, f"{where}: {path}")
    except tarfile.TarError as err:
        raise errors.InvalidArgument(f"{where}: {path}: {err}") from err
    if not os.path.isfile(os.path.join(dest, CHECKPOINT_DIR, "inventory.img")):
        raise errors.InvalidArgument(f"{where}: {path} holds no CRIU images ({CHECKPOINT_DIR}/inventory.img)")
    try:
        _apply_changes(path, dest, upper, where)
    except errors.PullError as err:  # the layer unpacker's refusal of a member, which it names
        raise errors.InvalidArgument(f"{where}: {err}") from err
    return os.path.join(dest, CHECKPOINT_DIR)


def _extract(tar: tarfile.TarFile, m: tarfile.TarInfo, dest: str, where: str) -> None:
    """One member under ``dest``: plain files and directories only, named inside it.  ``dest`` is
    fresh and nothing made here is a link, so no name can lead out of it once '..' and absolute
    names are refused (Debian 12's Python 3.11.2 has no tarfile extraction filters)."""
    parts = m.name.split("/")
    if m.name.startswith("/") or ".." in parts or not all(parts):
        raise errors.InvalidArgument(f"{where}: member {m.name!r} is not a relative path inside the archive")
    target = os.path.join(dest, *parts)
    if m.isdir():
        os.makedirs(target, mode=0o700, exist_ok=True)
        return
    if not m.isfile():
        raise errors.InvalidArgument(f"{where}: member {m.name!r} is not a file or directory")
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    src = tar.extractfile(m)
    assert src is not None
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError as err:
        raise errors.InvalidArgument(f"{where}: member {m.name!r} appears twice") from err
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def _apply_changes(path: str, dest: str, upper: str, where: str) -> None:
    from .snapshot.unpack import apply_layer

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

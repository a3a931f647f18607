"""The overlayfs snapshotter: one committed snapshot per layer chain, overlay mounts for containers.

Layout under ``root``::

    metadata.json            versioned, written atomically (temp, fsync, rename, fsync dir)
    snapshots/<n>/fs         a committed layer's files, or an active snapshot's upperdir
    snapshots/<n>/work       an active snapshot's overlay workdir
    snapshots/.tmp-*         unpacks in progress (removed at startup)

Snapshots are numbered (like containerd's) so that the ``lowerdir=`` option
of a deep image stays short: the kernel takes mount options in one page.

States of a snapshot number::

    (temp dir) --unpack ok, syncfs, rename, metadata--> committed(chain id)
    (none) --prepare/view--> active(key) --remove--> (none)
    committed --remove_committed (GC)--> (none)

Crash safety: a layer is unpacked into a temp dir, flushed with syncfs,
renamed to ``snapshots/<n>`` and only then recorded in metadata.json.  A crash
at any point leaves either nothing under a chain id or a complete snapshot;
temp dirs and numbered dirs that metadata does not know are removed by
:meth:`Snapshotter.clean_temporary` at startup.

Chain ids follow the OCI image spec: ``ChainID(L0) = DiffID(L0)`` and
``ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))``.

Identical concurrent unpacks share the work: each chain id has a lock, and
the second caller finds the snapshot committed when it gets the lock.

Where overlayfs (with whiteout devices and trusted.* xattrs) does not work in
``root`` -- checked once by mounting a probe -- prepare() and view() copy the
chain into a plain directory and return a bind mount instead.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import SyscallError

from ..content.digest import is_digest
from ..content.durable import TEMP_PREFIX, read_versioned, remove_temporaries, temp_name, write_atomic
from ..disk_usage import tree_usage
from ..errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PullError,
)
from .unpack import Readable, apply_layer

log = logging.getLogger("dockyard.cri.snapshot")

METADATA_VERSION = 1
_OVERLAY_XATTR_PREFIX = "trusted.overlay."

_libc = ctypes.CDLL(None, use_errno=True)


def chain_id(parent_chain_id: str | None, diff_id: str) -> str:
    """The OCI chain id of a layer on top of ``parent_chain_id``."""
    if parent_chain_id is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain_id} {diff_id}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Mount:
    """A mount to perform, as containerd describes one: mount -t type source target -o options."""

    type: str
    source: str
    options: tuple[str, ...]


@dataclass(slots=True)
class _Committed:
    number: int
    parent: str | None
    diff_id: str
    size: int
    inodes: int


@dataclass(slots=True)
class _Active:
    number: int
    parent: str | None
    readonly: bool
    copied: bool  # copying fallback: fs holds the whole chain


def syncfs(path: str) -> None:
    """Flush the file system holding ``path`` (one call instead of an fsync per file)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise Internal(f"syncfs {path}: {os.strerror(code)}")
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Staged:
    """A layer unpacked into a temp dir, verified, not yet committed (Snapshotter.stage)."""

    temp: str
    chain: str
    diff_id: str
    size: int
    inodes: int


class Snapshotter:
    """Committed layer snapshots by chain id and active snapshots by key; see the module docstring."""

    def __init__(self, root: str, *, use_overlay: bool | None = None) -> None:
        self.root = root
        self._snapshots = os.path.join(root, "snapshots")
        self._metadata_path = os.path.join(root, "metadata.json")
        os.makedirs(self._snapshots, mode=0o700, exist_ok=True)
        # _lock guards _committed, _active, _next and _generation; _save_lock
        # guards metadata.json and _saved (see _persist).
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._generation = 0  # bumped at every change of _committed/_active
        self._saved = 0  # the generation metadata.json holds
        self._chain_locks: dict[str, threading.Lock] = {}
        self._committed: dict[str, _Committed] = {}
        self._active: dict[str, _Active] = {}
        self._next = 1
        self._overlay = use_overlay
        # _probe_lock makes the overlay probe run once: concurrent first
        # container creations (worker threads) probed at once in the same
        # scratch dir, tore each other's layers down, and the daemon then
        # copied every snapshot for its whole life.
        self._probe_lock = threading.Lock()
        self._load()

    # -- metadata -------------------------------------------------------------

    def _load(self) -> None:
        doc = read_versioned(self._metadata_path, "snapshot metadata", METADATA_VERSION)
        if doc is None:
            return
        try:
            self._next = int(doc["next"])
            self._committed = {k: _Committed(**v) for k, v in doc["committed"].items()}
            self._active = {k: _Active(**v) for k, v in doc["active"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise Internal(f"snapshot metadata {self._metadata_path} is corrupt: {err}") from err

    def _changed(self) -> int:
        """Note a change of the metadata (caller holds _lock); the generation to persist."""
        self._generation += 1
        return self._generation

    def _persist(self, generation: int) -> None:
        """Make metadata.json hold ``generation`` or a later one (caller does not hold _lock).

        Group commit: the write and its two fsyncs happen outside _lock, and
        one write covers every change made before it was taken.  Ten pods
        created at once used to queue on _lock for ten writes of 20-50 ms
        each on a busy disk (CreateContainer p50 3.9x containerd's in
        bench/density.py); now the ones that waited find their change saved
        by the writer before them."""
        with self._save_lock:
            if self._saved >= generation:
                return
            with self._lock:
                data = self._doc()
                current = self._generation
            write_atomic(self._metadata_path, data)
            self._saved = current

    def _doc(self) -> bytes:
        doc: dict[str, Any] = {
            "version": METADATA_VERSION,
            "next": self._next,
            "committed": {
                k: {"number": c.number, "parent": c.parent, "diff_id": c.diff_id, "size": c.size, "inodes": c.inodes}
                for k, c in self._committed.items()
            },
            "active": {
                k: {"number": a.number, "parent": a.parent, "readonly": a.readonly, "copied": a.copied}
                for k, a in self._active.items()
            },
        }
        return json.dumps(doc, sort_keys=True).encode()

    def _allocate(self) -> int:
        """A snapshot number whose directory does not exist (caller holds _lock)."""
        while os.path.lexists(self._dir(self._next)):
            self._next += 1
        number = self._next
        self._next += 1
        return number

    def _dir(self, number: int) -> str:
        return os.path.join(self._snapshots, str(number))

    def fs_dir(self, chain: str) -> str:
        """The files of a committed snapshot (NotFound if there is none)."""
        with self._lock:
            c = self._committed.get(chain)
        if c is None:
            raise NotFound(f"snapshot {chain} is not committed")
        return os.path.join(self._dir(c.number), "fs")

    # -- startup ----------------------------------------------------------------

    def clean_temporary(self) -> int:
        """Remove unpacks in progress and numbered dirs metadata does not know; return how many."""
        with self._lock:
            known = {str(c.number) for c in self._committed.values()} | {str(a.number) for a in self._active.values()}
            removed = remove_temporaries(self.root)
            for name in os.listdir(self._snapshots):
                if name in known:
                    continue
                path = os.path.join(self._snapshots, name)
                if name.startswith(TEMP_PREFIX) or name.isdigit():
                    shutil.rmtree(path)
                    removed += 1
                    log.info("removed leftover snapshot dir %s", path)
            return removed

    # -- committed snapshots ------------------------------------------------------

    def committed(self) -> set[str]:
        with self._lock:
            return set(self._committed)

    def unpack(self, layer_path: str, media_type: str, diff_id: str, parent_chain_id: str | None) -> str:
        """Unpack the layer blob at ``layer_path`` on top of ``parent_chain_id``; return its chain id.

        Idempotent: an existing committed snapshot is reused.  The uncompressed
        digest must equal ``diff_id`` (from the image config), else PullError.
        """
        chain = chain_id(parent_chain_id, diff_id)
        with self._lock:
            if chain in self._committed:
                return chain
            if parent_chain_id is not None and parent_chain_id not in self._committed:
                raise NotFound(f"parent snapshot {parent_chain_id} of {chain} is not committed")
            lock = self._chain_locks.setdefault(chain, threading.Lock())
        with lock:
            staged = self.stage(layer_path, media_type, diff_id, chain)
            if staged is not None:
                self.commit_staged(staged, parent_chain_id)
        return chain

    def stage(self, layer_path: str, media_type: str, diff_id: str, chain: str,
              source: Readable | None = None) -> Staged | None:
        """Unpack a layer into a temp dir beside the snapshots, before its
        parent is committed (a layer's files do not depend on the layers below:
        whiteouts are files of their own); None if ``chain`` is committed already.
        The blob is read from ``source`` if given (a download being followed,
        cri/content/follow.py), else from ``layer_path``.

        This is what lets a pull unpack every layer as its bytes arrive,
        several at once, and commit them in order afterwards.  A staged dir
        that is never committed is removed by discard(), or at the next
        start by clean_temporary() (its name has the temp prefix)."""
        if not is_digest(diff_id):
            raise InvalidArgument(f"diff id {diff_id!r} is not a sha256 digest")
        with self._lock:
            if chain in self._committed:
                return None
        # A name of its own for every stage: two pulls sharing a layer may
        # stage the same chain at once, even on one worker thread, and each
        # staged dir lives until its own pull commits or discards it.
        temp = temp_name(os.path.join(self._snapshots, chain[7:19]))
        os.mkdir(temp, mode=0o755)  # exclusive: never another stage's dir
        fs = os.path.join(temp, "fs")
        try:
            os.mkdir(fs, mode=0o755)
            layer = os.path.basename(layer_path)
            layer_name = f"sha256:{layer}" if len(layer) == 64 else layer_path
            if source is not None:
                actual = apply_layer(source, fs, media_type, layer=layer_name)
            else:
                try:
                    with open(layer_path, "rb", buffering=0) as f:
                        actual = apply_layer(f, fs, media_type, layer=layer_name)
                except FileNotFoundError as err:
                    raise NotFound(f"layer blob {layer_path} is missing") from err
            if actual != diff_id:
                raise PullError(
                    f"layer {layer_name}: uncompressed digest {actual} does not match diff id {diff_id}",
                    reason="digest_mismatch",
                )
            size, inodes = tree_usage(temp)  # the whole snapshots/<n> it becomes
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return Staged(temp, chain, diff_id, size, inodes)

    @staticmethod
    def flush(staged: Staged) -> None:
        """Write a staged layer's files to the disk now (syncfs), ahead of its commit.

        A pull calls it as each layer's staging ends, while other layers still
        unpack, so the disk writes overlap that work instead of all waiting
        for the commits at the end (commit_staged still syncs: a staged layer
        may be committed without this)."""
        syncfs(staged.temp)

    def commit_staged(self, staged: Staged, parent: str | None) -> str:
        """Make a staged layer the committed snapshot ``staged.chain`` on ``parent``.

        Its files reach the disk first (one syncfs: after flush(), or after
        the first commit of a pull, it finds little left to write).  A chain
        another pull committed meanwhile is kept and the staged copy dropped."""
        try:
            with self._lock:
                if staged.chain in self._committed:
                    self.discard(staged)
                    return staged.chain
                if parent is not None and parent not in self._committed:
                    raise NotFound(f"parent snapshot {parent} of {staged.chain} is not committed")
            syncfs(staged.temp)
            with self._lock:
                if staged.chain in self._committed:
                    self.discard(staged)
                    return staged.chain
                number = self._allocate()
                os.rename(staged.temp, self._dir(number))
                self._committed[staged.chain] = _Committed(number, parent, staged.diff_id, staged.size, staged.inodes)
                generation = self._changed()
            try:
                self._persist(generation)
            except BaseException:
                with self._lock:
                    del self._committed[staged.chain]
                    os.rename(self._dir(number), staged.temp)
                    self._changed()
                raise
        except BaseException:
            self.discard(staged)
            raise
        log.debug("committed snapshot %s (%d bytes, %d inodes)", staged.chain, staged.size, staged.inodes)
        return staged.chain

    @staticmethod
    def discard(staged: Staged) -> None:
        shutil.rmtree(staged.temp, ignore_errors=True)

    @staticmethod
    def chain_of(parent_chain_id: str | None, diff_id: str) -> str:
        """The chain id ``unpack`` will commit a layer under (what a lease must hold first)."""
        return chain_id(parent_chain_id, diff_id)

    def remove_committed(self, chain: str) -> None:
        """Delete a committed snapshot and the committed snapshots built on it.

        Idempotent (a chain already gone is fine), because garbage collection
        removes sets of chains in no particular order.  Refused while an
        active snapshot (a container) is built on any of them.
        """
        self.detach_committed(chain)()

    def detach_committed(self, chain: str) -> Callable[[], None]:
        """remove_committed in two steps: forget the chain and its descendants now
        (FailedPrecondition while an active snapshot is built on one), and return
        what deletes their files, to be called without holding any caller's lock."""
        with self._lock:
            if chain not in self._committed:
                return lambda: None
            doomed = self._descendants(chain)
            for key, active in self._active.items():
                if active.parent in doomed:
                    raise FailedPrecondition(f"snapshot {chain} is in use by active snapshot {key}")
            numbers = [self._committed.pop(c).number for c in doomed]
            generation = self._changed()
        self._persist(generation)
        dirs = [self._dir(number) for number in numbers]

        def delete() -> None:
            for path in dirs:
                shutil.rmtree(path, ignore_errors=True)

        return delete

    def _descendants(self, chain: str) -> set[str]:
        doomed = {chain}
        grew = True
        while grew:
            grew = False
            for c, meta in self._committed.items():
                if c not in doomed and meta.parent in doomed:
                    doomed.add(c)
                    grew = True
        return doomed

    def _lowers(self, chain: str) -> list[str]:
        """fs dirs of the chain, top (the chain itself) first (caller holds _lock)."""
        dirs: list[str] = []
        current: str | None = chain
        while current is not None:
            c = self._committed.get(current)
            if c is None:
                raise NotFound(f"snapshot {current} is not committed")
            dirs.append(os.path.join(self._dir(c.number), "fs"))
            current = c.parent
        return dirs

    # -- active snapshots -----------------------------------------------------------

    def overlay_supported(self) -> bool:
        """Whether overlayfs with whiteout devices and opaque xattrs works in ``root`` (probed once)."""
        if self._overlay is None:
            with self._probe_lock:
                if self._overlay is None:
                    works = _probe_overlay(self._snapshots)
                    if not works:
                        log.warning("overlayfs does not work in %s; snapshots will be copied", self.root)
                    self._overlay = works
        return self._overlay

    def prepare(self, key: str, parent_chain_id: str | None, *, durable: bool = True) -> list[Mount]:
        """A writable snapshot for a container: overlay upper/work over the chain.

        With ``durable=False`` the metadata write is left to the caller's
        ``make_durable()``: CreateContainer runs it beside its CREATED record's
        write (cri/server/container_create.py), RunPodSandbox while it makes
        the rest of the pod (cri/server/sandbox_run.py)."""
        return self._new_active(key, parent_chain_id, readonly=False, durable=durable)

    def make_durable(self) -> None:
        """Make metadata.json hold every change made so far (group commit)."""
        with self._lock:
            generation = self._generation
        self._persist(generation)

    def view(self, key: str, parent_chain_id: str | None) -> list[Mount]:
        """A read-only view of the chain (a bind mount for one layer, overlay lowers otherwise)."""
        return self._new_active(key, parent_chain_id, readonly=True)

    def mounts(self, key: str) -> list[Mount]:
        """The mounts of an existing active snapshot (after a restart, say)."""
        with self._lock:
            active = self._active.get(key)
            if active is None:
                raise NotFound(f"snapshot {key} does not exist")
            lowers = self._lowers(active.parent) if active.parent is not None else []
        return self._mounts_for(active, lowers)

    def _new_active(self, key: str, parent: str | None, readonly: bool, durable: bool = True) -> list[Mount]:
        if not key:
            raise InvalidArgument("snapshot key is empty")
        copy = not self.overlay_supported()
        with self._lock:
            if key in self._active:
                raise AlreadyExists(f"snapshot {key} already exists")
            lowers = self._lowers(parent) if parent is not None else []
            number = self._allocate()
            active = _Active(number, parent, readonly, copy)
            base = self._dir(number)
            os.makedirs(os.path.join(base, "fs"), mode=0o755)
            try:
                if copy:
                    for lower in reversed(lowers):
                        merge_layer(lower, os.path.join(base, "fs"))
                if not readonly and not copy and lowers:
                    os.mkdir(os.path.join(base, "work"), 0o700)
                self._active[key] = active
                generation = self._changed()
            except BaseException:
                self._active.pop(key, None)
                shutil.rmtree(base, ignore_errors=True)
                raise
        if not durable:
            # Until the caller's make_durable(), a crash leaves a numbered dir
            # metadata does not know, which clean_temporary removes at start.
            return self._mounts_for(active, lowers)
        try:
            self._persist(generation)
        except BaseException:
            with self._lock:
                if self._active.get(key) is active:
                    del self._active[key]
                self._changed()
            shutil.rmtree(base, ignore_errors=True)
            raise
        return self._mounts_for(active, lowers)

    def _mounts_for(self, active: _Active, lowers: list[str]) -> list[Mount]:
        base = self._dir(active.number)
        fs = os.path.join(base, "fs")
        ro = ("ro",) if active.readonly else ("rw",)
        if active.copied or not lowers:
            return [Mount("bind", fs, ("rbind",) + ro)]
        if active.readonly:
            if len(lowers) == 1:
                return [Mount("bind", lowers[0], ("rbind", "ro"))]
            return [Mount("overlay", "overlay", ("lowerdir=" + ":".join(lowers),))]
        return [
            Mount(
                "overlay",
                "overlay",
                (
                    f"workdir={os.path.join(base, 'work')}",
                    f"upperdir={fs}",
                    "lowerdir=" + ":".join(lowers),
                ),
            )
        ]

    def remove(self, key: str) -> None:
        """Delete an active snapshot (its upper dir goes with it); NotFound if absent."""
        with self._lock:
            active = self._active.pop(key, None)
            if active is None:
                raise NotFound(f"snapshot {key} does not exist")
            generation = self._changed()
        self._persist(generation)
        shutil.rmtree(self._dir(active.number), ignore_errors=True)

    def active(self) -> set[str]:
        with self._lock:
            return set(self._active)

    def in_use(self) -> set[str]:
        """The committed chains some active snapshot (a container's or a pod's
        rootfs) is built on, their ancestors included: what garbage
        collection must keep whatever the image records say, as a lease
        keeps content in containerd."""
        with self._lock:
            used: set[str] = set()
            for active in self._active.values():
                current = active.parent
                while current is not None and current not in used:
                    used.add(current)
                    meta = self._committed.get(current)
                    current = meta.parent if meta is not None else None
            return used

    def usage(self) -> tuple[int, int]:
        """(bytes, inodes) of everything under ``root``: committed snapshots as
        measured when they were committed (they never change), everything else
        (active snapshots' upper dirs, unpacks in progress, metadata) measured now."""
        with self._lock:
            used = sum(c.size for c in self._committed.values())
            inodes = sum(c.inodes for c in self._committed.values())
            recorded = {str(c.number) for c in self._committed.values()}
        for path in (self.root, self._snapshots):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            used += st.st_blocks * 512
            inodes += 1
        for directory, skip in ((self.root, {os.path.basename(self._snapshots)}), (self._snapshots, recorded)):
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                if name not in skip:
                    b, i = tree_usage(os.path.join(directory, name))
                    used += b
                    inodes += i
        return used, inodes

    # -- mounting -------------------------------------------------------------------

    @staticmethod
    def mount(mounts: list[Mount], target: str) -> None:
        """Perform ``mounts`` on ``target`` (what a shim does with a container's rootfs)."""
        for m in mounts:
            try:
                if m.type == "bind":
                    flags = syscalls.MS_BIND | (syscalls.MS_REC if "rbind" in m.options else 0)
                    syscalls.mount(m.source, target, None, flags)
                    if "ro" in m.options:
                        syscalls.mount(None, target, None, syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY)
                else:
                    syscalls.mount(m.source, target, m.type, 0, ",".join(m.options))
            except SyscallError as err:
                raise Internal(f"mount {m.type} on {target}: {err}") from err

    @staticmethod
    def unmount(target: str) -> None:
        try:
            syscalls.umount2(target, 0)
        except SyscallError as err:
            if err.errno != errno.EINVAL:  # EINVAL: not a mount point (already unmounted)
                raise Internal(f"unmount {target}: {err}") from err


# -- copying fallback ---------------------------------------------------------------


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    for name in os.listxattr(src, follow_symlinks=False):
        if not name.startswith(_OVERLAY_XATTR_PREFIX):
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _remove_path(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def merge_layer(layer: str, dest: str) -> None:
    """Apply one committed layer dir onto ``dest`` as overlayfs would show it.

    Whiteout devices delete, opaque dirs replace, everything else is copied
    with ownership, mode, xattrs and times; hardlinks within the layer stay
    hardlinks.  Both trees are ours (snapshots), so no path in them is hostile.
    """
    links: dict[tuple[int, int], str] = {}
    dir_times: list[tuple[str, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(layer):
        rel = os.path.relpath(dirpath, layer)
        target_dir = dest if rel == "." else os.path.join(dest, rel)
        for name in sorted(dirnames + filenames):
            src = os.path.join(dirpath, name)
            dst = os.path.join(target_dir, name)
            st = os.lstat(src)
            if _is_whiteout(st):
                _remove_path(dst)
                continue
            if stat.S_ISDIR(st.st_mode):
                if os.path.lexists(dst) and (not os.path.isdir(dst) or os.path.islink(dst) or _is_opaque(src)):
                    _remove_path(dst)
                if not os.path.lexists(dst):
                    os.mkdir(dst, 0o700)
                _copy_metadata(src, dst, st)
                dir_times.append((dst, st))
                continue
            _remove_path(dst)
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                os.link(links[key], dst)
                continue
            if stat.S_ISREG(st.st_mode):
                shutil.copyfile(src, dst, follow_symlinks=False)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), dst)
            else:
                os.mknod(dst, st.st_mode, st.st_rdev)
            _copy_metadata(src, dst, st)
            if st.st_nlink > 1:
                links[key] = dst
    for path, st in reversed(dir_times):
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


# -- overlay probe ------------------------------------------------------------------


def _probe_overlay(root: str) -> bool:
    """Mount a small overlay in ``root``: a whiteout device and an opaque dir must hide lower files."""
    probe = os.path.join(root, f"{TEMP_PREFIX}overlay-probe-{os.getpid()}")
    shutil.rmtree(probe, ignore_errors=True)
    lower1, lower2, upper, work, merged = (os.path.join(probe, n) for n in ("l1", "l2", "u", "w", "m"))
    try:
        for d in (lower1, lower2, upper, work, merged):
            os.makedirs(d)
        with open(os.path.join(lower1, "gone"), "w"):
            pass
        os.mkdir(os.path.join(lower1, "dir"))
        with open(os.path.join(lower1, "dir", "hidden"), "w"):
            pass
        os.mknod(os.path.join(lower2, "gone"), stat.S_IFCHR, os.makedev(0, 0))
        os.mkdir(os.path.join(lower2, "dir"))
        os.setxattr(os.path.join(lower2, "dir"), "trusted.overlay.opaque", b"y")
    except OSError as err:
        log.info("overlay probe: cannot build the test layers in %s: %s", root, err)
        shutil.rmtree(probe, ignore_errors=True)
        return False
    options = f"lowerdir={lower2}:{lower1},upperdir={upper},workdir={work}"
    try:
        syscalls.mount("overlay", merged, "overlay", 0, options)
    except SyscallError as err:
        log.info("overlay probe: mount failed in %s: %s", root, err)
        shutil.rmtree(probe, ignore_errors=True)
        return False
    try:
        works = sorted(os.listdir(merged)) == ["dir"] and os.listdir(os.path.join(merged, "dir")) == []
    finally:
        syscalls.umount2(merged, 0)
        shutil.rmtree(probe, ignore_errors=True)
    return works

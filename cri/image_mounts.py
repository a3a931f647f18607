"""Image volumes (a CRI Mount with ``image`` set): an image's files, read-only, in a container.

kubelet pulls the image first, following the volume's pull policy, and
names it in ``Mount.image.image`` (the image id or a reference); the
runtime never pulls for a volume, so an image that is not here is NotFound.

Each volume is a read-only view of the image's layer chain
(``Snapshotter.view``: one layer bound read-only, several stacked as an
overlay with lower layers only, which the kernel can only mount read-only),
mounted at ``<bundle>/image-mounts/<i>`` and bound from there (or from its
``image_sub_path`` inside it) into the container, read-only.  The view's
snapshot key is ``<container key>/image-mount/<i>``: recovery and release
find a container's views by that prefix, and garbage collection keeps the
chain while the view exists, whatever happens to the image's record.

Facts and choices:

* ``image_sub_path`` is relative and stays inside the image: symlinks are
  resolved with the view as "/" (an image may carry links pointing
  anywhere), and it must exist.
* The mounts are undone newest first by CreateContainer's rollback, and by
  :func:`release` (from cri/bundle.py) at removal and in recovery.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.runtime.kernel.errors import SyscallError
from dockyard.runtime.kernel.securejoin import resolve_in_root

from . import errors

MOUNTS_DIR = "image-mounts"
KEY_PART = "image-mount"


class SnapshotKeys(Protocol):
    def remove(self, key: str) -> None: ...
    def active(self) -> set[str]: ...


class ViewSnapshotter(SnapshotKeys, Protocol):
    def view(self, key: str, parent_chain_id: str | None) -> list[Any]: ...
    @staticmethod
    def mount(mounts: list[Any], target: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ImageMount:
    """One image volume of a container, resolved before anything is taken."""

    index: int  # in config.mounts
    chain_id: str | None  # the image's top layer chain (None: no layers)
    sub_path: str
    field: str  # config.mounts[i]


def snapshot_key(container_key: str, index: int) -> str:
    return f"{container_key}/{KEY_PART}/{index}"


def owner_key(snapshot: str) -> str:
    """The container (or pod) key a snapshot key belongs to (itself for a rootfs)."""
    return snapshot.split("/", 1)[0]


def check_sub_path(sub_path: str, field: str) -> str:
    """A relative path that stays inside the image, lexically (pure)."""
    if not sub_path:
        return ""
    if sub_path.startswith("/") or "\0" in sub_path:
        raise errors.InvalidArgument(f"{field}.image_sub_path: {errors.shorten(sub_path)!r} must be a relative path")
    if ".." in sub_path.split("/"):
        raise errors.InvalidArgument(f"{field}.image_sub_path: {errors.shorten(sub_path)!r} must not contain '..'")
    return os.path.normpath(sub_path)


def mount_all(snapshotter: ViewSnapshotter, wanted: Sequence[ImageMount], bundle: str,
              container_key: str, unmount: Callable[[str], None] | None = None,
              mount: Callable[[list[Any], str], None] | None = None) -> dict[int, str]:
    """Mount each volume's view under the bundle (blocking); -> config.mounts index -> the host
    path to bind.  ``mount`` replaces the snapshotter's (a pod with a user namespace mounts
    through its id map, cri/snapshot/idmapped.py).  On failure, what this call mounted is
    undone before it raises."""
    sources: dict[int, str] = {}
    with contextlib.ExitStack() as undo:
        for m in wanted:
            key = snapshot_key(container_key, m.index)
            target = os.path.join(bundle, MOUNTS_DIR, str(m.index))
            os.makedirs(target, mode=0o755, exist_ok=True)
            mounts = snapshotter.view(key, m.chain_id)
            undo.callback(_remove_snapshot, snapshotter, key)
            (mount or snapshotter.mount)(mounts, target)
            undo.callback(unmount or _unmount, target)
            source = target
            if m.sub_path:
                try:
                    source = resolve_in_root(target, m.sub_path)
                except SyscallError as err:
                    raise errors.InvalidArgument(f"{m.field}.image_sub_path: {m.sub_path!r}: {err}") from err
                if not os.path.lexists(source):
                    raise errors.InvalidArgument(f"{m.field}.image_sub_path: {m.sub_path!r} does not exist in the image")
            sources[m.index] = source
        undo.pop_all()
    return sources


def release(snapshotter: SnapshotKeys, bundle: str, container_key: str,
            unmount: Callable[[str], None] | None = None) -> None:
    """Unmount the bundle's image volumes and remove their views (blocking, idempotent)."""
    if bundle:
        base = os.path.join(bundle, MOUNTS_DIR)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for name in sorted(os.listdir(base)):
                (unmount or _unmount)(os.path.join(base, name))
    if container_key:
        prefix = f"{container_key}/{KEY_PART}/"
        for key in sorted(k for k in snapshotter.active() if k.startswith(prefix)):
            _remove_snapshot(snapshotter, key)


def _unmount(target: str) -> None:
    from .bundle import unmount_all

    unmount_all(target)


def _remove_snapshot(snapshotter: SnapshotKeys, key: str) -> None:
    with contextlib.suppress(errors.NotFound):
        snapshotter.remove(key)

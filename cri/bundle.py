"""A container's or pod's bundle on disk, and its release.

CreateContainer and RunPodSandbox write the bundle (its config.json, and
the rootfs mounted from its snapshot); RemoveContainer, RemovePodSandbox,
create's rollback and recovery (restart.py) release it.  Each release step
is idempotent, so any of them may run again after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Any, Protocol

from dockyard.runtime.kernel.errors import SyscallError

from . import errors
from .unmount import unmount_stacked


class SnapshotRemover(Protocol):
    def remove(self, key: str) -> None: ...
    def active(self) -> set[str]: ...


def write_config(path: str, spec: dict[str, Any]) -> None:
    """The bundle's config.json (the OCI spec the runtime reads)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=1)


def release_rootfs(snapshotter: SnapshotRemover, rootfs: str, snapshot_key: str, bundle: str) -> None:
    """Blocking: unmount ``rootfs`` and the bundle's image volumes, remove the snapshot and the
    volumes' views (cri/image_mounts.py), remove the bundle dir (each if present)."""
    from . import image_mounts

    if rootfs and os.path.isdir(rootfs):
        unmount_all(rootfs)
    image_mounts.release(snapshotter, bundle, snapshot_key)
    if snapshot_key:
        with contextlib.suppress(errors.NotFound):
            snapshotter.remove(snapshot_key)
    if bundle:
        shutil.rmtree(bundle, ignore_errors=True)


def unmount_all(target: str) -> None:
    """Unmount ``target`` until it is no mount point (stacked mounts included)."""
    try:
        unmount_stacked(target)
    except SyscallError as err:
        raise errors.Internal(f"unmount {target}: {err}") from err

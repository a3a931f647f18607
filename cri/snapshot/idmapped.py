"""Mount a snapshot so that a pod's user namespace sees its image's files as their owners.

In a pod with its own user namespace (``hostUsers: false``), container root
is an unprivileged host uid (say 100000).  The image's files belong to host
uid 0, which that namespace does not map: the container would see its whole
rootfs owned by nobody and could not write to root's directories.  Like
containerd 2, the layers are mounted through *idmapped mounts* carrying the
pod's map, so a file owned by 0 on disk is owned by 100000 as the host sees
it through the mount, and by 0 inside the pod.

Facts this module relies on (each checked on this project's 6.x kernel):

* An idmapped mount is made from a detached clone of a mount
  (``open_tree(OPEN_TREE_CLONE)``), given the map of a user namespace with
  ``mount_setattr(MOUNT_ATTR_IDMAP)``, then attached with ``move_mount``.
  The filesystem must allow it: ext4, xfs, btrfs and tmpfs do, overlayfs does
  not (EINVAL), so an overlay is built from idmapped *lower layers*
  (overlayfs accepts idmapped layers since 5.19).
* The upper layer stays a plain directory.  New files are made in it with
  the creating process's host ids (100000 for container root), and a file
  copied up from an idmapped lower keeps the owner the lower shows (100000):
  on disk, the upper layer holds host ids, as a container without a user
  namespace's does.  The upper directory itself is the overlay's root, so it
  is chowned to container root's host ids first, or root could not create
  files in ``/``.
* overlayfs keeps its own reference to each layer, so the idmapped lower
  mounts can be detached from their scratch directories right after the
  overlay is mounted: nothing of them stays visible in the mount table.
* The map comes from a user namespace fd: the pod's own (its pause process
  holds it), so the mount and the containers agree by construction.
* A bind mount (a one-layer read-only view, or a snapshot copied where
  overlayfs does not work) is itself cloned and idmapped.

Blocking; called in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from typing import Any

from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import SyscallError

from ..errors import Internal


def _idmapped_clone(source: str, userns_fd: int, recursive: bool) -> int:
    flags = syscalls.OPEN_TREE_CLONE | syscalls.OPEN_TREE_CLOEXEC | (syscalls.AT_RECURSIVE if recursive else 0)
    tree = syscalls.open_tree(syscalls.AT_FDCWD, source, flags)
    try:
        syscalls.mount_setattr(tree, "", syscalls.AT_EMPTY_PATH | (syscalls.AT_RECURSIVE if recursive else 0),
                               syscalls.MOUNT_ATTR_IDMAP, userns_fd=userns_fd)
    except BaseException:
        os.close(tree)
        raise
    return tree


def _attach(tree: int, target: str) -> None:
    try:
        syscalls.move_mount(tree, "", syscalls.AT_FDCWD, target, syscalls.MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(tree)


def overlay_options(options: Sequence[str]) -> tuple[list[str], list[str]]:
    """(lower dirs, the other options) of an overlay mount's options (pure)."""
    lowers: list[str] = []
    rest: list[str] = []
    for opt in options:
        if opt.startswith("lowerdir="):
            lowers = opt[len("lowerdir="):].split(":")
        else:
            rest.append(opt)
    return lowers, rest


def upper_dir(options: Sequence[str]) -> str:
    return next((o[len("upperdir="):] for o in options if o.startswith("upperdir=")), "")


def mount(mounts: Sequence[Any], target: str, userns_fd: int, scratch: str, root_ids: tuple[int, int] | None) -> None:
    """Mount the snapshot ``mounts`` (cri/snapshot/overlay.py's Mount records) on ``target``
    through the id map of ``userns_fd``.  ``scratch``: an empty directory for the idmapped lower
    layers while the overlay is made (removed after).  ``root_ids``: container root's host
    (uid, gid), given to the upper layer's root directory."""
    for m in mounts:
        try:
            if m.type == "bind":
                _attach(_idmapped_clone(m.source, userns_fd, "rbind" in m.options), target)
                if "ro" in m.options:
                    syscalls.mount(None, target, None, syscalls.MS_BIND | syscalls.MS_REMOUNT | syscalls.MS_RDONLY)
            elif m.type == "overlay":
                _mount_overlay(m, target, userns_fd, scratch, root_ids)
            else:
                raise Internal(f"mount {m.type} on {target}: cannot be idmapped")
        except SyscallError as err:
            raise Internal(f"idmapped mount of {m.type} on {target}: {err}") from err


def _mount_overlay(m: Any, target: str, userns_fd: int, scratch: str, root_ids: tuple[int, int] | None) -> None:
    lowers, rest = overlay_options(m.options)
    upper = upper_dir(rest)
    if upper and root_ids is not None:
        os.chown(upper, *root_ids)
    os.makedirs(scratch, mode=0o700)
    attached: list[str] = []
    try:
        for i, lower in enumerate(lowers):
            layer = os.path.join(scratch, str(i))
            os.mkdir(layer, 0o700)
            _attach(_idmapped_clone(lower, userns_fd, False), layer)
            attached.append(layer)
        syscalls.mount("overlay", target, "overlay", 0, ",".join([*rest, "lowerdir=" + ":".join(attached)]))
    finally:
        # The overlay holds its own references to the layers (or failed): the scratch mounts go.
        for layer in reversed(attached):
            with contextlib.suppress(SyscallError):
                syscalls.umount2(layer, syscalls.MNT_DETACH)
        shutil.rmtree(scratch, ignore_errors=True)


def root_host_ids(uid_maps: Sequence[dict[str, Any]], gid_maps: Sequence[dict[str, Any]]) -> tuple[int, int] | None:
    """The host (uid, gid) of container root under OCI id maps, or None if 0 is not mapped (pure)."""
    def host(maps: Sequence[dict[str, Any]]) -> int | None:
        for m in maps:
            if int(m["containerID"]) <= 0 < int(m["containerID"]) + int(m["size"]):
                return int(m["hostID"]) - int(m["containerID"])
        return None
    uid, gid = host(uid_maps), host(gid_maps)
    return (uid, gid) if uid is not None and gid is not None else None


def open_pod_userns(pause_pid: int) -> int:
    """An fd of the user namespace the pod's pause process holds (the pod's own); FailedPrecondition
    if it is gone or is the host's."""
    from ..errors import FailedPrecondition

    path = f"/proc/{pause_pid}/ns/user"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise FailedPrecondition(f"the pod's user namespace ({path}) is gone: {err.strerror}") from err
    if os.fstat(fd).st_ino == os.stat("/proc/self/ns/user").st_ino:
        os.close(fd)
        raise FailedPrecondition(f"the pod's pause process {pause_pid} is in the host's user namespace")
    return fd

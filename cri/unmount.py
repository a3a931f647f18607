"""Unmounting a path that may hold several stacked mounts.

A path can be mounted over more than once (a retried setup, a propagated
mount); one umount2 removes only the top one.  MNT_DETACH so that a busy
mount still leaves the tree at once (its users keep it until they let go).
EINVAL (no longer a mount point) or ENOENT (no such path) ends the loop.
"""

from __future__ import annotations

import errno

from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import SyscallError

# More stacked mounts than anything here makes; the loop must end.
MAX_STACKED = 16


def unmount_stacked(target: str) -> None:
    """Unmount ``target`` until it is no mount point; any other failure raises SyscallError."""
    for _ in range(MAX_STACKED):
        try:
            syscalls.umount2(target, syscalls.MNT_DETACH)
        except SyscallError as err:
            if err.errno in (errno.EINVAL, errno.ENOENT):
                return
            raise

"""The host side of CRI bind mounts: refuse the daemon's own dirs, create what is missing.

containerd's behaviour, which kubelet relies on: a hostPath volume of type
"" (no check) or ``DirectoryOrCreate`` whose source does not exist is
created as a directory (mode 0755, parents included) by the runtime when the
container is created, instead of failing CreateContainer.

What this module adds: a source that is, or lies under, the daemon's own
``root_dir`` or ``state_dir`` is refused with InvalidArgument naming
``config.mounts[i].host_path``.  Those trees hold the content store, the
snapshots, the pods' state and the shims' sockets; a pod bind-mounting them
could read every image's layers and other pods' files, or write into a
snapshot under a running container.  The one exception is the CRI socket
itself: node agents (log collectors, image prepullers) mount it to talk to
the runtime, as they mount containerd's.

The check is made on the path with its symlinks resolved (as far as it
exists), so ``/srv/link -> /var/lib/dockyard`` is refused too.  ``..``
components are resolved by the same step.  A check-then-create race with
someone rewriting the host's directories is outside this rule's reach: the
host's filesystem is the node owner's.

``check`` is pure over a resolver; ``create_missing`` is the I/O.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import InvalidArgument, shorten

Resolve = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Guarded:
    """Trees no mount source may lie in, and the files allowed in them anyway."""

    trees: tuple[str, ...]
    allowed: frozenset[str] = frozenset()

    @classmethod
    def of_daemon(cls, root_dir: str, state_dir: str, socket_path: str, resolve: Resolve = os.path.realpath) -> Guarded:
        return cls(tuple(dict.fromkeys(resolve(d) for d in (root_dir, state_dir))), frozenset({resolve(socket_path)}))


def _within(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def check(host_paths: Sequence[str], guarded: Guarded, resolve: Resolve = os.path.realpath) -> list[str]:
    """The resolved source of each mount; InvalidArgument naming ``config.mounts[i].host_path``
    for one inside a guarded tree.  Empty and relative paths are left to the spec builder."""
    resolved: list[str] = []
    for i, raw in enumerate(host_paths):
        if not raw.startswith("/"):
            resolved.append(raw)
            continue
        real = resolve(raw)
        if real not in guarded.allowed:
            for tree in guarded.trees:
                if _within(real, tree):
                    shown = shorten(raw) if real == raw else f"{shorten(raw)} (resolves to {shorten(real)})"
                    raise InvalidArgument(
                        f"config.mounts[{i}].host_path: {shown} is inside dockyardd's own directory {tree}")
        resolved.append(real)
    return resolved


def create_missing(host_paths: Sequence[str]) -> list[str]:
    """Make each absolute source that does not exist a directory (0755, parents too); return those made.
    ``host_paths`` are check()'s resolved paths, in the order of config.mounts."""
    made = []
    for i, path in enumerate(host_paths):
        if not path.startswith("/") or os.path.lexists(path):
            continue
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
        except OSError as err:
            raise InvalidArgument(
                f"config.mounts[{i}].host_path: {shorten(path)} does not exist and cannot be created: {err.strerror}") from err
        made.append(path)
    return made

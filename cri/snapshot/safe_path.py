"""Tar member names -> safe destination paths and whiteout markers; no I/O.

A layer's member names are attacker-controlled.  This module turns a name
into a relative path made only of ordinary components, or refuses it:

* a leading ``/`` is dropped (absolute names are relative to the layer root,
  as docker and containerd treat them);
* ``.`` and empty components are dropped;
* any ``..`` component is refused outright, even when it would stay inside
  (``a/../b``): no legitimate layer contains one, and refusing is simpler to
  reason about than cleaning;
* NUL bytes are refused.

What this module cannot see -- a symlink planted by an earlier member that a
later name walks through -- is stopped by the unpacker, which resolves every
parent with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``.

Overlay whiteouts (the OCI image spec's layer changeset format):

* ``<dir>/.wh.<name>``  deletes ``<dir>/<name>`` from the lower layers;
* ``<dir>/.wh..wh..opq`` makes ``<dir>`` opaque (hides all lower content);
* other ``.wh..wh.`` names are AUFS bookkeeping (``.wh..wh.plnk``) and are skipped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import InvalidArgument

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"


class Kind(enum.Enum):
    ENTRY = "entry"  # an ordinary member: create it at ``path``
    WHITEOUT = "whiteout"  # delete ``path`` (and mark it deleted for overlay)
    OPAQUE = "opaque"  # mark the directory ``path`` opaque
    SKIP = "skip"  # AUFS metadata, nothing to do


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    path: str  # relative, "/"-separated, "" is the layer root


def relative_path(name: str) -> str:
    """The safe relative form of a member (or hardlink target) name; InvalidArgument naming it."""
    if "\0" in name:
        raise InvalidArgument(f"tar member {name!r}: name contains a NUL byte")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidArgument(f"tar member {name!r}: '..' would leave the layer")
        parts.append(part)
    return "/".join(parts)


def classify(name: str) -> Target:
    """What a member name asks for: an entry, a whiteout, an opaque marker, or nothing."""
    path = relative_path(name)
    parent, _, base = path.rpartition("/")
    if base == OPAQUE_MARKER:
        return Target(Kind.OPAQUE, parent)
    if base.startswith(WHITEOUT_META_PREFIX):
        return Target(Kind.SKIP, path)
    if base.startswith(WHITEOUT_PREFIX):
        victim = base[len(WHITEOUT_PREFIX) :]
        if victim in ("", ".", ".."):
            raise InvalidArgument(f"tar member {name!r}: whiteout of {victim!r} names no file")
        return Target(Kind.WHITEOUT, f"{parent}/{victim}" if parent else victim)
    return Target(Kind.ENTRY, path)


def split(path: str) -> tuple[str, str]:
    """("parent", "base") of a relative path; the root's parent is ""."""
    parent, _, base = path.rpartition("/")
    return parent, base

"""The ``platform`` option of import and pull: "os/arch[/variant]" or a bare architecture (pure)."""

from __future__ import annotations

import re

from dockyard.cri.errors import InvalidArgument, shorten
from dockyard.cri.image.platform import Platform

_PART = re.compile(r"[a-z0-9_]+")


def parse_platform(text: str, field: str) -> Platform | None:
    """None for "" (the node's platform); "amd64" means linux/amd64, as containerd reads it."""
    if not text:
        return None
    parts = text.lower().split("/")
    if len(parts) == 1:
        parts = ["linux", parts[0]]
    if len(parts) > 3 or not all(_PART.fullmatch(p) for p in parts):
        raise InvalidArgument(f"{field}: {shorten(text)!r} is not a platform (like linux/amd64 or linux/arm64/v8)")
    return Platform(*parts).normalized()

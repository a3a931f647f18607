"""The daemon's stores' files on disk: crash-safe replacement (the runtime's
implementation, dockyard.runtime.kernel.durable, one copy for both), and the
read of a store's versioned JSON document."""

from __future__ import annotations

import json
from typing import Any

from dockyard.runtime.kernel.durable import TEMP_PREFIX, fsync_dir, remove_temporaries, temp_name, write_atomic

from ..errors import FailedPrecondition, Internal

__all__ = ["TEMP_PREFIX", "fsync_dir", "read_versioned", "remove_temporaries", "temp_name", "write_atomic"]


def read_versioned(path: str, what: str, version: int) -> dict[str, Any] | None:
    """The JSON object a store keeps in ``path`` (None when there is no file yet).
    A file that is not a JSON object is Internal, naming ``what`` and the path; one
    of another version is FailedPrecondition (never guessed at)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except ValueError as err:
        raise Internal(f"{what} {path} is corrupt: {err}") from err
    if doc.get("version") != version:
        raise FailedPrecondition(f"{what} {path}: unsupported version {doc.get('version')!r}")
    return doc

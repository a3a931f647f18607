"""A directory of versioned JSON records, one file per object, each replaced atomically.

Layout: ``<dir>/<id>.json`` holding ``{"version": N, "record": {...}}``.
A write is temp + fsync + rename + fsync dir (content/durable.py), so a crash
leaves the old or the new record, never half of one.  ``load_all`` refuses a
record of an unknown version instead of guessing at it, and reports a file it
cannot parse by name (recovery keeps going with the others and says so).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from ..content.durable import remove_temporaries, write_atomic
from ..errors import Internal

log = logging.getLogger("dockyard.cri.store")


class RecordDir:
    def __init__(self, path: str, version: int) -> None:
        self.path = path
        self.version = version
        os.makedirs(path, mode=0o700, exist_ok=True)

    def _file(self, object_id: str) -> str:
        if not object_id or "/" in object_id or object_id.startswith("."):
            raise Internal(f"record id {object_id!r} is not a plain file name")
        return os.path.join(self.path, object_id + ".json")

    def save(self, object_id: str, record: dict[str, Any]) -> None:
        data = json.dumps({"version": self.version, "record": record}, sort_keys=True).encode()
        write_atomic(self._file(object_id), data)

    def delete(self, object_id: str) -> None:
        try:
            os.unlink(self._file(object_id))
        except FileNotFoundError:
            pass

    def load_all(self, on_bad: Callable[[str, str], None] | None = None) -> dict[str, dict[str, Any]]:
        """id -> record for every readable file; ``on_bad(file, why)`` for the others."""
        remove_temporaries(self.path)
        records: dict[str, dict[str, Any]] = {}
        for name in sorted(os.listdir(self.path)):
            if not name.endswith(".json"):
                continue
            full = os.path.join(self.path, name)
            try:
                with open(full, "rb") as f:
                    doc = json.load(f)
            except (OSError, ValueError) as err:
                (on_bad or _log_bad)(full, str(err))
                continue
            if not isinstance(doc, dict) or doc.get("version") != self.version or not isinstance(doc.get("record"), dict):
                (on_bad or _log_bad)(full, f"not a version {self.version} record")
                continue
            records[name[: -len(".json")]] = doc["record"]
        return records


def _log_bad(path: str, why: str) -> None:
    log.error("ignoring unreadable record %s: %s", path, why)

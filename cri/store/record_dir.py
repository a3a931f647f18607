"""A directory of versioned JSON records, one file per object, each replaced atomically.

Layout: ``<dir>/<id>.json`` holding ``{"version": N, "record": {...}}``.
A write is temp + fsync + rename + fsync dir (content/durable.py), so a crash
leaves the old or the new record, never half of one.

Inside the daemon's event loop a save or delete runs in a worker thread and
returns an awaitable that is done once it is on disk; the caller awaits it
before going on (before answering, before the next step a crash must find
recorded).  The two fsyncs of a write take 5 ms, and up to 150 ms on a busy
disk: done on the loop, they stalled every other call for that long, ten
times per pod start and stop (bench/density.py).  Writes of one record keep
their order: each waits for the one before it, and each writes the record as
it was when save() was called, so the file ends as the last call left it.
A caller that does not await (an exit the shim also keeps, restart.py
assumption 8) still gets its write done, in order; ``flush()`` waits for all
of them.  Outside a loop (tests, tools) a call writes before it returns.  ``load_all`` refuses a
record of an unknown version instead of guessing at it, and reports a file it
cannot parse by name (recovery keeps going with the others and says so).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from ..content.durable import remove_temporaries, write_atomic
from ..errors import Internal

log = logging.getLogger("dockyard.cri.store")


class RecordDir:
    def __init__(self, path: str, version: int) -> None:
        self.path = path
        self.version = version
        os.makedirs(path, mode=0o700, exist_ok=True)
        # The last write or delete queued per id (only the event loop touches it).
        self._tails: dict[str, asyncio.Task[None]] = {}

    def _file(self, object_id: str) -> str:
        if not object_id or "/" in object_id or object_id.startswith("."):
            raise Internal(f"record id {object_id!r} is not a plain file name")
        return os.path.join(self.path, object_id + ".json")

    def save(self, object_id: str, record: dict[str, Any]) -> Awaitable[None]:
        path = self._file(object_id)
        data = json.dumps({"version": self.version, "record": record}, sort_keys=True).encode()
        return self._in_order(object_id, lambda: write_atomic(path, data))

    def delete(self, object_id: str) -> Awaitable[None]:
        path = self._file(object_id)

        def unlink() -> None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return self._in_order(object_id, unlink)

    def _in_order(self, object_id: str, op: Callable[[], None]) -> Awaitable[None]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            op()
            return _done()
        before = self._tails.get(object_id)
        task = asyncio.create_task(_after(before, op), name=f"record {object_id[:12]}")
        self._tails[object_id] = task
        task.add_done_callback(lambda t: self._finished(object_id, t))
        # shield: a caller cancelled while it waits must not cancel the write.
        outer = asyncio.shield(task)
        # Its error is logged by _finished; a caller that does not await it is fine.
        outer.add_done_callback(lambda f: f.cancelled() or f.exception())
        return outer

    def _finished(self, object_id: str, task: asyncio.Task[None]) -> None:
        if self._tails.get(object_id) is task:
            del self._tails[object_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("writing record %s/%s: %s", self.path, object_id, task.exception())

    async def flush(self) -> None:
        """Wait for every write and delete queued so far."""
        while self._tails:
            await asyncio.wait(set(self._tails.values()))

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


async def _after(before: asyncio.Task[None] | None, op: Callable[[], None]) -> None:
    if before is not None:
        await asyncio.wait({before})  # its error is its caller's; ours is ours
    await asyncio.to_thread(op)


async def _done() -> None:
    return None


def _log_bad(path: str, why: str) -> None:
    log.error("ignoring unreadable record %s: %s", path, why)

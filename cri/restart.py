"""Startup recovery: bring the on-disk stores to a consistent state before serving.

Assumptions this relies on (if one stops holding, this module must change):

1. No other process writes under ``root_dir`` while dockyardd starts: a second
   daemon on the same root is refused earlier (the socket is in use).
2. Every ingest file (content store) and every snapshot temp directory belongs
   to a write that died with the previous daemon; none is resumable, so all
   are deleted.  Committed blobs and snapshots were renamed into place only
   after verification and fsync, so any that exists is complete.
3. The image store's records were written atomically (temp + fsync + rename);
   loading them needs no repair, and a record naming a blob or snapshot that
   is missing is reported, not silently dropped (the store raises on load).
4. A blob or committed snapshot that no image record references is the
   leftover of a pull that was interrupted between download and record (or of
   a GC that was interrupted); deleting it loses nothing an image needs.
   Containers do not reference snapshots yet (RuntimeService issue); when they
   do, their snapshots must be added to the referenced set here.
5. Recovery runs before the readiness flag is set, so no RPC (and no pull)
   races it; instrument.py answers UNAVAILABLE meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("dockyard.cri.restart")


class TempCleaner(Protocol):
    def clean_temporary(self) -> int: ...


class Collector(Protocol):
    def collect_garbage(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    content_temps: int
    snapshot_temps: int
    blobs_collected: int
    snapshots_collected: int
    images: int


def recover(content: TempCleaner, snapshots: TempCleaner, images: Collector, image_count: int) -> RecoveryReport:
    """Run the steps in order: temps first (so GC never sees half-written data),
    then GC of what no loaded image references.  Blocking; call in a thread."""
    content_temps = content.clean_temporary()
    snapshot_temps = snapshots.clean_temporary()
    blobs, chains = images.collect_garbage()
    report = RecoveryReport(content_temps, snapshot_temps, blobs, chains, image_count)
    log.info(
        "recovery: removed %d ingest temps, %d snapshot temps, %d unreferenced blobs, "
        "%d unreferenced snapshots; %d images",
        content_temps, snapshot_temps, blobs, chains, image_count,
    )
    return report

"""dockyard-runc events: resource statistics (``--stats``: once) and OOM
notices, as runc's JSON event lines, until the container stops."""

from __future__ import annotations

import sys
import time

from .. import container
from ..kernel.lean import jsonfast
from ..status import Status, require
from .args import Parser, add_id
from .main import Context, collect_while_waiting

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any


def _oom_count(stats: dict[str, Any]) -> int:
    memory = stats.get("memory")
    if not isinstance(memory, dict):
        return 0
    # v2's stats carry memory.events' oom_kill (kernel/cgroupfs/stats_v2.py);
    # memory.stat, the "raw" map, has no such key there.
    count = memory.get("oom_kill")
    if count is None:
        raw = memory.get("raw")
        count = raw.get("oom_kill", 0) if isinstance(raw, dict) else 0
    return int(count or 0)


def _parse_interval(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0}
    for suffix, scale in units.items():
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * scale
    return float(text)


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("events")
    parser.add_argument("--stats", action="store_true")
    parser.add_argument("--interval", default="5s")
    add_id(parser)
    args = parser.parse(argv)
    c = container.load(ctx.store, args.id)
    require("events", c.status, args.id)
    if args.stats:
        sys.stdout.write(jsonfast.dumps({"type": "stats", "id": args.id, "data": c.manager.stats()}) + "\n")
        return 0
    collect_while_waiting()  # not for --stats: one answer, and the shim's stats call, polled
    interval = _parse_interval(args.interval)
    ooms = _oom_count(c.manager.stats())
    while True:
        c = container.load(ctx.store, args.id)
        if c.status == Status.STOPPED:
            return 0
        stats = c.manager.stats()
        now = _oom_count(stats)
        if now > ooms:
            sys.stdout.write(jsonfast.dumps({"type": "oom", "id": args.id}) + "\n")
            ooms = now
        sys.stdout.write(jsonfast.dumps({"type": "stats", "id": args.id, "data": stats}) + "\n")
        sys.stdout.flush()
        time.sleep(interval)

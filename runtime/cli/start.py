"""dockyard-runc start: release a created container's init into the user's program."""

from __future__ import annotations

from .. import container
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    p = Parser("start")
    add_id(p)
    container.start(ctx.store, p.parse(argv).id)
    return 0

"""dockyard-runc start: release a created container's init into the user's program."""

from __future__ import annotations

from .. import container
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("start")
    add_id(parser)
    container.start(ctx.store, parser.parse(argv).id)
    return 0

"""dockyard-runc resume: thaw every process of the container through the freezer."""

from __future__ import annotations

from .. import container
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("resume")
    add_id(parser)
    container.resume(ctx.store, parser.parse(argv).id)
    return 0

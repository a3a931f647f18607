"""dockyard-runc pause: freeze every process of the container through the freezer."""

from __future__ import annotations

from .. import container
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("pause")
    add_id(parser)
    container.pause(ctx.store, parser.parse(argv).id)
    return 0

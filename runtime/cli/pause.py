"""dockyard-runc pause: freeze every process of the container through the freezer."""

from __future__ import annotations

from .. import container
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    p = Parser("pause")
    add_id(p)
    container.pause(ctx.store, p.parse(argv).id)
    return 0

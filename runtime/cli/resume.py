"""dockyard-runc resume: thaw every process of the container through the freezer."""

from __future__ import annotations

from .. import container
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    p = Parser("resume")
    add_id(p)
    container.resume(ctx.store, p.parse(argv).id)
    return 0

"""dockyard-runc delete: remove a stopped container (--force: kill it first)."""

from __future__ import annotations

from .. import container
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("delete")
    parser.add_argument("--force", "-f", action="store_true")
    add_id(parser)
    args = parser.parse(argv)
    container.delete(ctx.store, args.id, args.force)
    return 0

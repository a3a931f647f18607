"""dockyard-runc kill: send a signal (name or number, default TERM) to the init, or with --all to every process."""

from __future__ import annotations

from .. import container
from ..signals import parse_signal
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("kill")
    parser.add_argument("--all", "-a", action="store_true")
    add_id(parser)
    parser.add_argument("signal", nargs="?", default="SIGTERM")
    args = parser.parse(argv)
    container.kill(ctx.store, args.id, parse_signal(args.signal), args.all)
    return 0

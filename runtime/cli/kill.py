"""dockyard-runc kill: send a signal (name or number, default TERM) to the init, or with --all to every process."""

from __future__ import annotations

from .. import container
from ..signals import parse_signal
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    p = Parser("kill")
    p.add_argument("--all", "-a", action="store_true")
    add_id(p)
    p.add_argument("signal", nargs="?", default="SIGTERM")
    a = p.parse(argv)
    container.kill(ctx.store, a.id, parse_signal(a.signal), a.all)
    return 0

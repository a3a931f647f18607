"""dockyard-runc create: set a container up and leave its init waiting on exec.fifo."""

from __future__ import annotations

from .. import spawn
from .args import Parser, add_id
from .main import Context


def add_create_flags(p: Parser) -> None:
    p.add_argument("--bundle", "-b", default=".")
    p.add_argument("--pid-file", default=None)
    p.add_argument("--console-socket", default=None)
    p.add_argument("--no-pivot", action="store_true")
    p.add_argument("--no-new-keyring", action="store_true")
    p.add_argument("--preserve-fds", type=int, default=0)


def run(ctx: Context, argv: list[str]) -> int:
    p = Parser("create")
    add_create_flags(p)
    add_id(p)
    a = p.parse(argv)
    spawn.create(ctx.store, a.id, a.bundle, pid_file=a.pid_file, console_socket=a.console_socket,
                     no_pivot=a.no_pivot, preserve_fds=a.preserve_fds)
    return 0

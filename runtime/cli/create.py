"""dockyard-runc create: set a container up and leave its init waiting on exec.fifo."""

from __future__ import annotations

from .. import spawn
from .args import Parser, add_id
from .main import Context


def add_create_flags(parser: Parser) -> None:
    parser.add_argument("--bundle", "-b", default=".")
    parser.add_argument("--pid-file", default=None)
    parser.add_argument("--console-socket", default=None)
    parser.add_argument("--no-pivot", action="store_true")
    parser.add_argument("--no-new-keyring", action="store_true")
    parser.add_argument("--preserve-fds", type=int, default=0)


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("create")
    add_create_flags(parser)
    add_id(parser)
    args = parser.parse(argv)
    spawn.create(ctx.store, args.id, args.bundle, pid_file=args.pid_file, console_socket=args.console_socket,
                 no_pivot=args.no_pivot, preserve_fds=args.preserve_fds, systemd_cgroup=ctx.systemd_cgroup)
    return 0

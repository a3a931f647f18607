"""dockyard-runc run: create + start, and in the foreground wait and return
the container's exit code (128+N when a signal N killed it)."""

from __future__ import annotations

from .. import container, spawn
from ..kernel import syscalls
from .args import Parser, add_id
from .create import add_create_flags
from .main import Context, collect_while_waiting


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("run")
    add_create_flags(parser)
    parser.add_argument("--detach", "-d", action="store_true")
    parser.add_argument("--keep", action="store_true", help="do not delete the container after it exits")
    add_id(parser)
    args = parser.parse(argv)
    if not args.detach:
        # the init is our grandchild; as a subreaper we inherit it and can wait
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    state = spawn.create(ctx.store, args.id, args.bundle, pid_file=args.pid_file, console_socket=args.console_socket,
                         no_pivot=args.no_pivot, preserve_fds=args.preserve_fds, systemd_cgroup=ctx.systemd_cgroup)
    try:
        container.start(ctx.store, args.id)
    except BaseException:
        container.delete(ctx.store, args.id, force=True)
        raise
    if args.detach:
        return 0
    collect_while_waiting()
    with container.forwarded_signals(state.pid):
        code = container.wait_exit(state.pid)
    if not args.keep:
        container.delete(ctx.store, args.id, force=True)
    return code

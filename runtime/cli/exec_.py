"""dockyard-runc exec: run another process inside a running container.

The process comes from ``--process FILE`` or from the container's own process
with the command line's overrides, as runc does.  In the foreground the exit
code is the process's.
"""

from __future__ import annotations

from .. import container, spawn
from ..kernel import syscalls
from ..kernel.errors import InvalidArgument, InvalidSpec, NotFound
from ..kernel.lean import jsonfast
from ..kernel.lean.records import replace
from ..spec import Capabilities, Process, User, parse_process
from .args import REMAINDER, Namespace, Parser, add_id
from .main import Context, collect_while_waiting


def _user(text: str) -> tuple[int, int | None]:
    uid, _, gid = text.partition(":")
    try:
        return int(uid), (int(gid) if gid else None)
    except ValueError as err:
        raise InvalidArgument("parse --user", text, "must be UID[:GID] (numbers)") from err


def _from_flags(base: Process, args: Namespace) -> Process:
    if not args.command:
        raise InvalidArgument("exec", "", "no command given (args, or --process FILE)")
    env = dict(item.split("=", 1) for item in base.env)
    for item in args.env:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument("parse --env", item, "must be KEY=VALUE")
        env[key] = value
    user = base.user
    if args.user:
        uid, gid = _user(args.user)
        user = User(uid=uid, gid=user.gid if gid is None else gid, umask=user.umask,
                    additional_gids=user.additional_gids)
    if args.additional_gids:
        user = replace(user, additional_gids=tuple(int(g) for g in args.additional_gids))
    caps = base.capabilities
    if args.cap:
        c = caps or Capabilities()
        extra = tuple(args.cap)
        caps = Capabilities(c.bounding + extra, c.effective + extra, c.inheritable + extra,
                            c.permitted + extra, c.ambient + extra)
    return replace(base, args=tuple(args.command), env=tuple(f"{k}={v}" for k, v in env.items()),
                   cwd=args.cwd or base.cwd, user=user, terminal=args.tty, capabilities=caps, console_size=None,
                   no_new_privileges=base.no_new_privileges or args.no_new_privs,
                   apparmor_profile=args.apparmor if args.apparmor is not None else base.apparmor_profile)


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("exec")
    parser.add_argument("--console-socket", default=None)
    parser.add_argument("--cwd", default="")
    parser.add_argument("--env", "-e", action="append", default=[])
    parser.add_argument("--tty", "-t", action="store_true")
    parser.add_argument("--user", "-u", default="")
    parser.add_argument("--additional-gids", "-g", action="append", default=[])
    parser.add_argument("--process", "-p", default=None)
    parser.add_argument("--detach", "-d", action="store_true")
    parser.add_argument("--pid-file", default=None)
    parser.add_argument("--process-label", default="")
    parser.add_argument("--apparmor", default=None)
    parser.add_argument("--no-new-privs", action="store_true")
    parser.add_argument("--cap", "-c", action="append", default=[])
    parser.add_argument("--preserve-fds", type=int, default=0)
    parser.add_argument("--ignore-paused", action="store_true")
    parser.add_argument("--cgroup", default=None)
    add_id(parser)
    parser.add_argument("command", nargs=REMAINDER)
    args = parser.parse(argv)
    store = ctx.store
    if args.process:
        try:
            raw = jsonfast.load_file(args.process)
        except FileNotFoundError as err:
            raise NotFound("read --process", args.process) from err
        except ValueError as err:
            raise InvalidSpec("process", f"{args.process} is not valid JSON: {err}") from err
        process = parse_process(raw)
    else:
        process = _from_flags(spawn.default_exec_process(store, args.id), args)
    if process.terminal and not args.console_socket:
        raise InvalidArgument("exec", "--tty", "a terminal needs --console-socket to hand the pty to")
    if not args.detach:
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    pid = spawn.exec_process(store, args.id, process, detach=args.detach, pid_file=args.pid_file,
                             console_socket=args.console_socket, preserve_fds=args.preserve_fds)
    if args.detach:
        return 0
    collect_while_waiting()
    with container.forwarded_signals(pid):
        return container.wait_exit(pid)

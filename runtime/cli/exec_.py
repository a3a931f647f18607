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


def _from_flags(base: Process, a: Namespace) -> Process:
    if not a.command:
        raise InvalidArgument("exec", "", "no command given (args, or --process FILE)")
    env = dict(item.split("=", 1) for item in base.env)
    for item in a.env:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument("parse --env", item, "must be KEY=VALUE")
        env[key] = value
    user = base.user
    if a.user:
        uid, gid = _user(a.user)
        user = User(uid=uid, gid=user.gid if gid is None else gid, umask=user.umask,
                    additional_gids=user.additional_gids)
    if a.additional_gids:
        user = replace(user, additional_gids=tuple(int(g) for g in a.additional_gids))
    caps = base.capabilities
    if a.cap:
        c = caps or Capabilities()
        extra = tuple(a.cap)
        caps = Capabilities(c.bounding + extra, c.effective + extra, c.inheritable + extra,
                            c.permitted + extra, c.ambient + extra)
    return replace(base, args=tuple(a.command), env=tuple(f"{k}={v}" for k, v in env.items()),
                   cwd=a.cwd or base.cwd, user=user, terminal=a.tty, capabilities=caps, console_size=None,
                   no_new_privileges=base.no_new_privileges or a.no_new_privs,
                   apparmor_profile=a.apparmor if a.apparmor is not None else base.apparmor_profile)


def run(ctx: Context, argv: list[str]) -> int:
    p = Parser("exec")
    p.add_argument("--console-socket", default=None)
    p.add_argument("--cwd", default="")
    p.add_argument("--env", "-e", action="append", default=[])
    p.add_argument("--tty", "-t", action="store_true")
    p.add_argument("--user", "-u", default="")
    p.add_argument("--additional-gids", "-g", action="append", default=[])
    p.add_argument("--process", "-p", default=None)
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("--pid-file", default=None)
    p.add_argument("--process-label", default="")
    p.add_argument("--apparmor", default=None)
    p.add_argument("--no-new-privs", action="store_true")
    p.add_argument("--cap", "-c", action="append", default=[])
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("--ignore-paused", action="store_true")
    p.add_argument("--cgroup", default=None)
    add_id(p)
    p.add_argument("command", nargs=REMAINDER)
    a = p.parse(argv)
    store = ctx.store
    if a.process:
        try:
            raw = jsonfast.load_file(a.process)
        except FileNotFoundError as err:
            raise NotFound("read --process", a.process) from err
        except ValueError as err:
            raise InvalidSpec("process", f"{a.process} is not valid JSON: {err}") from err
        process = parse_process(raw)
    else:
        process = _from_flags(spawn.default_exec_process(store, a.id), a)
    if process.terminal and not a.console_socket:
        raise InvalidArgument("exec", "--tty", "a terminal needs --console-socket to hand the pty to")
    if not a.detach:
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    pid = spawn.exec_process(store, a.id, process, detach=a.detach, pid_file=a.pid_file,
                                 console_socket=a.console_socket, preserve_fds=a.preserve_fds)
    if a.detach:
        return 0
    collect_while_waiting()
    with container.forwarded_signals(pid):
        return container.wait_exit(pid)

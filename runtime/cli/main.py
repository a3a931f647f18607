"""dockyard-runc's command line: runc's, flag for flag.

Startup speed matters (every container start runs this three times), so the
global flags are parsed by hand and only the chosen verb's module, with its
own small parser (args.py, argparse's API without its import cost), is imported.
"""

from __future__ import annotations

import sys
import time

from .. import log
from ..kernel.errors import InvalidArgument, RuntimeFault
from ..kernel.lean import jsonfast, leanos
from ..state import DEFAULT_ROOT, Store

VERSION = "0.1.0"
SPEC_VERSION = "1.2.0"

VERBS = {
    "create": "create", "start": "start", "run": "run", "state": "state", "list": "list_", "kill": "kill",
    "delete": "delete", "exec": "exec_", "ps": "ps", "pause": "pause", "resume": "resume", "update": "update",
    "events": "events", "spec": "spec", "features": "features", "checkpoint": "checkpoint", "restore": "restore",
}


USAGE = f"""usage: dockyard-runc [global options] command [command options] [arguments...]

A runc-compatible OCI runtime.

commands: {", ".join(VERBS)}

global options:
   --root DIR          root directory for container state (default: {DEFAULT_ROOT})
   --log FILE          write log messages to FILE (default: stderr)
   --log-format FMT    text or json (default: text)
   --debug             log debug messages
   --systemd-cgroup    use the systemd cgroup driver: cgroupsPath is slice:prefix:name (cgroup v2)
   --criu PATH         the criu binary checkpoint and restore run (default: criu on PATH)
   --version, -v       print the version
   --help, -h          show this help
"""


class Context:
    """The global flags; filled in while they are parsed."""

    __slots__ = ("criu", "debug", "log", "log_format", "root", "systemd_cgroup")

    def __init__(self) -> None:
        self.root = DEFAULT_ROOT
        self.log = ""
        self.log_format = "text"
        self.debug = False
        self.systemd_cgroup = False
        self.criu = ""  # --criu: the criu binary for checkpoint/restore ("" = criu on PATH)

    @property
    def store(self) -> Store:
        return Store(self.root)

    def log_line(self, level: str, msg: str, **fields: object) -> None:
        """One line of --log.  ``fields`` (JSON only) carry what a caller acts
        on without reading the message: an error's class and errno."""
        if level == "debug" and not self.debug:
            return
        if self.log_format == "json":
            line = jsonfast.dumps({"level": level, "msg": msg, **fields,
                               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n"
        else:
            line = f"time=\"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\" level={level} msg={jsonfast.dumps(msg)}\n"
        if not self.log:
            sys.stderr.write(f"dockyard-runc: {msg}\n" if level == "error" else line)
            return
        if self.log:
            try:
                fd = leanos.open(self.log, leanos.O_WRONLY | leanos.O_APPEND | leanos.O_CREAT | leanos.O_CLOEXEC, 0o644)
                try:
                    leanos.write(fd, line.encode())
                finally:
                    leanos.close(fd)
            except OSError:
                sys.stderr.write(line)


_VALUE_FLAGS = {"--root": "root", "--log": "log", "--log-format": "log_format", "--criu": "criu", "--rootless": ""}


def _parse_globals(argv: list[str], ctx: Context) -> list[str]:
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            return argv[i:]
        name, eq, value = arg.partition("=")
        if len(name) > 2 and name.startswith("-") and not name.startswith("--"):
            name = "-" + name  # Go-style single-dash long flags (-root)
        if name in _VALUE_FLAGS:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise InvalidArgument("parse flags", name, "needs a value")
                value = argv[i]
            attr = _VALUE_FLAGS[name]
            if attr:
                setattr(ctx, attr, value)
        elif name == "--debug":
            ctx.debug = True
        elif name == "--systemd-cgroup":
            ctx.systemd_cgroup = True
        elif name in ("--version", "-v"):
            return ["--version"]
        elif name in ("--help", "-h"):
            return ["--help"]
        else:
            raise InvalidArgument("parse flags", name, "unknown global option")
        i += 1
    return []


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ctx = Context()
    try:
        rest = _parse_globals(args, ctx)
        log.configure(ctx.log_line, ctx.debug)
        if ctx.log_format not in ("text", "json"):
            raise InvalidArgument("parse flags", "--log-format", f"must be text or json, not {ctx.log_format!r}")
        if not rest or rest[0] == "--help":
            sys.stdout.write(USAGE)
            return 0 if rest else 1
        if rest[0] == "--version":
            sys.stdout.write(f"dockyard-runc version {VERSION}\ncommit: none\nspec: {SPEC_VERSION}\n")
            return 0
        verb = rest[0]
        if verb not in VERBS:
            raise InvalidArgument("run command", verb, f"no such command (commands: {', '.join(VERBS)})")
        # __import__, not importlib.import_module: importlib is one more import.
        module = __import__(f"{__package__}.{VERBS[verb]}", fromlist=["run"])
        code: int = module.run(ctx, rest[1:])
        return code
    except RuntimeFault as err:
        return _report(ctx, err)
    except KeyboardInterrupt:
        return 130
    except OSError as err:
        # A file the runtime needs that the system refuses (a --root below a
        # regular file, a state dir removed by hand, a full disk): a fault to
        # report by its path and errno, as runc does; the traceback only with --debug.
        if ctx.debug:
            import traceback

            traceback.print_exc()
        path = err.filename if isinstance(err.filename, str) else ""
        return _report(ctx, RuntimeFault("access", path, "" if err.errno else str(err), err.errno or 0))
    except Exception as err:
        # A bug, not a user error: keep the traceback, and still leave the
        # one-line error that containerd reads back from --log.
        ctx.log_line("error", f"internal error: {type(err).__name__}: {err}")
        import traceback

        traceback.print_exc()
        return 1


def collect_while_waiting() -> None:
    """Turn the cyclic garbage collector back on, for a call about to wait
    on a container for as long as it runs (run and exec in the foreground,
    events without --stats).  The launcher starts the CLI without it (hack/install-launcher.sh
    says why): right for calls that live milliseconds, but a long wait must
    not pile up cyclic garbage.  Called where the wait begins, not per verb:
    `exec --detach`, which containerd's shim runs for every exec, and
    `run --detach` never turn it on."""
    import gc

    gc.enable()


def _report(ctx: Context, err: RuntimeFault) -> int:
    # "error" and "errno" let a shim answer with the right code (a missing
    # executable is NotFound, a bad value InvalidSpec), not only the text.
    ctx.log_line("error", str(err), error=type(err).__name__, errno=err.errno)
    if ctx.log:
        sys.stderr.write(f"dockyard-runc: {err}\n")
    return 1

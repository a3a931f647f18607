"""dockyard-runc list: every container under --root, as a table or JSON."""

from __future__ import annotations

import sys

from .. import container
from ..kernel.errors import NotFound
from ..kernel.lean import jsonfast, leanos
from .args import Parser
from .main import Context


def _owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"#{uid}"


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("list")
    parser.add_argument("--format", "-f", choices=("table", "json"), default="table")
    parser.add_argument("--quiet", "-q", action="store_true")
    args = parser.parse(argv)
    states = []
    for cid in ctx.store.ids():
        try:
            st = container.runc_state(container.load(ctx.store, cid))
            st["owner"] = _owner(leanos.stat(ctx.store.dir(cid)).st_uid)
        except (NotFound, FileNotFoundError):
            continue  # deleted while we listed
        states.append(st)
    if args.quiet:
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif args.format == "json":
        sys.stdout.write(jsonfast.dumps(states) + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"])
                 for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
    return 0

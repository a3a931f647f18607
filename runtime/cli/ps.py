"""dockyard-runc ps: the container's processes (a `ps` table filtered to
them, or their pids as JSON)."""

from __future__ import annotations

import subprocess
import sys

from .. import container
from ..kernel.errors import SyscallError
from ..kernel.lean import jsonfast
from ..status import require
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("ps")
    parser.add_argument("--format", "-f", choices=("table", "json"), default="table")
    add_id(parser)
    parser.add_argument("ps_args", nargs="*")
    args = parser.parse(argv)
    c = container.load(ctx.store, args.id)
    require("ps", c.status, args.id)
    pids = sorted(c.manager.pids())
    if args.format == "json":
        sys.stdout.write(jsonfast.dumps(pids) + "\n")
        return 0
    try:
        out = subprocess.run(["ps", *(args.ps_args or ["-ef"])], capture_output=True, check=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise SyscallError("run ps", " ".join(args.ps_args or ["-ef"]), getattr(err, "errno", 0) or 0, str(err)) from err
    lines = out.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise SyscallError("run ps", "", 0, "its output has no PID column")
    col = header.index("PID")
    wanted = set(pids)
    sys.stdout.write(lines[0] + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            sys.stdout.write(line + "\n")
    return 0

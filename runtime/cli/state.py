"""dockyard-runc state: the container's state as runc's JSON."""

from __future__ import annotations

import sys

from .. import container
from ..kernel.lean import jsonfast
from .args import Parser, add_id
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("state")
    add_id(parser)
    sys.stdout.write(jsonfast.dumps(container.state_json(ctx.store, parser.parse(argv).id), indent=2) + "\n")
    return 0

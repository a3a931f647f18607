"""dockyard-runc spec: write a default config.json into the bundle directory."""

from __future__ import annotations

from ..default_spec import default_spec
from ..kernel.errors import AlreadyExists
from ..kernel.lean import jsonfast, leanos
from .args import Parser
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("spec")
    parser.add_argument("--bundle", "-b", default=".")
    parser.add_argument("--rootless", action="store_true")
    args = parser.parse(argv)
    path = leanos.path.join(args.bundle, "config.json")
    if leanos.path.exists(path):
        raise AlreadyExists("write spec", path, "File exists")
    with open(path, "w") as f:
        f.write(jsonfast.dumps(default_spec(args.rootless), indent="\t"))
        f.write("\n")
    return 0

"""dockyard-runc spec: write a default config.json into the bundle directory."""

from __future__ import annotations

from ..default_spec import default_spec
from ..kernel.errors import AlreadyExists
from ..kernel.lean import jsonfast, leanos
from .args import Parser
from .main import Context


def run(ctx: Context, argv: list[str]) -> int:
    p = Parser("spec")
    p.add_argument("--bundle", "-b", default=".")
    p.add_argument("--rootless", action="store_true")
    a = p.parse(argv)
    path = leanos.path.join(a.bundle, "config.json")
    if leanos.path.exists(path):
        raise AlreadyExists("write spec", path, "File exists")
    with open(path, "w") as f:
        f.write(jsonfast.dumps(default_spec(a.rootless), indent="\t"))
        f.write("\n")
    return 0

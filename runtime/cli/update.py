"""dockyard-runc update: change a container's cgroup limits, from
``--resources FILE|-`` (OCI linux.resources JSON) and/or single-value flags."""

from __future__ import annotations

import sys

from .. import container
from ..kernel.errors import InvalidArgument, InvalidSpec
from ..kernel.lean import jsonfast
from .args import Parser, add_id
from .main import Context

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str, flag: str) -> int:
    """'-1', '1024', '512m', '1G', '1.5g' -> bytes (docker's RAMInBytes rules)."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b") if text.strip() not in ("-1",) else "-1"
    if t == "-1":
        return -1
    num = t.rstrip("kmgt")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError as err:
        raise InvalidArgument(f"parse {flag}", text, "must be a size like 1024, 512m or 1g") from err
    if unit not in _UNITS or not 0 <= value < float(1 << 63):
        raise InvalidArgument(f"parse {flag}", text, "must be a size like 1024, 512m or 1g")
    return int(value * _UNITS[unit])


# flag -> (section, key, parser)
_FLAGS: dict[str, tuple[str, str, str]] = {
    "--blkio-weight": ("blockIO", "weight", "int"),
    "--cpu-period": ("cpu", "period", "int"),
    "--cpu-quota": ("cpu", "quota", "int"),
    "--cpu-share": ("cpu", "shares", "int"),
    "--cpu-rt-period": ("cpu", "realtimePeriod", "int"),
    "--cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "--cpuset-cpus": ("cpu", "cpus", "str"),
    "--cpuset-mems": ("cpu", "mems", "str"),
    "--memory": ("memory", "limit", "bytes"),
    "--memory-reservation": ("memory", "reservation", "bytes"),
    "--memory-swap": ("memory", "swap", "bytes"),
    "--kernel-memory": ("memory", "kernel", "bytes"),
    "--kernel-memory-tcp": ("memory", "kernelTCP", "bytes"),
    "--pids-limit": ("pids", "limit", "int"),
}


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("update")
    parser.add_argument("--resources", "-r", default=None)
    for flag in _FLAGS:
        parser.add_argument(flag, default=None)
    parser.add_argument("--l3-cache-schema", default=None)
    parser.add_argument("--mem-bw-schema", default=None)
    add_id(parser)
    args = parser.parse(argv)
    resources: dict[str, Any] = {}
    if args.resources:
        try:
            if args.resources == "-":
                resources = jsonfast.loads(sys.stdin.read())
            else:
                with open(args.resources, "rb") as f:
                    resources = jsonfast.loads(f.read())
        except ValueError as err:
            raise InvalidSpec("linux.resources", f"--resources is not valid JSON: {err}") from err
        if not isinstance(resources, dict):
            raise InvalidSpec("linux.resources", "--resources must hold a JSON object")
    if args.l3_cache_schema or args.mem_bw_schema:
        raise InvalidArgument("update", "--l3-cache-schema", "Intel RDT is not supported")
    for flag, (section, key, kind) in _FLAGS.items():
        text = getattr(args, flag[2:].replace("-", "_"))
        if text is None:
            continue
        value: Any
        if kind == "bytes":
            value = parse_bytes(text, flag)
        elif kind == "int":
            try:
                value = int(text)
            except ValueError as err:
                raise InvalidArgument(f"parse {flag}", text, "must be an integer") from err
        else:
            value = text
        resources.setdefault(section, {})[key] = value
    container.update(ctx.store, args.id, resources)
    return 0

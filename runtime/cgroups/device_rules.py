"""linux.resources.devices: the ordered allow/deny rule list, validated once.

Each rule is ``{allow, type, major, minor, access}``; type is ``a``, ``c`` or
``b`` (absent: ``a``), major/minor absent or -1 mean any, access is a
non-empty subset of ``rwm`` (absent: ``rwm``).  Rules apply in order, later
ones overriding earlier ones, the way the v1 devices controller applies
writes to devices.allow and devices.deny.
"""

from __future__ import annotations

from ..kernel.errors import InvalidSpec
from ..kernel.lean.records import Record
from . import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.devices"
class DeviceRule(Record):
    allow: bool
    type: str  # "a", "c" or "b"
    major: int | None  # None: any
    minor: int | None
    access: str  # subset of "rwm", in that order

    def is_everything(self) -> bool:
        """Matches every device with every access: ``a *:* rwm``."""
        return self.type == "a" and self.access == "rwm"

    def v1_text(self) -> str:
        """The devices.allow/deny line; v1 reads type "a" as all devices
        whatever follows, so it is written alone."""
        if self.type == "a":
            return "a"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def _number(rule: dict[str, Any], key: str, field: str) -> int | None:
    value = sv.integer(rule, key, field, minimum=-1, maximum=(1 << 32) - 1)
    return None if value is None or value == -1 else value


def parse(resources: dict[str, Any]) -> list[DeviceRule]:
    rules: list[DeviceRule] = []
    for i, raw in enumerate(sv.items(resources, "devices", FIELD)):
        field = f"{FIELD}[{i}]"
        rule = sv.entry(raw, field)
        allow = sv.boolean(rule, "allow", f"{field}.allow")
        if allow is None:
            raise InvalidSpec(f"{field}.allow", "is required")
        dtype = sv.string(rule, "type", f"{field}.type") or "a"
        if dtype not in ("a", "c", "b"):
            raise InvalidSpec(f"{field}.type", f"{dtype!r} is not one of a, c, b")
        access = sv.string(rule, "access", f"{field}.access") or "rwm"
        if not set(access) <= set("rwm") or len(set(access)) != len(access):
            raise InvalidSpec(f"{field}.access", f"{access!r} is not a subset of 'rwm'")
        ordered = "".join(c for c in "rwm" if c in access)
        rules.append(DeviceRule(allow, dtype, _number(rule, "major", f"{field}.major"),
                                _number(rule, "minor", f"{field}.minor"), ordered))
    return rules


# runc's defaults (libcontainer/specconv AllowedDevices): every container may
# mknod any node (using one is what the other rules govern), and use the
# devices every process expects plus ptys and tun.  runc appends them after
# the spec's rules, so they win over a spec rule denying one of them.
RUNC_DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},   # /dev/null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},   # /dev/random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},   # /dev/full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},   # /dev/tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},   # /dev/zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},   # /dev/urandom
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},             # /dev/pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},   # /dev/ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # /dev/net/tun
)


def with_default_devices(resources: dict[str, Any], linux_devices: list[Any] | None = None) -> dict[str, Any]:
    """``resources`` with the device rules runc gives every container: the
    spec's rules, then :data:`RUNC_DEFAULT_RULES`, then an allow for each
    node in ``linux.devices`` (the runtime creates those, so the container
    may use them).  ``u`` (unbuffered char) counts as ``c``; fifos (``p``)
    need no rule.  The input is not modified."""
    rules: list[Any] = list(sv.items(resources, "devices", FIELD))
    rules += [dict(r) for r in RUNC_DEFAULT_RULES]
    for i, raw in enumerate(linux_devices or []):
        field = f"linux.devices[{i}]"
        dev = sv.entry(raw, field)
        dtype = sv.string(dev, "type", f"{field}.type")
        if dtype == "p":
            continue
        if dtype not in ("c", "u", "b"):
            raise InvalidSpec(f"{field}.type", f"{dtype!r} is not one of c, u, b, p")
        major = sv.required_integer(dev, "major", f"{field}.major", minimum=0)
        minor = sv.required_integer(dev, "minor", f"{field}.minor", minimum=0)
        rules.append({"allow": True, "type": "b" if dtype == "b" else "c",
                      "major": major, "minor": minor, "access": "rwm"})
    return {**resources, "devices": rules}

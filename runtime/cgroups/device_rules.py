"""linux.resources.devices: the ordered allow/deny rule list, validated once.

Each rule is ``{allow, type, major, minor, access}``; type is ``a``, ``c`` or
``b`` (absent: ``a``), major/minor absent or -1 mean any, access is a
non-empty subset of ``rwm`` (absent: ``rwm``).  Rules apply in order, later
ones overriding earlier ones, the way the v1 devices controller applies
writes to devices.allow and devices.deny.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidSpec
from . import spec_values as sv

FIELD = "linux.resources.devices"


@dataclass(frozen=True, slots=True)
class DeviceRule:
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

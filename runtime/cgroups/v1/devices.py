"""linux.resources.devices -> cgroup v1 devices.allow / devices.deny.

Facts about the v1 devices controller:

* Writing ``a`` to ``devices.deny`` empties the cgroup's whitelist and makes
  it default-deny; writing ``a`` to ``devices.allow`` makes it default-allow
  with an empty exception list.  Other lines add or remove exceptions.
* The kernel refuses ``a`` (in either file) with EINVAL once the cgroup has
  children, and refuses to allow more than the parent allows.
* Like runc, the rules are applied from a known state: ``a`` to devices.deny
  first, then each rule in order to the file its ``allow`` picks.  Later
  rules override earlier ones exactly as the OCI spec orders them.
  (runc >= 1.0 diffs against devices.list to avoid a moment without device
  access during ``update``; this simpler form has that moment.)
* A rule list that is empty leaves the cgroup as created (inheriting the
  parent's, normally allow-all): nothing is written at all.
"""

from __future__ import annotations

from ..device_rules import FIELD, parse

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

CONTROLLER = "devices"
__all__ = ["FIELD", "CONTROLLER", "writes"]


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    rules = parse(resources)
    if not rules:
        return []
    out: list[tuple[str, str]] = [("devices.deny", "a")]
    for rule in rules:
        out.append(("devices.allow" if rule.allow else "devices.deny", rule.v1_text()))
    return out

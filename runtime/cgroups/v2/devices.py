"""linux.resources.devices on cgroup v2: there is no file to write.

cgroup v2 enforces device access only through an eBPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup.  dockyard-runc does not
generate or load one (yet), so on v2 **no device rule is enforced** and every
device node the container can reach is usable as far as cgroups go.

The decision, made so that nothing is silently weaker than asked:

* A rule list whose net effect is "allow everything" is what v2 without a
  program already does, so it is honoured: the empty list, a list of allow
  rules only, or any list in which a full ``a *:* rwm`` allow comes after
  the last deny.
* Anything else (the usual "deny all, then allow /dev/null, ..." list, or a
  single deny) would be ignored by the kernel, so it is refused with
  ``Unsupported`` naming ``linux.resources.devices``.
* ``allow_unenforced=True`` (a caller's explicit choice, for example a
  command-line flag) downgrades that refusal to a reported note: the rules
  are then listed by :func:`ignored` and nothing is raised.  The other
  defences (a /dev holding only the spec's devices, no CAP_MKNOD by
  default) still stand, but they are not the cgroup's.
"""

from __future__ import annotations

from ...kernel.errors import Unsupported
from ..device_rules import FIELD, DeviceRule, parse

TYPE_CHECKING = False  # see runtime/records.py: keeps typing out of the start path
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FIELD", "honoured_without_bpf", "writes", "ignored"]


def honoured_without_bpf(rules: list[DeviceRule]) -> bool:
    """True when the rules leave every device allowed (v2's state without a
    device program)."""
    last_deny = max((i for i, r in enumerate(rules) if not r.allow), default=-1)
    if last_deny == -1:
        return True
    return any(r.allow and r.is_everything() for r in rules[last_deny + 1:])


def writes(resources: dict[str, Any], *, allow_unenforced: bool = False) -> list[tuple[str, str]]:
    rules = parse(resources)
    if not honoured_without_bpf(rules) and not allow_unenforced:
        raise Unsupported(
            "apply device rules", FIELD,
            f"cgroup v2 enforces device rules only through an eBPF program, which "
            f"dockyard-runc does not load; the {len(rules)} rules given deny access "
            f"that would not be denied",
        )
    return []


def ignored(resources: dict[str, Any]) -> list[tuple[str, str]]:
    rules = parse(resources)
    if honoured_without_bpf(rules):
        return []
    return [(FIELD, "cgroup v2 without an eBPF device program does not enforce device rules")]

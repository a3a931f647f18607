"""linux.resources.devices on cgroup v2: a device program, not a file.

cgroup v2 enforces device access only through an eBPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup.  dockyard-runc compiles
the rule list into one (device_filter.py, pure) and attaches it in place of
the cgroup's previous one (device_program.py), at create and at every update
that names devices, as runc and crun do.

Where the program cannot be loaded (bpf(2) refused: EPERM for a runtime
without CAP_BPF/CAP_SYS_ADMIN in the initial user namespace, ENOSYS for a
kernel without it), the decision is made so that nothing is silently weaker
than asked:

* A rule list whose net effect is "allow everything" is what v2 without a
  program already does, so it is honoured: the empty list, a list of allow
  rules only, or any list in which a full ``a *:* rwm`` allow comes after
  the last deny.
* Anything else is refused with ``Unsupported`` naming
  ``linux.resources.devices``, unless the caller chose ``allow_unenforced``
  (dockyard-runc's verbs do, as runc does in a user namespace): then the
  rules are reported as not enforced and the container runs.
"""

from __future__ import annotations

import errno

from ...kernel.errors import SyscallError, Unsupported
from ..device_rules import FIELD, DeviceRule, parse

TYPE_CHECKING = False  # see runtime/records.py: keeps typing out of the start path
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FIELD", "honoured_without_bpf", "writes", "enforce"]


def honoured_without_bpf(rules: list[DeviceRule]) -> bool:
    """True when the rules leave every device allowed (v2's state without a
    device program)."""
    last_deny = max((i for i, r in enumerate(rules) if not r.allow), default=-1)
    if last_deny == -1:
        return True
    return any(r.allow and r.is_everything() for r in rules[last_deny + 1:])


def writes(resources: dict[str, Any]) -> list[tuple[str, str]]:
    """No file: validates the rules (InvalidSpec naming the field); enforce() applies them."""
    parse(resources)
    return []


def enforce(cgroup_dir: str, resources: dict[str, Any], *, allow_unenforced: bool = False) -> list[tuple[str, str]]:
    """Attach the rules' program to ``cgroup_dir``, replacing its previous
    one; returns what is reported as not enforced (see the module doc)."""
    from . import device_program

    rules = parse(resources)
    try:
        device_program.replace(cgroup_dir, rules)
    except SyscallError as err:
        if err.errno not in (errno.EPERM, errno.ENOSYS):
            raise
        if honoured_without_bpf(rules):
            return []
        if not allow_unenforced:
            raise Unsupported(
                "apply device rules", FIELD,
                f"cgroup v2 enforces device rules only through an eBPF program, and loading "
                f"one failed ({err}); the {len(rules)} rules given deny access that would not be denied",
            ) from err
        return [(FIELD, f"not enforced: the cgroup v2 device program could not be loaded ({err})")]
    return []

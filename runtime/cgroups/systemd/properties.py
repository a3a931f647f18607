"""A container's planned cgroup v2 writes -> the systemd unit properties that say the same.

The v2 writers (../v2/) turn ``linux.resources`` into file writes and
validate it; this module reads that plan, so the systemd driver validates
and converts exactly as the cgroupfs one does.  systemd gets the values it
has properties for (systemd.resource-control(5)), and the manager then
writes every planned file as well, as runc's driver does: systemd knows the
limits it must keep (it writes them again on a daemon-reload), and what it
has no property for (hugetlb, devices, io.max, memory.oom.group on systemd
before 253, the ``unified`` files it does not know) is still applied.

Facts:
* ``max`` is systemd's infinity, ``UINT64_MAX`` (``t``).
* CPUQuotaPerSecUSec is microseconds of CPU per second, and systemd keeps it
  as a whole percent of a CPU: a quota that is not a multiple of 10 ms per
  second is rounded up, and the ``cpu.max`` written to the file is rounded
  the same way so that systemd and the file agree (runc does the same).
  CPUQuotaPeriodUSec exists from systemd 242 on.
* AllowedCPUs/AllowedMemoryNodes (systemd 244) are bit masks, byte 0 holding
  CPUs 0-7 with CPU 0 in its lowest bit.
* TasksMax cannot be 0 in systemd: 0 becomes 1 there (the file gets 0).
* A scope's ``Delegate=yes`` hands the processes' own subtree to the
  container, and makes systemd enable every controller for it.

Nothing here does I/O.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ...kernel.systemd_dbus import Property
    from ..manager import Write

UINT64_MAX = (1 << 64) - 1
QUOTA_PERIOD_SINCE = 242
ALLOWED_CPUS_SINCE = 244
DEFAULT_PERIOD = 100_000

_UINT64_PROPERTIES = {
    "memory.max": "MemoryMax", "memory.high": "MemoryHigh", "memory.low": "MemoryLow",
    "memory.min": "MemoryMin", "memory.swap.max": "MemorySwapMax", "pids.max": "TasksMax",
}
_MASK_PROPERTIES = {"cpuset.cpus": "AllowedCPUs", "cpuset.mems": "AllowedMemoryNodes"}


def base_properties(container_id: str, slice_name: str, pids: Sequence[int]) -> list[Property]:
    """What every container's scope gets: its slice, delegation, its
    processes, accounting for every controller (the cgroupfs driver gets
    every controller too), and no default dependencies (a container's scope
    must not wait for, or be stopped with, the host's targets)."""
    return [
        ("Description", ("s", f"dockyard container {container_id}")),
        ("Slice", ("s", slice_name)),
        ("Delegate", ("b", True)),
        ("PIDs", ("au", list(pids))),
        ("MemoryAccounting", ("b", True)),
        ("CPUAccounting", ("b", True)),
        ("IOAccounting", ("b", True)),
        ("TasksAccounting", ("b", True)),
        ("DefaultDependencies", ("b", False)),
    ]


def slice_properties(description: str) -> list[Property]:
    """A slice made for a pod: accounting on, so that its children get the controllers."""
    return [
        ("Description", ("s", description)),
        ("MemoryAccounting", ("b", True)),
        ("CPUAccounting", ("b", True)),
        ("IOAccounting", ("b", True)),
        ("TasksAccounting", ("b", True)),
        ("DefaultDependencies", ("b", False)),
    ]


def cpu_list_mask(text: str) -> bytes:
    """``"0-2,4"`` -> ``b"\\x17"`` (already validated by the cpuset writer)."""
    bits = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        for n in range(int(low), int(high or low) + 1):
            bits |= 1 << n
    return bits.to_bytes((bits.bit_length() + 7) // 8 or 1, "little")


def quota_per_sec(quota: int, period: int) -> int:
    """CPUQuotaPerSecUSec for ``quota`` µs per ``period`` µs, rounded up to systemd's 10 ms steps."""
    per_sec = quota * 1_000_000 // period
    if per_sec % 10_000:
        per_sec = (per_sec // 10_000 + 1) * 10_000
    return per_sec


def _uint64(value: str) -> int:
    return UINT64_MAX if value.strip() == "max" else int(value)


def convert(plan: Sequence[Write], systemd_version: int) -> tuple[list[Property], dict[str, str]]:
    """(the properties for ``plan``, files whose planned value changes to match them: ``cpu.max``
    rounded up).  Files with no property are left to the file writes."""
    props: list[Property] = []
    changed: dict[str, str] = {}
    for w in plan:
        value = w.value.strip()
        if w.file in _UINT64_PROPERTIES:
            number = _uint64(value)
            if w.file == "pids.max" and number == 0:
                number = 1
            props.append((_UINT64_PROPERTIES[w.file], ("t", number)))
        elif w.file == "cpu.weight":
            props.append(("CPUWeight", ("t", int(value))))
        elif w.file == "io.weight" and value.startswith("default "):
            props.append(("IOWeight", ("t", int(value.split()[1]))))
        elif w.file == "cpu.max":
            quota_text, _, period_text = value.partition(" ")
            period = int(period_text) if period_text else 0
            if period and systemd_version >= QUOTA_PERIOD_SINCE:
                props.append(("CPUQuotaPeriodUSec", ("t", period)))
            if quota_text == "max":
                props.append(("CPUQuotaPerSecUSec", ("t", UINT64_MAX)))
            else:
                quota = int(quota_text)
                per_sec = quota_per_sec(quota, period or DEFAULT_PERIOD)
                props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
                rounded = per_sec * (period or DEFAULT_PERIOD) // 1_000_000
                if rounded != quota:
                    changed["cpu.max"] = f"{rounded} {period_text}".strip()
        elif w.file in _MASK_PROPERTIES and systemd_version >= ALLOWED_CPUS_SINCE and value:
            props.append((_MASK_PROPERTIES[w.file], ("ay", cpu_list_mask(value))))
    return props, changed

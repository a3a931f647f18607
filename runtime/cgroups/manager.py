"""What the rest of the runtime calls to manage a container's cgroup.

The managers (v1/manager.py, v2/manager.py) are the I/O edge: they turn the
pure controller writers' output into file writes under an injectable root,
so unit tests run them against a fake cgroupfs in a temporary directory.

``apply`` is all-or-nothing as far as it can be: every value is validated
and every target file is checked to exist before the first write, so a bad
spec or a missing controller changes nothing.  A write the kernel then
refuses (EINVAL, EBUSY) stops at that file and raises SyscallError naming
it; earlier writes stay, as in runc.
"""

from __future__ import annotations

from ..kernel.cgroupfs import files as cgroupfs
from ..kernel.errors import FailedPrecondition, Unsupported
from ..kernel.lean import leanos
from ..kernel.lean.records import Record
from ..log import warn
from . import spec_values

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object

MEMORY_FIELD = "linux.resources.memory"
class Write(Record):
    """One planned write: ``value`` into ``file`` of cgroup dir ``directory``;
    ``field`` is the spec field it comes from, for error messages."""

    directory: str
    file: str
    value: str
    field: str


class Manager(Protocol):
    def create(self) -> None: ...
    def add(self, pid: int) -> None: ...
    def join_self(self) -> None: ...
    def add_rest(self, pid: int) -> None: ...
    def cgroup2_dir(self) -> str | None: ...
    def apply(self, resources: dict[str, Any]) -> None: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def is_frozen(self) -> bool: ...
    def pids(self) -> list[int]: ...
    def stats(self) -> dict[str, Any]: ...
    def destroy(self) -> None: ...
    def exists(self) -> bool: ...
    def paths(self) -> dict[str, str]: ...
    def describe(self) -> dict[str, Any]: ...


def report_ignored(notes: list[tuple[str, str]]) -> None:
    """Values accepted but not applied are logged, never silently dropped."""
    for field, reason in notes:
        warn(f"{field} ignored: {reason}")


def perform(plan: list[Write]) -> None:
    """Check every target exists, then write them in order."""
    for w in plan:
        target = leanos.path.join(w.directory, w.file)
        if not leanos.path.exists(target):
            raise Unsupported(
                "apply cgroup limits", w.field,
                f"{target} does not exist (the kernel, or this cgroup, lacks that controller or file)",
            )
    for w in plan:
        cgroupfs.write(leanos.path.join(w.directory, w.file), w.value, f"from {w.field}")


def reject_rdma(resources: dict[str, Any]) -> None:
    if spec_values.section(resources, "rdma", "linux.resources.rdma"):
        raise Unsupported("apply cgroup limits", "linux.resources.rdma", "rdma limits are not supported")


def check_before_update(resources: dict[str, Any], usage_file: str) -> None:
    """memory.checkBeforeUpdate: refuse a limit below current usage instead
    of letting the kernel reclaim or OOM-kill to meet it."""
    mem = spec_values.section(resources, "memory", MEMORY_FIELD)
    if not mem.get("checkBeforeUpdate"):
        return
    limit = mem.get("limit")
    if not isinstance(limit, int) or limit <= 0:
        return
    usage = cgroupfs.parse_int(cgroupfs.read_optional(usage_file))
    if usage > limit:
        raise FailedPrecondition("update memory limit", f"{MEMORY_FIELD}.limit",
                                 f"{limit} is below the current usage {usage} (checkBeforeUpdate)")

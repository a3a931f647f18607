"""The cgroup v1 manager: one directory per hierarchy (and, on a hybrid
host, one in the cgroup2 hierarchy at <root>/unified).

Facts about cgroup v1 that shape it:

* Each hierarchy is separate: a process is added to each one, a limit goes
  to the hierarchy holding its controller, and the cgroup is created and
  removed in every one.  Two controllers can share a hierarchy (``cpu,
  cpuacct``), so the set of directories is smaller than the set of
  controllers; ``paths()`` still lists every controller, as runc's state
  does.  Named hierarchies (``name=systemd``) hold no controller but the
  process joins them too, so the container's processes are grouped there.
* A new cpuset cgroup has empty ``cpuset.cpus``/``cpuset.mems`` and refuses
  tasks (ENOSPC) until both are set, so create() copies the parent's into
  every level it makes.
* The freezer goes through FREEZING to FROZEN; the state is rewritten on
  each poll because a freeze that stalled on a task in uninterruptible sleep
  may need the kick (runc does the same), and a freeze that never finishes
  is undone before the error is raised.
* On a hybrid host the cgroup2 side only groups processes, except that a
  controller v1 has not mounted but cgroup2 offers (hugetlb on this
  project's test machine) takes its limits there, enabled on demand.

Only what every runtime call needs is imported with this module: start,
delete, kill and state build a manager to look at, freeze or remove the
cgroup, and never validate resources or read stats.  The controller writers,
the stats readers and the v2 helpers load inside the methods that use them
(runtime/kernel/lean/README.md).
"""

from __future__ import annotations

import errno
import time

from ...kernel.cgroupfs import files as cgroupfs
from ...kernel.errors import SyscallError, Unsupported
from ...kernel.lean import leanos
from . import freezer

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..manager import Write

FREEZE_TIMEOUT = 5.0


class V1Manager:
    def __init__(
        self,
        dirs: dict[str, str],
        *,
        unified: tuple[str, str] | None = None,
        wait: Callable[[float], None] = time.sleep,
        rmdir: Callable[[str], None] = leanos.rmdir,
        mkdir: Callable[[str], None] = cgroupfs.mkdir,
    ) -> None:
        """``dirs``: controller (``"cpu"``, ``"name=systemd"``) -> the
        container's cgroup dir in that hierarchy.  ``unified``: on a hybrid
        host, (cgroup2 mountpoint, the container's dir in it)."""
        self._dirs = dict(dirs)
        self._unified = unified
        self._wait = wait
        self._rmdir = rmdir
        self._mkdir = mkdir

    def _dirs_v1(self) -> list[str]:
        seen: list[str] = []
        for d in self._dirs.values():
            if d not in seen:
                seen.append(d)
        return seen

    def _distinct_dirs(self) -> list[str]:
        seen = self._dirs_v1()
        if self._unified is not None:
            seen.append(self._unified[1])
        return seen

    def _dir(self, controller: str) -> str:
        return self._dirs[controller]

    def create(self) -> None:
        for d in self._distinct_dirs():
            made = cgroupfs.make_dirs(d, mkdir=self._mkdir)
            if d == self._dirs.get("cpuset"):
                for level in made or [d]:
                    _inherit_cpuset(level)

    def add(self, pid: int) -> None:
        for d in self._distinct_dirs():
            cgroupfs.write(leanos.path.join(d, "cgroup.procs"), str(pid))

    def join_self(self) -> None:
        """Move the calling process, which must be single-threaded, into every
        v1 hierarchy: "0" written to ``tasks`` by the thread itself.

        Why not ``cgroup.procs``: moving a whole thread group takes the
        kernel's global cgroup_threadgroup_rwsem for writing, and the first
        such write after a quiet spell waits for an RCU grace period (6-15 ms
        measured here, about half of runc's create).  Since Linux 5.18 a
        thread that moves only itself skips that lock ("cgroup: Optimize
        single thread migration"); for a process with one thread, moving the
        thread moves the process.  The cgroup2 side of a hybrid host has no
        such door (its thread files only work inside threaded subtrees): the
        process is born there instead (syscalls.fork_into_cgroup), or, where
        clone3 is refused, add_rest() places it."""
        for d in self._dirs_v1():
            cgroupfs.write(leanos.path.join(d, "tasks"), "0")

    def add_rest(self, pid: int) -> None:
        """Add ``pid`` where join_self() does not reach: the cgroup2 dir of a hybrid host."""
        if self._unified is not None:
            cgroupfs.write(leanos.path.join(self._unified[1], "cgroup.procs"), str(pid))

    def cgroup2_dir(self) -> str | None:
        """The container's dir on the cgroup2 side of a hybrid host, where a
        child can be born (syscalls.fork_into_cgroup); None on a v1-only host."""
        return self._unified[1] if self._unified is not None else None

    def plan(self, resources: dict[str, Any]) -> list[Write]:
        """Every write ``resources`` asks for, validated, hierarchy by
        hierarchy in runc's order; probes the tree only for optional files.

        Each controller's writer reads only its own key of ``resources``, so
        a writer whose key is absent is not even imported on create (a
        container with no limits sets only devices)."""
        from ..manager import Write

        if "unified" in resources:
            from ..unified import reject_on_v1

            reject_on_v1(resources)
        if "rdma" in resources:
            from ..manager import reject_rdma

            reject_rdma(resources)
        sections: list[tuple[str, str, list[tuple[str, str]]]] = []
        if "cpu" in resources:
            from . import cpuset

            sections.append(("cpuset", cpuset.FIELD, cpuset.writes(resources)))
        if "devices" in resources:
            from . import devices

            sections.append(("devices", devices.FIELD, devices.writes(resources)))
        if "memory" in resources:
            from . import memory

            mem_dir = self._dirs.get("memory", "")
            swap_accounting = not mem_dir or leanos.path.exists(
                leanos.path.join(mem_dir, "memory.memsw.limit_in_bytes"))
            sections.append(("memory", memory.FIELD, memory.writes(resources, swap_accounting=swap_accounting)))
        if "cpu" in resources:
            from . import cpu

            sections.append(("cpu", cpu.FIELD, cpu.writes(resources)))
        if "pids" in resources:
            from . import pids

            sections.append(("pids", pids.FIELD, pids.writes(resources)))
        if "blockIO" in resources:
            from . import blkio

            blk_dir = self._dirs.get("blkio", "")
            bfq = bool(blk_dir) and not leanos.path.exists(leanos.path.join(blk_dir, "blkio.weight")) \
                and leanos.path.exists(leanos.path.join(blk_dir, "blkio.bfq.weight"))
            sections.append(("blkio", blkio.FIELD, blkio.writes(resources, bfq=bfq)))
        if "network" in resources:
            from . import network

            sections.append(("net_cls", network.FIELD, network.classid_writes(resources)))
            sections.append(("net_prio", network.FIELD, network.priority_writes(resources)))
        plan: list[Write] = []
        for controller, field, writes in sections:
            if not writes:
                continue
            if controller not in self._dirs:
                raise Unsupported("apply cgroup limits", field,
                                  f"the {controller} cgroup v1 controller is not mounted")
            plan += [Write(self._dirs[controller], f, v, field) for f, v in writes]
        if "hugepageLimits" in resources:
            plan += self._hugetlb_plan(resources)
        return plan

    def _hugetlb_plan(self, resources: dict[str, Any]) -> list[Write]:
        from ..manager import Write
        from ..v2 import hugetlb as v2_hugetlb
        from . import hugetlb

        if "hugetlb" in self._dirs:
            return [Write(self._dirs["hugetlb"], f, v, hugetlb.FIELD) for f, v in hugetlb.writes(resources)]
        writes = v2_hugetlb.writes(resources)
        if not writes:
            return []
        if self._unified is not None and "hugetlb" in _controllers(self._unified[0]):
            return [Write(self._unified[1], f, v, hugetlb.FIELD) for f, v in writes]
        raise Unsupported("apply cgroup limits", hugetlb.FIELD, "no hugetlb controller is mounted")

    def apply(self, resources: dict[str, Any]) -> None:
        from ..manager import check_before_update, perform, report_ignored

        plan = self.plan(resources)
        if "memory" in resources:
            from . import memory

            if "memory" in self._dirs:
                check_before_update(resources, leanos.path.join(self._dirs["memory"], "memory.usage_in_bytes"))
            report_ignored(memory.ignored(resources))
        if self._unified is not None and any(w.directory == self._unified[1] for w in plan):
            from ..v2.manager import enable_controllers

            enable_controllers(self._unified[0], self._unified[1], {"hugetlb"})
        perform(plan)

    def _freezer_state(self) -> str:
        if "freezer" not in self._dirs:
            raise Unsupported("freeze cgroup", "freezer", "the freezer cgroup v1 controller is not mounted")
        return leanos.path.join(self._dirs["freezer"], freezer.FILE)

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        state = self._freezer_state()
        want = freezer.state_value(frozen)
        delay, waited = 0.001, 0.0
        while True:
            cgroupfs.write(state, want)
            if cgroupfs.read(state).strip() == want:
                return
            if waited >= FREEZE_TIMEOUT:
                if frozen:
                    cgroupfs.write(state, freezer.THAWED)
                raise SyscallError("freeze cgroup" if frozen else "thaw cgroup", state, errno.ETIMEDOUT,
                                   f"freezer.state did not reach {want}")
            self._wait(delay)
            waited += delay
            delay = min(delay * 2, 0.05)

    def is_frozen(self) -> bool:
        return freezer.is_frozen(cgroupfs.read(self._freezer_state()))

    def pids(self) -> list[int]:
        for controller in ("pids", "freezer", "devices", "memory"):
            if controller in self._dirs:
                return cgroupfs.pids_in_tree(self._dirs[controller])
        dirs = self._distinct_dirs()
        return cgroupfs.pids_in_tree(dirs[0]) if dirs else []

    def stats(self) -> dict[str, Any]:
        from ...kernel.cgroupfs import stats

        return stats.read_v1(self._dirs, self._unified)

    def destroy(self) -> None:
        first: SyscallError | None = None
        for d in self._distinct_dirs():
            try:
                cgroupfs.remove_tree(d, rmdir=self._rmdir, sleep=self._wait)
            except SyscallError as err:
                first = first or err
        if first is not None:
            raise first

    def exists(self) -> bool:
        return any(leanos.path.isdir(d) for d in self._distinct_dirs())

    def paths(self) -> dict[str, str]:
        out = dict(self._dirs)
        if self._unified is not None:
            out[""] = self._unified[1]
        return out

    def describe(self) -> dict[str, Any]:
        """What restore.restore_manager needs to build this manager again (see there)."""
        return {"layout": "v1", "dirs": dict(self._dirs),
                "unified": list(self._unified) if self._unified is not None else None}


def _controllers(cgroup2_dir: str) -> list[str]:
    return (cgroupfs.read_optional(leanos.path.join(cgroup2_dir, "cgroup.controllers")) or "").split()


def _inherit_cpuset(level: str) -> None:
    """Give an empty cpuset cgroup its parent's cpus and mems.

    A parent that is empty too is filled first: another runtime may have
    made it a moment ago and not filled it yet (pods created 10 at a time
    under one new kubelet parent), and copying its emptiness would leave this
    level refusing tasks (ENOSPC) just the same."""
    parent = leanos.path.dirname(level)
    for name in ("cpuset.cpus", "cpuset.mems"):
        own = leanos.path.join(level, name)
        current = cgroupfs.read_optional(own)
        if current is None or current.strip():
            continue
        value = cgroupfs.read(leanos.path.join(parent, name)).strip()
        if not value and parent != leanos.path.dirname(parent):
            _inherit_cpuset(parent)
            value = cgroupfs.read(leanos.path.join(parent, name)).strip()
        if value:
            cgroupfs.write(own, value)


__all__ = ["V1Manager"]

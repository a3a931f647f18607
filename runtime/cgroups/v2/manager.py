"""The cgroup v2 manager: one directory in the unified hierarchy.

Facts about cgroup v2 that shape it:

* A controller's files appear in a cgroup only when the controller is
  enabled in the *parent's* ``cgroup.subtree_control``; the set a cgroup may
  enable is its ``cgroup.controllers``.  So create() walks from the root to
  the container's parent, enabling at each level what that level offers, as
  runc does.  A controller that cannot be enabled (for example one the
  parent was given as threaded) is not an error at create time; apply()
  reports it, naming the field, if a value actually needs it.
* "No internal processes": a non-root cgroup with processes cannot enable
  controllers for its children (EBUSY).  That is why a relative cgroupsPath
  is placed under the *parent* of the runtime's own cgroup
  (cgroup_path.py).
* Freezing is ``cgroup.freeze`` = 1, finished when ``cgroup.events`` reads
  ``frozen 1``; the wait goes through the injectable ``wait`` so a fake tree
  can play the kernel's part.

As in v1/manager.py, the controller writers and the stats readers load
inside plan(), apply() and stats(), so that the runtime calls which only
look at, freeze or remove the cgroup do not import them.
"""

from __future__ import annotations

import errno
import time

from ...kernel.cgroupfs import files as cgroupfs
from ...kernel.errors import FailedPrecondition, SyscallError, Unsupported
from ...kernel.lean import leanos
from ...log import debug
from . import freezer

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..manager import Write

FREEZE_TIMEOUT = 5.0


def enable_controllers(root: str, leaf: str, wanted: set[str] | None = None,
                       mkdir: Callable[[str], None] | None = None) -> None:
    """Walk from ``root`` down to ``leaf``: at each level above the leaf,
    enable in ``cgroup.subtree_control`` the controllers it offers (all, or
    only ``wanted``); with ``mkdir``, create each missing level first.

    Top-down and interleaved, as runc does, because a child's controller
    files appear when the parent enables them: a level created after its
    parent's enabling has them at once."""
    rel = leanos.path.relpath(leaf, root)
    if rel.startswith(".."):
        raise FailedPrecondition("create cgroup", leaf, f"not inside the cgroup2 root {root}")
    parts = [] if rel == "." else rel.split(leanos.sep)
    level = root
    for part in parts:
        _enable_at(level, wanted)
        level = leanos.path.join(level, part)
        if mkdir is not None and not leanos.path.isdir(level):
            cgroupfs.make_dirs(level, mkdir=mkdir)


def _enable_at(level: str, wanted: set[str] | None) -> None:
    available = (cgroupfs.read_optional(leanos.path.join(level, "cgroup.controllers")) or "").split()
    enabled = set((cgroupfs.read_optional(leanos.path.join(level, "cgroup.subtree_control")) or "").split())
    todo = [c for c in available if c not in enabled and (wanted is None or c in wanted)]
    if not todo:
        return
    control = leanos.path.join(level, "cgroup.subtree_control")
    try:
        cgroupfs.write(control, " ".join("+" + c for c in todo))
    except SyscallError:
        # One refused controller fails the whole write; retry one by one so
        # the others still get enabled (runc does the same).
        for c in todo:
            try:
                cgroupfs.write(control, "+" + c)
            except SyscallError as err:
                debug(f"cannot enable {c} in {level}: {err}")


class V2Manager:
    def __init__(
        self,
        path: str,
        *,
        root: str,
        wait: Callable[[float], None] = time.sleep,
        rmdir: Callable[[str], None] = leanos.rmdir,
        mkdir: Callable[[str], None] = cgroupfs.mkdir,
        allow_unenforced_devices: bool = False,
    ) -> None:
        self.path = path
        self.root = root
        self._wait = wait
        self._rmdir = rmdir
        self._mkdir = mkdir
        self._allow_unenforced_devices = allow_unenforced_devices

    def _file(self, name: str) -> str:
        return leanos.path.join(self.path, name)

    def create(self) -> None:
        enable_controllers(self.root, self.path, mkdir=self._mkdir)

    def add(self, pid: int) -> None:
        cgroupfs.write(self._file("cgroup.procs"), str(pid))

    def join_self(self) -> None:
        """Nothing: cgroup2 has no cheap self-move for a domain cgroup (see
        the v1 manager's join_self).  The process is born in cgroup2_dir()
        (syscalls.fork_into_cgroup), or, where clone3 is refused, add_rest()
        does the whole placement."""

    def add_rest(self, pid: int) -> None:
        self.add(pid)

    def cgroup2_dir(self) -> str | None:
        return self.path

    def plan(self, resources: dict[str, Any]) -> list[Write]:
        """Every write ``resources`` asks for, validated; no I/O but probes
        for optional files.

        As on v1 (v1/manager.py, plan): each writer reads only its own key
        of ``resources``, so a writer whose key is absent is not imported,
        and its probes are not made."""
        from ..manager import Write

        if "rdma" in resources:
            from ..manager import reject_rdma

            reject_rdma(resources)
        exists = leanos.path.exists
        sections: list[tuple[str, list[tuple[str, str]]]] = []
        if "cpu" in resources:
            from . import cpuset

            sections.append((cpuset.FIELD, cpuset.writes(resources)))
        if "memory" in resources:
            from . import memory

            swap_accounting = exists(self._file("memory.swap.max")) or not exists(self._file("memory.max"))
            sections.append((memory.FIELD, memory.writes(resources, swap_accounting=swap_accounting)))
        if "cpu" in resources:
            from . import cpu

            sections.append((cpu.FIELD, cpu.writes(resources)))
        if "pids" in resources:
            from . import pids

            sections.append((pids.FIELD, pids.writes(resources)))
        if "blockIO" in resources:
            from . import io

            sections.append((io.FIELD, io.writes(resources, bfq=exists(self._file("io.bfq.weight")))))
        if "hugepageLimits" in resources:
            from . import hugetlb

            rsvd = any(n.endswith(".rsvd.max") for n in _listdir(self.path))
            sections.append((hugetlb.FIELD, hugetlb.writes(resources, rsvd=rsvd)))
        if "devices" in resources:
            from . import devices

            sections.append((devices.FIELD, devices.writes(resources)))
        plan = [Write(self.path, f, v, field) for field, ws in sections for f, v in ws]
        if "unified" in resources:
            from . import unified

            plan += [Write(self.path, f, v, f"{unified.FIELD}[{f!r}]") for f, v in unified.writes(resources)]
        return plan

    def apply(self, resources: dict[str, Any]) -> None:
        from ..manager import check_before_update, perform, report_ignored

        plan = self.plan(resources)
        self._check_controllers(plan)
        ignored: list[tuple[str, str]] = []
        if "memory" in resources:
            from . import memory

            check_before_update(resources, self._file("memory.current"))
            ignored += memory.ignored(resources)
        if "blockIO" in resources:
            from . import io

            ignored += io.ignored(resources)
        if "devices" in resources:
            # First: the step most likely to be refused by the environment
            # (bpf(2) without CAP_BPF) fails before any file is written.
            from . import devices

            ignored += devices.enforce(self.path, resources, allow_unenforced=self._allow_unenforced_devices)
        report_ignored(ignored + _network_ignored(resources))
        perform(plan)

    def _check_controllers(self, plan: list[Write]) -> None:
        """A controller's file needs the controller enabled for this cgroup
        (in its cgroup.controllers, which the parent's cgroup.subtree_control
        decides; create() enables what each level offers, but a parent that
        holds processes or was given the controller as threaded cannot).
        Name the controller and the parent, before anything is written."""
        text = cgroupfs.read_optional(self._file("cgroup.controllers"))
        if text is None:
            return  # no such cgroup: perform() names the missing file
        enabled = set(text.split())
        for w in plan:
            controller = w.file.partition(".")[0]
            if controller != "cgroup" and controller not in enabled:
                parent = leanos.path.dirname(self.path)
                raise Unsupported("apply cgroup limits", w.field,
                                  f"the {controller} controller is not enabled for {self.path}: "
                                  f"{parent}/cgroup.subtree_control does not list it")

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        control = self._file(freezer.CONTROL)
        if not leanos.path.exists(control):
            raise Unsupported("freeze cgroup", control, "cgroup.freeze needs Linux 5.2 or later")
        cgroupfs.write(control, "1" if frozen else "0")
        delay, waited = 0.001, 0.0
        while self.is_frozen() != frozen:
            if waited >= FREEZE_TIMEOUT:
                if frozen:
                    cgroupfs.write(control, "0")
                raise SyscallError("freeze cgroup" if frozen else "thaw cgroup", self.path, errno.ETIMEDOUT,
                                   f"cgroup.events did not report frozen {int(frozen)}")
            self._wait(delay)
            waited += delay
            delay = min(delay * 2, 0.05)

    def is_frozen(self) -> bool:
        return freezer.is_frozen(cgroupfs.read_optional(self._file(freezer.EVENTS)) or "")

    def pids(self) -> list[int]:
        return cgroupfs.pids_in_tree(self.path)

    def stats(self) -> dict[str, Any]:
        from ...kernel.cgroupfs import stats

        return stats.read_v2(self.path)

    def destroy(self) -> None:
        cgroupfs.remove_tree(self.path, rmdir=self._rmdir, sleep=self._wait)

    def exists(self) -> bool:
        return leanos.path.isdir(self.path)

    def paths(self) -> dict[str, str]:
        return {"": self.path}

    def describe(self) -> dict[str, Any]:
        """What restore.restore_manager needs to build this manager again (see there)."""
        return {"layout": "v2", "path": self.path, "root": self.root,
                "allow_unenforced_devices": self._allow_unenforced_devices}


def _listdir(path: str) -> list[str]:
    try:
        return leanos.listdir(path)
    except OSError:
        return []


def _network_ignored(resources: dict[str, Any]) -> list[tuple[str, str]]:
    from .. import spec_values as sv

    if sv.section(resources, "network", "linux.resources.network"):
        return [("linux.resources.network", "cgroup v2 has no net_cls/net_prio controllers")]
    return []

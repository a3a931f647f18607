"""The systemd cgroup driver: the container's cgroup is a transient scope unit.

systemd owns the cgroup tree on a systemd host; a runtime that makes
directories in it behind systemd's back has them ignored, or moved away at
the next daemon-reload.  So, as runc and crun do with ``--systemd-cgroup``,
this manager asks systemd (kernel/systemd_dbus.py) for a scope unit
``<prefix>-<name>.scope`` in the pod's slice, with ``Delegate=yes`` and the
resource properties, and systemd makes the cgroup and moves the init into
it.  Everything else (limits systemd has no property for, freezing, stats,
pids) goes through the v2 manager on the scope's directory.

Why the order differs from the cgroupfs driver's (spawn._spawn): a scope
cannot start without a process, so there is no directory to fork the init
into.  Until the scope exists ``cgroup2_dir()`` is None and
``placed_by_parent`` is True: the parent forks stage 1, and ``add`` starts
the scope with its pid before stage 1 goes on, so stage 2 is born inside.
``apply`` before then only validates and keeps the resources; they go to
systemd as properties at the start, and to the files right after it.

``destroy`` stops the unit only when this manager started it or was
rebuilt from a container's record: a create that fails because the name is
taken must not stop the unit that holds it.
"""

from __future__ import annotations

import time

from ...kernel.lean import leanos
from ...log import debug
from ..v2.manager import V2Manager, enable_controllers
from . import properties

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ...kernel.systemd_dbus import Property, Systemd


class SystemdManager:
    def __init__(
        self,
        unit: str,
        slice_name: str,
        path: str,
        *,
        root: str,
        container_id: str,
        started: bool = False,
        wait: Callable[[float], None] = time.sleep,
        allow_unenforced_devices: bool = False,
    ) -> None:
        self.unit = unit
        self.slice = slice_name
        self.container_id = container_id
        self._started = started
        self._pending: dict[str, Any] | None = None
        self._v2 = V2Manager(path, root=root, wait=wait, allow_unenforced_devices=allow_unenforced_devices)

    @property
    def path(self) -> str:
        return self._v2.path

    @property
    def placed_by_parent(self) -> bool:
        """True until the scope exists: the parent places the init by pid."""
        return not self._started

    def adopt(self) -> None:
        """Take the scope as this manager's own, as if it had started it (a
        container whose record is lost: destroy() is then to stop it)."""
        self._started = True

    def _bus(self) -> Systemd:
        from ...kernel.systemd_dbus import Systemd

        return Systemd.connect()

    def create(self) -> None:
        """Only a check that systemd runs here, before any process exists:
        systemd makes the cgroup when the scope starts (add)."""
        from ...kernel.errors import Unsupported
        from ...kernel.systemd_dbus import SYSTEMD_BOOTED, booted

        if not booted():
            raise Unsupported("use the systemd cgroup driver", SYSTEMD_BOOTED,
                              "systemd is not this host's init (use the cgroupfs driver: omit --systemd-cgroup)")

    def add(self, pid: int) -> None:
        if self._started:
            self._v2.add(pid)
        else:
            self._start(pid)

    def join_self(self) -> None:
        """Nothing: systemd moves the init in (see the module docstring)."""

    def add_rest(self, pid: int) -> None:
        self.add(pid)

    def cgroup2_dir(self) -> str | None:
        return self._v2.path if self._started else None

    def _properties(self, bus: Systemd, resources: dict[str, Any]) -> tuple[list[Property], dict[str, Any]]:
        plan = self._v2.plan(resources)
        needs_version = any(w.file in ("cpu.max", "cpuset.cpus", "cpuset.mems") for w in plan)
        props, changed = properties.convert(plan, bus.version() if needs_version else 0)
        if "cpu.max" in changed:
            # The file must say what systemd keeps (properties.py: rounded up to 10 ms per second).
            quota, _, _ = changed["cpu.max"].partition(" ")
            cpu = dict(resources.get("cpu") or {})
            cpu["quota"] = int(quota)
            resources = {**resources, "cpu": cpu}
        return props, resources

    def _start(self, pid: int) -> None:
        resources = self._pending or {}
        with self._bus() as bus:
            props, resources = self._properties(bus, resources)
            bus.start_transient_unit(
                self.unit, properties.base_properties(self.container_id, self.slice, [pid]) + props)
        self._started = True
        debug(f"started systemd unit {self.unit} in {self.slice} for pid {pid}")
        # systemd enables for the scope only the controllers it manages
        # (hugetlb and rdma it does not); as runc does after the start, enable
        # what each level offers, down to the scope's parent.
        enable_controllers(self._v2.root, self._v2.path)
        if self._pending is not None:
            self._v2.apply(resources)

    def apply(self, resources: dict[str, Any]) -> None:
        """Before the scope exists: validate and keep (the start applies them).
        After (update): tell systemd, then write the files."""
        if not self._started:
            self._v2.plan(resources)  # every value checked now, before any process exists
            self._pending = resources
            return
        with self._bus() as bus:
            props, resources = self._properties(bus, resources)
            bus.set_unit_properties(self.unit, props)
        self._v2.apply(resources)

    def freeze(self) -> None:
        self._v2.freeze()

    def thaw(self) -> None:
        self._v2.thaw()

    def is_frozen(self) -> bool:
        return self._v2.is_frozen()

    def pids(self) -> list[int]:
        return self._v2.pids()

    def stats(self) -> dict[str, Any]:
        return self._v2.stats()

    def destroy(self) -> None:
        """Stop the scope (systemd kills what is left and removes its cgroup),
        then remove whatever the container made below it (systemd before 240
        left sub-cgroups)."""
        if not self._started:
            return
        with self._bus() as bus:
            bus.stop_unit(self.unit)
        if leanos.path.isdir(self._v2.path):
            self._v2.destroy()

    def exists(self) -> bool:
        return self._v2.exists()

    def paths(self) -> dict[str, str]:
        return self._v2.paths()

    def describe(self) -> dict[str, Any]:
        """What restore.restore_manager needs to build this manager again (see there)."""
        return {**self._v2.describe(), "layout": "systemd", "unit": self.unit, "slice": self.slice,
                "id": self.container_id}

"""linux.resources.cpu.cpus/mems -> cgroup v1 cpuset.cpus / cpuset.mems.

A new v1 cpuset cgroup starts with both files empty, and the kernel refuses
to move a task into it (ENOSPC) until both are set.  The manager copies them
from the parent when it creates the cgroup (v1/manager.py); these writes then
narrow them.  cpus is written before mems only for a stable order; the two
are independent.
"""

from __future__ import annotations

from ..cpusets import FIELD, writes

CONTROLLER = "cpuset"
__all__ = ["FIELD", "CONTROLLER", "writes"]

"""linux.resources.cpu.cpus/mems -> cgroup v2 cpuset.cpus / cpuset.mems.

Unlike v1, an empty v2 cpuset means "inherit the parent's effective set",
so nothing has to be copied at create time.
"""

from __future__ import annotations

from ..cpusets import FIELD, writes

CONTROLLER = "cpuset"
__all__ = ["FIELD", "CONTROLLER", "writes"]

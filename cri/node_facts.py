"""What this node's kernel offers containers, read once at start: the cgroup
version, the online CPUs and memory nodes, the huge page sizes.

Read once because none of it changes while the daemon runs in practice
(CPU hotplug aside, where a stale fact only means the runtime, not the
daemon, reports a cpuset that went offline).  The checks that use it are
pure (oci/resources.py).
"""

from __future__ import annotations

import os

from dockyard.runtime.kernel.cgroupfs.mode import Mode, detect

from .oci.resources import NodeResources, parse_id_list

CPU_ONLINE = "/sys/devices/system/cpu/online"
NODE_ONLINE = "/sys/devices/system/node/online"
HUGEPAGES = "/sys/kernel/mm/hugepages"


def _read_ids(path: str, default: frozenset[int]) -> frozenset[int]:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except FileNotFoundError:  # no NUMA support: node 0 only
        return default
    return parse_id_list(text, path) if text else default


def hugepage_size_name(dirname: str) -> str | None:
    """'hugepages-2048kB' -> '2MB', as CRI and kubelet name sizes (pure)."""
    if not (dirname.startswith("hugepages-") and dirname.endswith("kB")):
        return None
    kib = int(dirname[len("hugepages-"):-2])
    for unit, size in (("GB", 1 << 20), ("MB", 1 << 10)):
        if kib % size == 0:
            return f"{kib // size}{unit}"
    return f"{kib}KB"


def read_node_resources() -> NodeResources:
    try:
        names = os.listdir(HUGEPAGES)
    except FileNotFoundError:
        names = []
    sizes = frozenset(n for n in map(hugepage_size_name, names) if n)
    return NodeResources(
        cgroup_v2=detect() is Mode.V2,
        cpus=_read_ids(CPU_ONLINE, frozenset({0})),
        mems=_read_ids(NODE_ONLINE, frozenset({0})),
        hugepage_sizes=sizes,
    )

"""The pod cgroup, and the cgroupsPath of each container in it.

cgroupfs driver: the pod's cgroup is ``<cgroup_parent>/pod-<id>`` and a
container's is ``<pod cgroup>/<id>``.  The runtime creates and removes each
container's leaf cgroup; the intermediate pod directory is created
implicitly by the first container (mkdir -p) and nobody else removes it, so
the daemon does once the pod is gone.

systemd driver: the pod's cgroup is the slice ``<parent stem>-pod<id>.slice``
(below ``dockyard.slice`` or kubelet's ``kubepods-*.slice``: systemd nests
slices by name), and a container's is the scope ``dockyard-<id>.scope`` in
it, which the runtime asks systemd for (cgroupsPath ``<slice>:dockyard:<id>``,
containerd's form with its own prefix).  systemd starts the slice with the
pod's first scope; the daemon stops it once the pod is gone.

Which form a container's path takes follows the pod's parent, as in
containerd: a parent whose last element is a slice gets the systemd form.
Only cgroups this daemon named are removed: a kubelet-given cgroup_parent
belongs to kubelet.

UpdatePodSandboxResources writes the pod's resources into the pod cgroup,
whoever made it: that call is how kubelet hands them to the runtime during
an in-place resize, and it writes the same values itself right after
(kuberuntime_manager.go, doPodResizeAction: it notifies the runtime first and
takes an error as the resize refused).  Facts about those files:

* The pod cgroup holds the pod's resources plus its overhead (kubelet sends
  the two apart).
* v1 checks ``cfs_quota_us / cfs_period_us`` against the parent's ratio at
  every write, using the other file's current value; lifting the quota to -1
  first, then writing the period and the quota, never passes through a state
  it refuses (the runtime's v1 cpu writer does the same).  Likewise v1 wants
  memory <= memory+swap at every write, so memsw is lifted to -1 first.
* A v1 hierarchy has v1 names, cgroup2 has its own (``cpu.max``,
  ``cpu.weight``, ``memory.max``, ``memory.swap.max``, ``hugetlb.<size>.max``);
  the plan lists both and each is written where its file exists, so the
  hybrid layout (hugetlb alone on the cgroup2 side) needs no special case.
  A value that no directory takes is an error: the pod's cgroup lacks that
  controller.
* A write the kernel refuses (EBUSY: a memory limit below what the pod
  uses) is FailedPrecondition naming the CRI field.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Any

from cri_api.v1 import api_pb2

from dockyard.runtime.kernel.cgroupfs.systemd_path import pod_slice, slice_dir
from dockyard.runtime.kernel.errors import RuntimeFault

from . import errors

CGROUP_ROOT = "/sys/fs/cgroup"
SCOPE_PREFIX = "dockyard"


def pod_cgroup_parent(driver: str, cgroup_parent: str, sandbox_id: str) -> str:
    """The cgroup of a pod this daemon names (no cgroup_parent from the caller)."""
    if driver == "systemd":
        return pod_slice(cgroup_parent, sandbox_id)
    return f"{cgroup_parent.rstrip('/')}/pod-{sandbox_id}"


def cgroups_path(pod_parent: str, object_id: str) -> str:
    """linux.cgroupsPath of a container (or the pause container) of the pod whose cgroup is ``pod_parent``."""
    base = pod_parent.rstrip("/").rpartition("/")[2]
    if base.endswith(".slice"):
        return f"{base}:{SCOPE_PREFIX}:{object_id}"
    return f"{pod_parent.rstrip('/')}/{object_id}"


def _stop_slice(name: str) -> None:
    from dockyard.runtime.kernel.systemd_dbus import Systemd

    try:
        with Systemd.connect() as bus:
            bus.stop_unit(name)
    except RuntimeFault as err:
        raise errors.FailedPrecondition(f"cannot stop the pod slice {name}: {err}") from err


def slice_oom_kills(container_cgroups_path: str, root: str = CGROUP_ROOT) -> int | None:
    """The ``oom_kill`` count in memory.events of the slice that holds a
    container's scope (its pod's slice), or None for a cgroupfs path or an
    unreadable file.  The count is hierarchical (cgroup-v2.rst: memory.events
    covers the cgroup's descendants), and the pod slice lives as long as the
    pod, while systemd removes a container's scope, with its memory.events,
    as soon as its last process is gone: before the shim can read it, seen
    in the guest under TCG (systemd 252 logs the OOM kill, then deactivates
    the scope "successfully", so the unit's Result says nothing either)."""
    from dockyard.runtime.kernel.cgroupfs.systemd_path import (
        expand_slice,
        is_systemd_path,
    )
    from dockyard.runtime.kernel.errors import InvalidSpec

    if not is_systemd_path(container_cgroups_path):
        return None
    try:
        directory = expand_slice(container_cgroups_path.split(":")[0] or "system.slice")
        with open(os.path.join(root, directory.strip("/"), "memory.events")) as f:
            text = f.read()
    except (OSError, InvalidSpec):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def oom_kill_unexplained(slice_kills: int | None, explained: int) -> bool:
    """Whether the pod slice counted more OOM kills than the pod's containers
    already account for (pure).  Used for a container that died of SIGKILL
    with no OOM seen by its shim: the kill it cannot account for is its own.
    (It could be a sibling's whose shim also missed it, if both died of
    SIGKILL at once: then both are OOMKilled, the first one asked is.)"""
    return slice_kills is not None and slice_kills > explained


def pod_cgroup_dirs(path: str, root: str = CGROUP_ROOT) -> list[str]:
    """The directory of ``path`` in every hierarchy mounted under ``root`` that
    has it (a bare slice name stands for its nested path: a pod slice)."""
    rel = slice_dir(path).strip("/")
    if not rel or ".." in rel.split("/"):
        return []
    out = []
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    for name in names:
        d = os.path.join(root, name, rel)
        if os.path.isdir(d):
            out.append(d)
    if os.path.exists(os.path.join(root, "cgroup.controllers")) and os.path.isdir(os.path.join(root, rel)):
        out.append(os.path.join(root, rel))  # pure v2 host
    return out


def remove_pod_cgroup(path: str, root: str = CGROUP_ROOT) -> None:
    """rmdir the pod cgroup (children first) in every hierarchy; absent is
    fine.  A pod slice (a bare slice name) is stopped through systemd, which
    removes its cgroup."""
    if "/" not in path and path.endswith(".slice"):
        _stop_slice(path)
        return
    for d in pod_cgroup_dirs(path, root):
        for current, dirs, _ in sorted(os.walk(d, topdown=False), key=lambda t: -len(t[0])):
            try:
                os.rmdir(current)
            except OSError as err:
                if err.errno == errno.ENOENT:
                    continue
                raise errors.FailedPrecondition(f"cannot remove pod cgroup {current}: {err.strerror}") from err


@dataclass(frozen=True, slots=True)
class CgroupWrite:
    """One value for the pod cgroup: the CRI field it comes from, a control file,
    the text, and any other CRI field the same file carries (v2's cpu.max)."""

    field: str
    file: str
    value: str
    also: tuple[str, ...] = ()


def with_overhead(resources: api_pb2.LinuxContainerResources,
                  overhead: api_pb2.LinuxContainerResources) -> api_pb2.LinuxContainerResources:
    """What the pod cgroup holds: the pod's resources plus its overhead (pure).
    An unlimited (0 or negative) quota or memory limit stays unlimited."""
    total = api_pb2.LinuxContainerResources()
    total.CopyFrom(resources)
    if resources.cpu_shares:
        total.cpu_shares = resources.cpu_shares + overhead.cpu_shares
    if resources.cpu_quota > 0 and overhead.cpu_quota > 0:
        total.cpu_quota = resources.cpu_quota + overhead.cpu_quota
    if resources.memory_limit_in_bytes > 0 and overhead.memory_limit_in_bytes > 0:
        total.memory_limit_in_bytes = resources.memory_limit_in_bytes + overhead.memory_limit_in_bytes
        if resources.memory_swap_limit_in_bytes > 0:
            total.memory_swap_limit_in_bytes = resources.memory_swap_limit_in_bytes + overhead.memory_limit_in_bytes
    return total


def shares_to_weight(shares: int) -> int:
    """cgroup v2 cpu.weight for v1 shares (runc's formula; 2..262144 -> 1..10000)."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def resource_writes(resources: dict[str, Any]) -> list[CgroupWrite]:
    """OCI ``linux.resources`` (from oci.resources.linux_resources, so
    already checked) -> the pod cgroup's writes in order, v1 and v2 names (pure)."""
    out: list[CgroupWrite] = []
    cpu = resources.get("cpu") or {}
    shares, quota, period = cpu.get("shares"), cpu.get("quota"), cpu.get("period")
    if shares:
        out += [CgroupWrite("cpu_shares", "cpu.shares", str(shares)),
                CgroupWrite("cpu_shares", "cpu.weight", str(shares_to_weight(shares)))]
    if period:
        if quota:
            out.append(CgroupWrite("cpu_quota", "cpu.cfs_quota_us", "-1"))
        out.append(CgroupWrite("cpu_period", "cpu.cfs_period_us", str(period)))
    if quota:
        out.append(CgroupWrite("cpu_quota", "cpu.cfs_quota_us", str(quota)))
    if quota or period:
        max_text = "max" if not quota or quota < 0 else str(quota)
        out.append(CgroupWrite("cpu_quota" if quota else "cpu_period", "cpu.max",
                               f"{max_text} {period}" if period else max_text,
                               ("cpu_period",) if quota and period else ()))
    if cpu.get("cpus"):
        out.append(CgroupWrite("cpuset_cpus", "cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        out.append(CgroupWrite("cpuset_mems", "cpuset.mems", cpu["mems"]))
    memory = resources.get("memory") or {}
    limit, swap = memory.get("limit"), memory.get("swap")
    if swap:
        out.append(CgroupWrite("memory_swap_limit_in_bytes", "memory.memsw.limit_in_bytes", "-1"))
    if limit:
        out += [CgroupWrite("memory_limit_in_bytes", "memory.limit_in_bytes", str(limit)),
                CgroupWrite("memory_limit_in_bytes", "memory.max", str(limit))]
    if swap:
        out.append(CgroupWrite("memory_swap_limit_in_bytes", "memory.memsw.limit_in_bytes", str(swap)))
        out.append(CgroupWrite("memory_swap_limit_in_bytes", "memory.swap.max",
                               "max" if swap < 0 or not limit else str(swap - limit)))
    for i, h in enumerate(resources.get("hugepageLimits") or []):
        size, limit_text = h["pageSize"], str(h["limit"])
        out += [CgroupWrite(f"hugepage_limits[{i}]", f"hugetlb.{size}.limit_in_bytes", limit_text),
                CgroupWrite(f"hugepage_limits[{i}]", f"hugetlb.{size}.max", limit_text)]
    for key, value in (resources.get("unified") or {}).items():
        out.append(CgroupWrite(f"unified[{key}]", key, value))
    return out


def apply_pod_resources(path: str, writes: list[CgroupWrite], field: str, root: str = CGROUP_ROOT) -> None:
    """Write ``writes`` into the pod cgroup ``path`` in every hierarchy that
    has each file (blocking).  Errors name ``<field>.<CRI field>``."""
    dirs: list[str] = []
    for d in pod_cgroup_dirs(path, root):
        real = os.path.realpath(d)
        if real not in dirs:
            dirs.append(real)
    if writes and not dirs:
        raise errors.FailedPrecondition(f"{field}: the pod cgroup {path} does not exist")
    landed: set[str] = set()
    for w in writes:
        for d in dirs:
            target = os.path.join(d, w.file)
            if not os.path.exists(target):
                continue
            try:
                fd = os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
                try:
                    os.write(fd, w.value.encode())  # one write(2): cgroupfs parses one buffer
                finally:
                    os.close(fd)
            except OSError as err:
                raise errors.FailedPrecondition(
                    f"{field}.{w.field}: the pod cgroup refused {w.value!r} in {target}: {err.strerror}") from err
            landed.update((w.field, *w.also))
    missing = sorted({w.field for w in writes} - landed)
    if missing:
        raise errors.FailedPrecondition(
            f"{field}.{missing[0]}: the pod cgroup {path} has no controller for it on this node")

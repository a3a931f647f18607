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
"""

from __future__ import annotations

import errno
import os

from dockyard.runtime.kernel.cgroupfs.systemd_path import pod_slice
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


def pod_cgroup_dirs(path: str, root: str = CGROUP_ROOT) -> list[str]:
    """The directory of ``path`` in every hierarchy mounted under ``root`` that has it."""
    rel = path.strip("/")
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

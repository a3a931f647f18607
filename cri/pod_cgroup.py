"""The pod cgroup (``<cgroup_parent>/pod-<id>``) on a cgroupfs host.

The runtime creates and removes each container's leaf cgroup under it; the
intermediate pod directory is created implicitly by the first container (mkdir
-p) and nobody else removes it, so the daemon does once the pod is gone.
Only directories this daemon named are touched: a kubelet-given
cgroup_parent belongs to kubelet.
"""

from __future__ import annotations

import errno
import os

from . import errors

CGROUP_ROOT = "/sys/fs/cgroup"


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
    """rmdir the pod cgroup (children first) in every hierarchy; absent is fine."""
    for d in pod_cgroup_dirs(path, root):
        for current, dirs, _ in sorted(os.walk(d, topdown=False), key=lambda t: -len(t[0])):
            try:
                os.rmdir(current)
            except OSError as err:
                if err.errno == errno.ENOENT:
                    continue
                raise errors.FailedPrecondition(f"cannot remove pod cgroup {current}: {err.strerror}") from err

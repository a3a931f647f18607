"""CRI devices -> OCI ``linux.devices`` plus device-cgroup rules.

Reading a device node's type and numbers is I/O, so the caller injects
``stat_path`` (``os.stat``, which follows symlinks like ``/dev/disk/by-id``
entries, as containerd does).  The cgroup rules start with deny-all; the
runtime then adds runc's standard allowances (null, zero, tty, ptys, ...)
and one allow per listed device.  A privileged container gets every device
node of the host (``host_devices``) and may use any device.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from typing import Any

from cri_api.v1 import api_pb2

from ..errors import InvalidArgument
from .mounts import clean_destination

StatPath = Callable[[str], os.stat_result]

DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}


def node_from_stat(st: os.stat_result, container_path: str) -> dict[str, Any] | None:
    """The ``linux.devices`` entry for a char or block node, else None."""
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {"path": container_path, "type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
            "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}


def cri_devices(devices: Sequence[api_pb2.Device], stat_path: StatPath,
                field: str = "config.devices") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(linux.devices, device cgroup rules) for the config's devices."""
    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for i, dev in enumerate(devices):
        here = f"{field}[{i}]"
        if not dev.host_path.startswith("/"):
            raise InvalidArgument(f"{here}.host_path: {dev.host_path!r} must be an absolute path")
        dest = clean_destination(dev.container_path or dev.host_path, f"{here}.container_path")
        access = dev.permissions or "rwm"
        if not set(access) <= set("rwm"):
            raise InvalidArgument(f"{here}.permissions: {dev.permissions!r} is not made of r, w and m")
        try:
            st = stat_path(dev.host_path)
        except FileNotFoundError as err:
            raise InvalidArgument(f"{here}.host_path: {dev.host_path} does not exist") from err
        except OSError as err:
            raise InvalidArgument(f"{here}.host_path: cannot stat {dev.host_path}: {err.strerror}") from err
        node = node_from_stat(st, dest)
        if node is None:
            raise InvalidArgument(f"{here}.host_path: {dev.host_path} is not a character or block device")
        nodes.append(node)
        rules.append({"allow": True, "type": node["type"], "major": node["major"], "minor": node["minor"],
                      "access": "".join(c for c in "rwm" if c in access)})
    return nodes, rules


# Directories under /dev that hold no device the container should get, or
# that the container gets its own copy of (runc's HostDevices skips these).
_SKIP_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def scan_host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every char and block node under ``root`` (I/O; the default
    ``host_devices`` of a privileged container).  /dev/console is left out:
    the container gets its own console from the runtime."""
    out: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if path == os.path.join(root, "console"):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue  # a node that vanished while we walked
            node = node_from_stat(st, path)
            if node is not None:
                out.append(node)
    return out

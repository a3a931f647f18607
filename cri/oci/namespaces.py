"""Which namespaces the pause container makes and the containers join.

The pause (sandbox) container creates the pod's namespaces: the network
namespace is the one the daemon made and bind-mounted (``netns_path``, so it
outlives the pause process and CNI can tear it down after a crash), the
others are new.  Every container then joins them through
``/proc/<pause pid>/ns/<kind>``.  Per NamespaceOption:

=========  =======================================  ====================================
mode       sandbox                                  container
=========  =======================================  ====================================
POD        new (network: netns_path)                join the sandbox's
CONTAINER  (pid only) new                           (pid only) new
NODE       none: the host's                         none: the host's
TARGET     refused                                  (pid only) join the target's
=========  =======================================  ====================================

The UTS namespace follows the network option, as in containerd: a
host-network pod has the host's hostname.  The mount namespace is always
new.  A user namespace (``userns_options.mode`` POD) is created by the
sandbox with the given mappings and joined by the containers, which carry
the same mappings so their idmapped mounts can use them.  The cgroup
namespace is new only when asked (containerd does so on cgroup v2 hosts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cri_api.v1 import api_pb2

from ..errors import InvalidArgument
from .idmap import oci_idmaps

NODE = api_pb2.NODE
POD = api_pb2.POD
CONTAINER = api_pb2.CONTAINER
TARGET = api_pb2.TARGET

TargetPid = Callable[[str], int]


def _mode_name(mode: int) -> str:
    return api_pb2.NamespaceMode.Name(mode) if mode in api_pb2.NamespaceMode.values() else str(mode)


def user_mappings(ns: api_pb2.NamespaceOption, field: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """The pod's (uidMappings, gidMappings), or None without a user namespace."""
    if not ns.HasField("userns_options"):
        return None
    opts = ns.userns_options
    ufield = f"{field}.userns_options"
    if opts.mode == NODE:
        if len(opts.uids) or len(opts.gids):
            raise InvalidArgument(f"{ufield}.uids: mappings need mode POD, not NODE")
        return None
    if opts.mode != POD:
        raise InvalidArgument(f"{ufield}.mode: {_mode_name(opts.mode)} is not supported (POD or NODE)")
    if not len(opts.uids) or not len(opts.gids):
        raise InvalidArgument(f"{ufield}.uids: a pod user namespace needs uid and gid mappings")
    for kind in ("network", "pid", "ipc"):
        if getattr(ns, kind) == NODE:
            raise InvalidArgument(f"{field}.{kind}: a pod with its own user namespace cannot use the host's "
                                  f"{kind} namespace")
    return oci_idmaps(opts.uids, f"{ufield}.uids"), oci_idmaps(opts.gids, f"{ufield}.gids")


def sandbox_namespaces(ns: api_pb2.NamespaceOption, netns_path: str, field: str, *,
                       private_cgroupns: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"type": "mount"}]
    if ns.network != NODE:
        out.append({"type": "network", "path": netns_path} if netns_path else {"type": "network"})
        out.append({"type": "uts"})
    if ns.ipc != NODE:
        out.append({"type": "ipc"})
    if ns.pid == TARGET:
        raise InvalidArgument(f"{field}.pid: TARGET is for containers, not for the pod sandbox")
    if ns.pid != NODE:
        out.append({"type": "pid"})
    if user_mappings(ns, field) is not None:
        out.append({"type": "user"})
    if private_cgroupns:
        out.append({"type": "cgroup"})
    return out


def container_namespaces(pod_ns: api_pb2.NamespaceOption, own_ns: api_pb2.NamespaceOption, *,
                         sandbox_pid: int, netns_path: str, target_pid: TargetPid | None,
                         field: str, private_cgroupns: bool) -> list[dict[str, Any]]:
    """``pod_ns`` decides network, ipc, uts and user (what the sandbox has);
    ``own_ns`` (the container's namespace_options, at ``field``) decides pid."""
    if sandbox_pid <= 0:
        raise InvalidArgument(f"sandbox_pid: {sandbox_pid} is not a process id")
    proc = f"/proc/{sandbox_pid}/ns"
    out: list[dict[str, Any]] = [{"type": "mount"}]
    if pod_ns.network != NODE:
        out.append({"type": "network", "path": netns_path or f"{proc}/net"})
        out.append({"type": "uts", "path": f"{proc}/uts"})
    if pod_ns.ipc != NODE:
        out.append({"type": "ipc", "path": f"{proc}/ipc"})
    pid_mode = own_ns.pid
    if pid_mode == POD:
        if pod_ns.pid == NODE:
            raise InvalidArgument(f"{field}.pid: POD, but the sandbox uses the host's pid namespace")
        out.append({"type": "pid", "path": f"{proc}/pid"})
    elif pid_mode == CONTAINER:
        out.append({"type": "pid"})
    elif pid_mode == TARGET:
        if not own_ns.target_id:
            raise InvalidArgument(f"{field}.target_id: TARGET needs the id of a container in the pod")
        if target_pid is None:
            raise InvalidArgument(f"{field}.target_id: no way to find container {own_ns.target_id}")
        out.append({"type": "pid", "path": f"/proc/{target_pid(own_ns.target_id)}/ns/pid"})
    elif pid_mode != NODE:
        raise InvalidArgument(f"{field}.pid: unknown mode {pid_mode}")
    if user_mappings(pod_ns, "sandbox_config.linux.security_context.namespace_options") is not None:
        out.append({"type": "user", "path": f"{proc}/user"})
    if private_cgroupns:
        out.append({"type": "cgroup"})
    return out

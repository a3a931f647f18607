"""CRI PodSandboxConfig + pause image config -> the pause container's config.json.

The pause process (catatonit -P here) only holds the pod's namespaces and
reaps, so its container is locked down further than a workload's: read-only
rootfs, no new privileges, no capabilities at all, deny-all device rules,
and the RuntimeDefault-or-configured seccomp profile.  It creates the pod's
namespaces (see :mod:`dockyard.cri.oci.namespaces`), carries the pod's
hostname and sysctls, its oom_score_adj (-998 from the daemon, clamped by
``restrict_oom_score_adj``), and the pod's /dev/shm.  The pod's hostname,
hosts and resolv.conf files are bound read-only too when given, so what
``crictl inspectp`` shows of the pause container matches the workloads.

Pod resources: ``linux.resources`` of the pause container is the pod's
``resources`` plus its ``overhead`` (memory limits, cpu shares and cpu
quotas add up; a period comes from resources, else overhead), and the same
numbers go into containerd's ``io.kubernetes.cri.sandbox-*`` annotations for
tools that read them.  Limits on the whole pod are kubelet's pod cgroup
(``cgroup_parent``), above the path the caller passes as ``cgroups_path``.
"""

from __future__ import annotations

import platform
from typing import Any

from cri_api.v1 import api_pb2

from ..errors import InvalidArgument
from ..image.store import ImageRecord
from . import annotations as ann
from .container_spec import OCI_VERSION, add_confinement, confine_process, read_host_bytes, user_request
from .defaults import PATH_ENV, default_mounts
from .devices import DENY_ALL
from .mounts import ETC_HOSTNAME, ETC_HOSTS, ETC_RESOLV, file_bind, merge, shm_mount
from .namespaces import NODE, sandbox_namespaces, user_mappings
from .process_args import merge_env, process_args, working_dir
from .resources import NodeResources, clamp_oom_score_adj, linux_resources
from .security import ReadHostFile, masked_and_readonly
from .sysctls import pod_sysctls
from .user import ReadFile, resolve_user, rootfs_reader

SEC = "config.linux.security_context"


def _summed(res: api_pb2.LinuxContainerResources, over: api_pb2.LinuxContainerResources) -> api_pb2.LinuxContainerResources:
    total = api_pb2.LinuxContainerResources()
    total.CopyFrom(res)
    total.memory_limit_in_bytes = res.memory_limit_in_bytes + over.memory_limit_in_bytes if (
        res.memory_limit_in_bytes) else 0
    total.cpu_shares = res.cpu_shares + over.cpu_shares if res.cpu_shares else 0
    total.cpu_quota = res.cpu_quota + over.cpu_quota if res.cpu_quota > 0 else res.cpu_quota
    total.cpu_period = res.cpu_period or over.cpu_period
    return total


def sandbox_spec(
    config: api_pb2.PodSandboxConfig,
    *,
    image: ImageRecord,
    rootfs: str,
    netns_path: str,
    hostname_path: str,
    hosts_path: str,
    resolv_path: str,
    shm_path: str,
    cgroups_path: str,
    oom_score_adj: int,
    sandbox_id: str = "",
    image_name: str = "",
    oom_score_adj_floor: int | None = None,
    node: NodeResources | None = None,
    read_image_file: ReadFile | None = None,
    read_host_file: ReadHostFile = read_host_bytes,
    machine: str = "",
    apparmor_enabled: bool = False,
    apparmor_loaded: frozenset[str] | None = None,
    selinux_enabled: bool = False,
    private_cgroupns: bool = False,
) -> dict[str, Any]:
    """The pause container's config.json (as a dict); errors are
    :class:`~dockyard.cri.errors.InvalidArgument` naming the ``config.`` field.

    A limit with no pod value (no memory limit in ``resources``) stays
    unlimited even if ``overhead`` has one: overhead is added to the pod's
    limits, it is not a limit by itself."""
    if not config.HasField("metadata") or not config.metadata.name:
        raise InvalidArgument("config.metadata.name: a pod sandbox needs a name")
    machine = machine or platform.machine()
    sec = config.linux.security_context
    ns = sec.namespace_options
    host_network = ns.network == NODE
    host_ipc = ns.ipc == NODE
    privileged = sec.privileged

    image_label = image_name or (image.repo_tags[0] if image.repo_tags else image.id)
    argv = process_args([], [], image.entrypoint, image.cmd, field=f"pause image {image_label} Entrypoint/Cmd")
    reader = read_image_file if read_image_file is not None else rootfs_reader(rootfs)
    who = resolve_user(user_request(image.user, f"pause image {image_label} config User", sec, SEC), reader)
    no_caps: dict[str, list[str]] = {"bounding": [], "effective": [], "permitted": []}
    process: dict[str, Any] = {
        "terminal": False,
        "user": {"uid": who.uid, "gid": who.gid, "additionalGids": list(who.additional_gids)},
        "args": argv,
        "env": merge_env([PATH_ENV], image.env),
        "cwd": working_dir("", image.working_dir),
        "capabilities": no_caps,
        "noNewPrivileges": True,
        "oomScoreAdj": clamp_oom_score_adj(oom_score_adj, oom_score_adj_floor, "oom_score_adj"),
    }
    label = confine_process(process, sec, privileged=privileged, apparmor_enabled=apparmor_enabled,
                            apparmor_loaded=apparmor_loaded, selinux_enabled=selinux_enabled)

    extra = [shm_mount(shm_path, host_ipc)]
    for dest, source in ((ETC_HOSTNAME, hostname_path), (ETC_HOSTS, hosts_path), (ETC_RESOLV, resolv_path)):
        if source:
            extra.append(file_bind(dest, source, readonly=True))
    mounts = merge(default_mounts(privileged=False), extra)

    resources = linux_resources(_summed(config.linux.resources, config.linux.overhead), "config.linux.resources", node)
    resources["devices"] = [dict(DENY_ALL)]
    masked, readonly = masked_and_readonly((), (), privileged=privileged, field=SEC)
    linux: dict[str, Any] = {
        "namespaces": sandbox_namespaces(ns, "" if host_network else netns_path, f"{SEC}.namespace_options",
                                         private_cgroupns=private_cgroupns),
        "resources": resources,
        "cgroupsPath": cgroups_path,
        "maskedPaths": masked,
        "readonlyPaths": readonly,
    }
    sysctls = pod_sysctls(config.linux.sysctls, private_net=not host_network, private_ipc=not host_ipc,
                          field="config.linux.sysctls")
    if sysctls:
        linux["sysctl"] = sysctls
    add_confinement(linux, sec, mappings=user_mappings(ns, f"{SEC}.namespace_options"), label=label,
                    privileged=privileged, caps=(), machine=machine, read_host_file=read_host_file)

    meta = config.metadata
    res = config.linux.resources
    annotations = {
        ann.CONTAINER_TYPE: ann.CONTAINER_TYPE_SANDBOX,
        ann.SANDBOX_ID: sandbox_id,
        ann.SANDBOX_NAME: meta.name,
        ann.SANDBOX_NAMESPACE: meta.namespace,
        ann.SANDBOX_UID: meta.uid,
        ann.SANDBOX_LOG_DIR: config.log_directory,
        ann.IMAGE_NAME: image_label,
        ann.SANDBOX_CPU_PERIOD: str(res.cpu_period),
        ann.SANDBOX_CPU_QUOTA: str(res.cpu_quota),
        ann.SANDBOX_CPU_SHARES: str(res.cpu_shares),
        ann.SANDBOX_MEMORY: str(res.memory_limit_in_bytes),
    }
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": True},
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    }
    if not host_network:
        hostname = config.hostname
        if hostname:
            spec["hostname"] = hostname
    return spec

"""CRI ContainerConfig + PodSandboxConfig + image config -> config.json.

One pure function, :func:`container_spec`.  Everything that would need the
filesystem (does a host path exist, what device is that node, what does the
image's /etc/passwd say, what does a seccomp file contain, which pid has the
TARGET container) comes in through an injected callable, so the tests can
drive every branch with plain data.  The rules for each part live in the
module named after it: process_args, user, mounts, namespaces, resources,
devices, security; this module puts them together in containerd's order and
names each CRI field in its errors (``config.mounts[1].host_path``).
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cri_api.v1 import api_pb2

from ..errors import InvalidArgument
from ..image.store import ImageRecord
from . import annotations as ann
from .defaults import ALL_CAPABILITIES, PATH_ENV, default_mounts
from .devices import ALLOW_ALL, DENY_ALL, StatPath, cri_devices, scan_host_devices
from .mounts import (
    DEV_SHM,
    ETC_HOSTNAME,
    ETC_HOSTS,
    ETC_RESOLV,
    ImageVolume,
    PathExists,
    cri_mount,
    file_bind,
    image_volumes,
    merge,
    rootfs_propagation,
    shm_mount,
)
from .namespaces import NODE, TargetPid, container_namespaces, user_mappings
from .process_args import check_exec_strings, merge_env, process_args, working_dir
from .resources import NodeResources, clamp_oom_score_adj, linux_resources
from .security import (
    ReadHostFile,
    apparmor,
    capabilities,
    masked_and_readonly,
    seccomp,
    selinux_label,
)
from .user import ReadFile, UserRequest, resolve_user, rootfs_reader

OCI_VERSION = "1.2.0"

SEC = "config.linux.security_context"
POD_NS = "sandbox_config.linux.security_context.namespace_options"


@dataclass(frozen=True, slots=True)
class PodFiles:
    """The sandbox's files every container of the pod binds."""

    hostname_path: str
    hosts_path: str
    resolv_path: str
    shm_path: str


def read_host_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(16 * 1024 * 1024)


def _sec(config: api_pb2.ContainerConfig) -> api_pb2.LinuxContainerSecurityContext:
    return config.linux.security_context


def _pod_ns(sandbox: api_pb2.PodSandboxConfig) -> api_pb2.NamespaceOption:
    return sandbox.linux.security_context.namespace_options


def container_image_volumes(config: api_pb2.ContainerConfig, image: ImageRecord,
                            volumes_dir: str) -> list[ImageVolume]:
    """The anonymous volumes :func:`container_spec` binds for the image's
    VOLUMEs; the caller creates and seeds each ``host_path`` first."""
    if not volumes_dir:
        return []
    taken = [os.path.normpath(m.container_path) for m in config.mounts if m.container_path]
    return image_volumes(image.volumes, taken, volumes_dir)


def confine_process(process: dict[str, Any],
                    sec: api_pb2.LinuxContainerSecurityContext | api_pb2.LinuxSandboxSecurityContext, *,
                    privileged: bool, apparmor_enabled: bool, apparmor_loaded: frozenset[str] | None,
                    selinux_enabled: bool) -> str:
    """A container's or a pod's AppArmor profile and SELinux label, set on ``process``;
    returns the label (the mount label, add_confinement).  Only a container's
    context has the legacy ``apparmor_profile`` string."""
    legacy, legacy_field = ((sec.apparmor_profile, f"{SEC}.apparmor_profile")
                            if isinstance(sec, api_pb2.LinuxContainerSecurityContext) else ("", ""))
    profile = apparmor(sec.apparmor if sec.HasField("apparmor") else None, legacy, privileged=privileged,
                       enabled=apparmor_enabled, field=f"{SEC}.apparmor", legacy_field=legacy_field,
                       loaded=apparmor_loaded)
    if profile:
        process["apparmorProfile"] = profile
    label = selinux_label(sec.selinux_options if sec.HasField("selinux_options") else None,
                          enabled=selinux_enabled)
    if label:
        process["selinuxLabel"] = label
    return label


def add_confinement(linux: dict[str, Any],
                    sec: api_pb2.LinuxContainerSecurityContext | api_pb2.LinuxSandboxSecurityContext, *,
                    mappings: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None, label: str,
                    privileged: bool, caps: Sequence[str], machine: str, read_host_file: ReadHostFile) -> None:
    """What a container's and a pod's ``linux`` section share: the user namespace's id
    mappings, the seccomp filter of the security context (SEC) and the SELinux mount label."""
    if mappings is not None:
        linux["uidMappings"], linux["gidMappings"] = mappings
    filt = seccomp(sec.seccomp if sec.HasField("seccomp") else None, sec.seccomp_profile_path,
                   privileged=privileged, caps=caps, machine=machine, read_host_file=read_host_file,
                   field=f"{SEC}.seccomp", legacy_field=f"{SEC}.seccomp_profile_path")
    if filt is not None:
        linux["seccomp"] = filt
    if label:
        linux["mountLabel"] = label


def user_request(user: str, user_field: str, sec: api_pb2.LinuxContainerSecurityContext | api_pb2.LinuxSandboxSecurityContext,
                 sec_field: str) -> UserRequest:
    """The effective user string, following containerd: run_as_user, then
    run_as_username, then the image's; run_as_group needs one of the first two."""
    from_context = ""
    if sec.HasField("run_as_user"):
        if not 0 <= sec.run_as_user.value <= 0xFFFFFFFF:
            raise InvalidArgument(f"{sec_field}.run_as_user: {sec.run_as_user.value} is not a uid")
        from_context, user_field = str(sec.run_as_user.value), f"{sec_field}.run_as_user"
    elif getattr(sec, "run_as_username", ""):
        from_context, user_field = sec.run_as_username, f"{sec_field}.run_as_username"
    group = None
    if sec.HasField("run_as_group"):
        if not from_context:
            raise InvalidArgument(f"{sec_field}.run_as_group: a group needs run_as_user or run_as_username")
        if not 0 <= sec.run_as_group.value <= 0xFFFFFFFF:
            raise InvalidArgument(f"{sec_field}.run_as_group: {sec.run_as_group.value} is not a gid")
        group = sec.run_as_group.value
    if from_context:
        # run_as_username is a name only; a group comes from run_as_group
        user = from_context
    return UserRequest(user=user, field=user_field, group=group,
                       supplemental_groups=tuple(sec.supplemental_groups),
                       strict=sec.supplemental_groups_policy == api_pb2.Strict)


def container_spec(
    config: api_pb2.ContainerConfig,
    sandbox: api_pb2.PodSandboxConfig,
    *,
    image: ImageRecord,
    rootfs: str,
    sandbox_pid: int,
    netns_path: str,
    pod_files: PodFiles,
    cgroups_path: str,
    container_id: str,
    oom_score_adj_floor: int | None = None,
    host_path_exists: PathExists = os.path.exists,
    sandbox_id: str = "",
    image_name: str = "",
    read_image_file: ReadFile | None = None,
    read_host_file: ReadHostFile = read_host_bytes,
    stat_path: StatPath = os.stat,
    host_devices: Callable[[], list[dict[str, Any]]] = scan_host_devices,
    target_pid: TargetPid | None = None,
    volumes_dir: str = "",
    node_hostname: str = "",
    machine: str = "",
    held_capabilities: Sequence[str] = ALL_CAPABILITIES,
    node: NodeResources | None = None,
    apparmor_enabled: bool = False,
    apparmor_loaded: frozenset[str] | None = None,
    selinux_enabled: bool = False,
    private_cgroupns: bool = False,
    image_sources: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """The OCI config.json (as a dict) for one CRI container.

    ``read_image_file`` reads a file of the image (/etc/passwd, /etc/group)
    by its path inside the image; by default from ``rootfs``, which must be
    mounted then.  ``volumes_dir`` enables image volumes (see
    :func:`container_image_volumes`).  ``node_hostname`` is the HOSTNAME of
    a host-network pod with no hostname (default: this host's name).
    ``image_sources`` maps the index of each image volume in
    ``config.mounts`` to where its image is mounted (cri/image_mounts.py).
    Raises :class:`~dockyard.cri.errors.InvalidArgument` naming the field.
    """
    image_sources = image_sources or {}
    if not config.HasField("metadata") or not config.metadata.name:
        raise InvalidArgument("config.metadata.name: a container needs a name")
    if not container_id:
        raise InvalidArgument("container_id: must not be empty")
    machine = machine or platform.machine()
    sec = _sec(config)
    pod_sec = sandbox.linux.security_context
    privileged = sec.privileged
    if privileged and not pod_sec.privileged:
        raise InvalidArgument(f"{SEC}.privileged: the pod sandbox is not privileged "
                              "(sandbox_config.linux.security_context.privileged)")
    pod_ns = _pod_ns(sandbox)
    host_network = pod_ns.network == NODE
    host_ipc = pod_ns.ipc == NODE

    # --- process
    check_exec_strings(config.command, "config.command")
    check_exec_strings(config.args, "config.args")
    argv = process_args(config.command, config.args, image.entrypoint, image.cmd)
    hostname = sandbox.hostname or node_hostname or platform.node()
    extra_env = [f"HOSTNAME={hostname}"]
    if config.tty:
        extra_env.append("TERM=xterm")
    cri_env = []
    for i, kv in enumerate(config.envs):
        if not kv.key:
            raise InvalidArgument(f"config.envs[{i}].key: must not be empty")
        check_exec_strings([kv.key], f"config.envs[{i}].key")
        check_exec_strings([f"{kv.key}={kv.value}"], f"config.envs[{i}]")
        cri_env.append(f"{kv.key}={kv.value}")
    env = merge_env([PATH_ENV], image.env, extra_env, cri_env)
    cwd = working_dir(config.working_dir, image.working_dir)
    reader = read_image_file if read_image_file is not None else rootfs_reader(rootfs)
    who = resolve_user(user_request(image.user, f"image {image.id} config User", sec, SEC), reader)
    caps = capabilities(sec.capabilities if sec.HasField("capabilities") else None,
                        privileged=privileged, field=f"{SEC}.capabilities", held=held_capabilities)
    process: dict[str, Any] = {
        "terminal": config.tty,
        "user": {"uid": who.uid, "gid": who.gid, "additionalGids": list(who.additional_gids)},
        "args": argv,
        "env": env,
        "cwd": cwd,
        "capabilities": caps,
        "noNewPrivileges": sec.no_new_privs,
        "oomScoreAdj": clamp_oom_score_adj(config.linux.resources.oom_score_adj, oom_score_adj_floor,
                                           "config.linux.resources.oom_score_adj"),
    }
    label = confine_process(process, sec, privileged=privileged, apparmor_enabled=apparmor_enabled,
                            apparmor_loaded=apparmor_loaded, selinux_enabled=selinux_enabled)

    # --- mounts
    extra: list[dict[str, Any]] = []
    for i, m in enumerate(config.mounts):
        extra.append(cri_mount(m, f"config.mounts[{i}]", host_path_exists, image_sources.get(i)))
    taken = {m["destination"] for m in extra}
    ro = sec.readonly_rootfs
    for dest, source in ((ETC_HOSTNAME, pod_files.hostname_path), (ETC_HOSTS, pod_files.hosts_path),
                         (ETC_RESOLV, pod_files.resolv_path)):
        if source and dest not in taken:
            extra.append(file_bind(dest, source, readonly=ro))
    if DEV_SHM not in taken:
        extra.append(shm_mount(pod_files.shm_path, host_ipc))
    for vol in container_image_volumes(config, image, volumes_dir):
        if vol.container_path not in taken:
            extra.append({"destination": vol.container_path, "type": "bind", "source": vol.host_path,
                          "options": ["rbind", "rprivate", "rw"]})
    mounts = merge(default_mounts(privileged=privileged), extra)

    # --- linux
    namespaces = container_namespaces(pod_ns, sec.namespace_options, sandbox_pid=sandbox_pid,
                                      netns_path=netns_path, target_pid=target_pid,
                                      field=f"{SEC}.namespace_options", private_cgroupns=private_cgroupns)
    resources = linux_resources(config.linux.resources, "config.linux.resources", node)
    if privileged:
        devices = host_devices()
        rules = [dict(ALLOW_ALL)]
    else:
        devices, allowed = cri_devices(config.devices, stat_path)
        rules = [dict(DENY_ALL), *allowed]
    resources["devices"] = rules
    masked, readonly = masked_and_readonly(sec.masked_paths, sec.readonly_paths, privileged=privileged, field=SEC)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": cgroups_path,
        "devices": devices,
        "maskedPaths": masked,
        "readonlyPaths": readonly,
    }
    propagation = rootfs_propagation(config.mounts)
    if propagation:
        linux["rootfsPropagation"] = propagation
    add_confinement(linux, sec, mappings=user_mappings(pod_ns, POD_NS), label=label, privileged=privileged,
                    caps=caps["effective"], machine=machine, read_host_file=read_host_file)

    meta = sandbox.metadata
    annotations = {
        ann.CONTAINER_TYPE: ann.CONTAINER_TYPE_CONTAINER,
        ann.CONTAINER_NAME: config.metadata.name,
        ann.SANDBOX_ID: sandbox_id,
        ann.SANDBOX_NAME: meta.name,
        ann.SANDBOX_NAMESPACE: meta.namespace,
        ann.SANDBOX_UID: meta.uid,
        ann.IMAGE_NAME: image_name or config.image.user_specified_image or config.image.image
        or (image.repo_tags[0] if image.repo_tags else image.id),
    }
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": ro},
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    }

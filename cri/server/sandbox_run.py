"""RunPodSandbox: a pod's netns, files, pause container, shim and network.

Steps, each with its undo pushed on an AsyncExitStack (all undone, newest
first, when a later step fails; ``pop_all`` once everything worked):

  1. resolve the runtime handler (InvalidArgument when unknown)
  2. reserve the unique name: a concurrent retry with the same metadata awaits
     this call's answer; a ready pod of that name made from the same config
     and handler is the answer to a retry whose first answer was lost; any
     other pod of that name is AlreadyExists naming its id
  3. persist the record in state INIT (recovery's map of what to clean up),
     and start the shim, concurrently with steps 4 to 7
  4. the pause image (pulled when missing)
  5. state dir: hostname, hosts, resolv.conf; a 64 MiB tmpfs for /dev/shm
  6. the netns, pinned under <state_dir>/netns/<id> (not for host network),
     and CNI ADD (K8S_* args, port mappings) started on it, concurrently
     with steps 7 and 8; its undo waits for it to end, then DELs
  7. the pause rootfs: snapshot prepare + mount; the bundle's config.json
  8. the shim awaited; the pause container created and started through it, in one
     runtime call (``run --detach``)
  9. the ADD's result awaited; /etc/hosts gets the pod IP
 10. state READY

The pause container runs at oom_score_adj -998.  Writing a value below the
daemon's own needs CAP_SYS_RESOURCE; with ``restrict_oom_score_adj`` the
value is clamped to the daemon's own (containerd's rule), without it a
daemon lacking the capability refuses the pod up front with a clear error
instead of letting the runtime fail half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
import shutil
import socket
import time
from typing import Any

from cri_api.v1 import api_pb2

from .. import errors, faults
from ..network import netns as netns_mod
from ..network import pod_capabilities, pod_files
from ..network.cni import CNIResult
from ..own_privileges import has_cap_sys_resource, own_oom_score_adj
from ..pod_cgroup import cgroups_path, pod_cgroup_parent, remove_pod_cgroup
from ..store.sandbox import Sandbox, SandboxState, unique_name
from ..bundle import release_rootfs, unmount_all, write_config
from .cri_service import CriService, now_ns

log = logging.getLogger("dockyard.cri.sandbox_run")

PAUSE_OOM_SCORE_ADJ = -998
SHM_SIZE = 64 * 1024 * 1024
_PROTOCOLS = {api_pb2.TCP: "tcp", api_pb2.UDP: "udp", api_pb2.SCTP: "sctp"}


def pause_oom_score_adj(restrict: bool, own: int, may_lower: bool) -> int:
    """-998, clamped to ``own`` under restrict_oom_score_adj; FailedPrecondition when impossible (pure)."""
    wanted = PAUSE_OOM_SCORE_ADJ
    if wanted >= own or may_lower:
        return wanted
    if restrict:
        return own
    raise errors.FailedPrecondition(
        f"the pause container needs oom_score_adj {wanted}, below dockyardd's own {own}, which takes "
        "CAP_SYS_RESOURCE; dockyardd lacks it (set restrict_oom_score_adj: true to clamp to {own})".replace("{own}", str(own))
    )


def port_mappings(config: api_pb2.PodSandboxConfig) -> list[dict[str, Any]]:
    """CRI PortMappings -> the CNI portMappings capability (only those with a host port)."""
    out = []
    for pm in config.port_mappings:
        if pm.host_port <= 0:
            continue
        entry: dict[str, Any] = {
            "hostPort": pm.host_port, "containerPort": pm.container_port,
            "protocol": _PROTOCOLS.get(pm.protocol, "tcp"),
        }
        if pm.host_ip:
            entry["hostIP"] = pm.host_ip
        out.append(entry)
    return out


def pod_dns(config: api_pb2.PodSandboxConfig) -> dict[str, Any] | None:
    """The CNI dns capability from the pod's DNS config (containerd's mapping)."""
    d = config.dns_config
    return pod_capabilities.dns(d.servers, d.searches, d.options)


def host_network(config: api_pb2.PodSandboxConfig) -> bool:
    return bool(config.linux.security_context.namespace_options.network == api_pb2.NODE)


def is_retry_of(held: Sandbox, config: api_pb2.PodSandboxConfig, handler_name: str) -> bool:
    """A request for the very pod ``held`` is, which is ready: its retry."""
    return held.state is SandboxState.READY and held.handler == handler_name and held.config == config


# The pod's name, namespace and uid go to the CNI plugins in CNI_ARGS
# ("K8S_POD_NAME=...;K8S_POD_NAMESPACE=...") and into the environment: a ';'
# or '=' would forge another argument, a control character cannot be passed.
# Kubernetes' names are DNS subdomains (at most 253 characters).
MAX_NAME = 253
HOST_NAME_MAX = 64  # sethostname(2)
PATH_MAX = 4096


def _check_identity(value: str, field: str) -> None:
    if not value:
        raise errors.InvalidArgument(f"{field} is required")
    if len(value) > MAX_NAME:
        raise errors.InvalidArgument(f"{field}: {len(value)} characters, more than {MAX_NAME}")
    if any(c in ";=" or ord(c) < 32 or ord(c) == 127 for c in value):
        raise errors.InvalidArgument(f"{field}: {errors.shorten(value)!r} contains a control character, ';' or '=' "
                                     "(it is passed to CNI plugins in CNI_ARGS)")


def validate(config: api_pb2.PodSandboxConfig) -> None:
    """What the pod config must be before anything is made for it (pure)."""
    meta = config.metadata
    if not config.HasField("metadata"):
        raise errors.InvalidArgument("config.metadata is required")
    _check_identity(meta.name, "config.metadata.name")
    _check_identity(meta.namespace, "config.metadata.namespace")
    _check_identity(meta.uid, "config.metadata.uid")
    if meta.attempt < 0:
        raise errors.InvalidArgument(f"config.metadata.attempt: {meta.attempt} is negative")
    hostname = config.hostname
    if len(hostname.encode()) > HOST_NAME_MAX or any(c.isspace() or ord(c) < 32 or c == "/" for c in hostname):
        raise errors.InvalidArgument(f"config.hostname: {errors.shorten(hostname)!r} is not a host name "
                                     f"(at most {HOST_NAME_MAX} bytes, no whitespace, control character or '/')")
    log_dir = config.log_directory
    if log_dir and (not os.path.isabs(log_dir) or "\0" in log_dir or len(log_dir) >= PATH_MAX):
        raise errors.InvalidArgument(f"config.log_directory {errors.shorten(log_dir)!r} is not an absolute path")
    pod_capabilities.bandwidth(config.annotations)  # InvalidArgument naming a bad bandwidth annotation
    for i, pm in enumerate(config.port_mappings):
        where = f"config.port_mappings[{i}]"
        for name, port in (("container_port", pm.container_port), ("host_port", pm.host_port)):
            if not 0 <= port <= 65535:
                raise errors.InvalidArgument(f"{where}.{name}: {port} is not a port (0..65535)")
        if pm.protocol not in _PROTOCOLS:
            raise errors.InvalidArgument(f"{where}.protocol: {pm.protocol} is not TCP, UDP or SCTP")
        if pm.host_ip:
            try:
                ipaddress.ip_address(pm.host_ip)
            except ValueError as err:
                raise errors.InvalidArgument(f"{where}.host_ip: {errors.shorten(pm.host_ip)!r} is not an IP address") from err


async def run_pod_sandbox(cri: CriService, request: api_pb2.RunPodSandboxRequest) -> api_pb2.RunPodSandboxResponse:
    began = time.monotonic()
    config = request.config
    validate(config)
    handler_name, _ = cri.config.runtimes.resolve(request.runtime_handler)
    name = unique_name(config.metadata)
    inflight = cri.sandbox_runs.get(name)
    if inflight is not None:
        # kubelet retried while the first call still runs: share its answer.
        sandbox_id = await asyncio.shield(inflight)
        return api_pb2.RunPodSandboxResponse(pod_sandbox_id=sandbox_id)
    existing = cri.sandboxes.index.id_by_name(name)
    if existing is not None:
        held = cri.sandboxes.find(existing)
        if held is not None and is_retry_of(held, config, handler_name):
            # The first call finished but its answer was lost (the daemon died
            # between saving READY and answering): the retry gets the same pod.
            return api_pb2.RunPodSandboxResponse(pod_sandbox_id=held.id)
        raise errors.AlreadyExists(f"pod sandbox name {name!r} is already in use by pod sandbox {existing}")
    # The work runs in its own task: a caller that goes away (kubelet's
    # deadline) does not abort it half-way, and its retry gets the answer.
    task = asyncio.create_task(_run(cri, request, handler_name, name, began), name=f"RunPodSandbox {name}")
    cri.sandbox_runs[name] = task
    task.add_done_callback(lambda t: _forget(cri, name, t))
    sandbox_id = await asyncio.shield(task)
    return api_pb2.RunPodSandboxResponse(pod_sandbox_id=sandbox_id)


def _forget(cri: CriService, name: str, task: asyncio.Future[str]) -> None:
    if cri.sandbox_runs.get(name) is task:
        del cri.sandbox_runs[name]
    if not task.cancelled():
        task.exception()  # retrieved: every waiter got it already


async def _run(cri: CriService, request: api_pb2.RunPodSandboxRequest, handler_name: str, name: str,
               began: float) -> str:
    config = request.config
    _, handler = cri.config.runtimes.resolve(request.runtime_handler)
    sandbox_id = secrets.token_hex(32)
    hostnet = host_network(config)
    oom = pause_oom_score_adj(cri.config.restrict_oom_score_adj, own_oom_score_adj(), has_cap_sys_resource())
    sandbox = Sandbox(
        id=sandbox_id, name=name, config_b64=Sandbox.encode_config(config),
        runtime_handler=request.runtime_handler, handler=handler_name, created_at=now_ns(),
        host_network=hostnet,
    )
    async with contextlib.AsyncExitStack() as undo:
        await cri.sandboxes.add(sandbox)
        undo.push_async_callback(cri.sandboxes.delete, sandbox_id)
        undo.callback(cri.forget_caches, sandbox_id)
        faults.point("RunPodSandbox/recorded")
        # The shim comes up (two interpreters, ~30 ms) while the pod's files,
        # netns and rootfs are made; it is awaited when the pause container needs it.
        shim_task = asyncio.create_task(cri.shims.start(sandbox_id, handler_name, handler),
                                        name=f"shim start {sandbox_id}")
        undo.push_async_callback(_shutdown_shim, cri, sandbox_id, shim_task)

        image = await _pause_image(cri)
        sandbox.pause_image_id = image.id

        sdir = cri.sandbox_dir(sandbox_id)
        os.makedirs(sdir, mode=0o711)
        undo.callback(shutil.rmtree, sdir, True)
        files = await asyncio.to_thread(_write_pod_files, cri, sandbox, config, sdir)
        if config.log_directory:
            os.makedirs(config.log_directory, mode=0o755, exist_ok=True)
        shm = os.path.join(sdir, "shm")
        ipc_host = config.linux.security_context.namespace_options.ipc == api_pb2.NODE
        if not ipc_host:
            os.mkdir(shm, 0o1777)
            await asyncio.to_thread(_mount_shm, shm)
            undo.push_async_callback(asyncio.to_thread, unmount_all, shm)

        netns_path = ""
        cni_task: asyncio.Task[CNIResult] | None = None
        if not hostnet:
            netns_path = cri.netns_path(sandbox_id)
            os.makedirs(os.path.dirname(netns_path), mode=0o711, exist_ok=True)
            await asyncio.to_thread(netns_mod.create, netns_path)
            undo.push_async_callback(asyncio.to_thread, netns_mod.remove, netns_path)
            sandbox.netns_path = netns_path
            faults.point("RunPodSandbox/netns")
            # CNI's ADD needs nothing but the pinned netns, so it runs while
            # the shim starts and the pause container is made (~90 ms that
            # hide its ~20 ms), and is awaited before the pod is ready.
            cni_task = asyncio.create_task(cri.cni.setup(
                sandbox_id, netns_path, k8s_namespace=config.metadata.namespace, k8s_name=config.metadata.name,
                k8s_uid=config.metadata.uid, port_mappings=port_mappings(config),
                bandwidth=pod_capabilities.bandwidth(config.annotations), dns=pod_dns(config),
            ), name=f"CNI ADD {sandbox_id}")
            undo.push_async_callback(_teardown_when_added, cri, sandbox, config, cni_task)

        sandbox.cgroup_parent = config.linux.cgroup_parent or pod_cgroup_parent(
            cri.config.cgroup_driver, cri.config.cgroup_parent, sandbox_id)
        bundle = cri.pause_bundle(sandbox_id)
        rootfs = os.path.join(bundle, "rootfs")
        os.makedirs(rootfs, mode=0o755)
        mounts = await asyncio.to_thread(cri.snapshotter.prepare, sandbox_id,
                                         image.chain_ids[-1] if image.chain_ids else None, durable=False)
        undo.push_async_callback(asyncio.to_thread, release_rootfs, cri.snapshotter, "", sandbox_id, "")
        # The snapshot's metadata (two fsyncs, 18 ms at the ramp's p50) is
        # written while the rest of the pod is made; the READY record waits for
        # it.  A pod found INIT at restart is rolled back whether or not it
        # landed (cri/restart.py, assumption 6), so nothing else depends on it.
        durable = asyncio.ensure_future(asyncio.to_thread(cri.snapshotter.make_durable))
        undo.push_async_callback(_settled, durable)  # undone before the snapshot is released
        await asyncio.to_thread(cri.snapshotter.mount, mounts, rootfs)
        undo.push_async_callback(asyncio.to_thread, unmount_all, rootfs)
        await cri.sandboxes.save(sandbox)
        faults.point("RunPodSandbox/rootfs")

        from ..oci.sandbox_spec import sandbox_spec

        spec = sandbox_spec(
            config, image=image, rootfs=rootfs, netns_path=netns_path,
            hostname_path=files["hostname"], hosts_path=files["hosts"], resolv_path=files["resolv"],
            shm_path="" if ipc_host else shm, cgroups_path=cgroups_path(sandbox.cgroup_parent, sandbox_id),
            oom_score_adj=oom, node=cri.node, apparmor_enabled=cri.apparmor.enabled,
            apparmor_loaded=await asyncio.to_thread(cri.apparmor.loaded) if cri.apparmor.enabled else None,
        )
        if handler.oci_version:
            spec["ociVersion"] = handler.oci_version
        write_config(os.path.join(bundle, "config.json"), spec)

        if not config.linux.cgroup_parent:  # ours to remove (a kubelet-given one is kubelet's)
            undo.push_async_callback(asyncio.to_thread, remove_pod_cgroup, sandbox.cgroup_parent)
        client = await shim_task
        # create + start in one runtime call: nothing happens in between for a pause container
        created = await client.call("create", {"container_id": sandbox_id, "bundle": bundle, "log_path": "", "start": True})
        undo.push_async_callback(_remove_pause, cri, sandbox_id)
        sandbox.pid = int(created.get("pid", 0))
        faults.point("RunPodSandbox/pause-started")

        if cni_task is not None:
            result = await cni_task
            sandbox.ips = list(result.ips)
            sandbox.cni_result = dict(result.raw)
            if sandbox.ips:
                await asyncio.to_thread(_rewrite, files["hosts"], pod_files.hosts_file(files["hostname_value"], sandbox.ips[:1]))
            faults.point("RunPodSandbox/network")

        await durable
        sandbox.state = SandboxState.READY
        await cri.sandboxes.save(sandbox)
        undo.pop_all()
        faults.point("RunPodSandbox/ready")
    cri.metrics.pod_started(handler_name, time.monotonic() - began)
    cri.publish_sandbox(sandbox, api_pb2.CONTAINER_STARTED_EVENT)
    log.info("pod sandbox %s (%s) ready, pause pid %d, ips %s", sandbox_id, name, sandbox.pid, sandbox.ips)
    return sandbox_id


async def _pause_image(cri: CriService) -> Any:
    try:
        return cri.images.get(cri.config.pause_image)
    except errors.NotFound:
        log.info("pause image %s missing; pulling it", cri.config.pause_image)
        return await cri.images.pull(cri.config.pause_image, None)


async def _settled(task: asyncio.Future[None]) -> None:
    """Wait for ``task``, whose failure, if any, is not the call's (the call already failed)."""
    with contextlib.suppress(Exception):
        await task


async def _remove_pause(cri: CriService, sandbox_id: str) -> None:
    client = cri.shims.client(sandbox_id)
    with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
        await client.call("kill", {"container_id": sandbox_id, "signal": 9, "all": True})
    with contextlib.suppress(errors.NotFound):
        await client.call("wait", {"container_id": sandbox_id}, timeout=10)
    with contextlib.suppress(errors.NotFound):
        await client.call("delete", {"container_id": sandbox_id})


async def _shutdown_shim(cri: CriService, sandbox_id: str, shim_task: asyncio.Task[Any]) -> None:
    """Undo of the concurrent shim start: let it finish, then shut the shim
    down (Shims.shutdown also kills and removes a shim that came up half-way)."""
    try:
        await asyncio.shield(shim_task)
    except Exception:  # noqa: BLE001, S110  # the start's own error is the call's error, if it is the first
        pass
    await cri.shims.shutdown(sandbox_id)


async def _teardown_when_added(cri: CriService, sandbox: Sandbox, config: api_pb2.PodSandboxConfig,
                               cni_task: asyncio.Task[CNIResult]) -> None:
    """Undo of the concurrent CNI ADD: let it finish (a plugin is never cut
    off half-way), then DEL what it attached.  A failed ADD has DELeted its
    own plugins already (CNI.setup)."""
    try:
        await asyncio.shield(cni_task)
    except Exception:  # noqa: BLE001  # the ADD's own error is the call's error; nothing is attached
        return
    await _teardown(cri, sandbox, config)


async def _teardown(cri: CriService, sandbox: Sandbox, config: api_pb2.PodSandboxConfig) -> None:
    await cri.cni.teardown(
        sandbox.id, sandbox.netns_path, k8s_namespace=config.metadata.namespace,
        k8s_name=config.metadata.name, k8s_uid=config.metadata.uid, port_mappings=port_mappings(config),
    )


def _mount_shm(path: str) -> None:
    from dockyard.runtime.kernel import syscalls

    flags = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
    syscalls.mount("shm", path, "tmpfs", flags, f"mode=1777,size={SHM_SIZE}")


def _rewrite(path: str, text: str) -> None:
    # In place (not rename): the file may already be bind-mounted into the pause container.
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _write_pod_files(cri: CriService, sandbox: Sandbox, config: api_pb2.PodSandboxConfig, sdir: str) -> dict[str, str]:
    hostname = pod_files.pod_hostname(config.hostname, socket.gethostname())
    try:
        with open("/etc/resolv.conf", encoding="utf-8") as f:
            host_resolv = f.read()
    except FileNotFoundError:
        host_resolv = ""
    dns = config.dns_config if config.HasField("dns_config") else None
    paths = {
        "hostname": os.path.join(sdir, "hostname"),
        "hosts": os.path.join(sdir, "hosts"),
        "resolv": os.path.join(sdir, "resolv.conf"),
    }
    texts = {
        "hostname": pod_files.hostname_file(hostname),
        "hosts": pod_files.hosts_file(hostname),
        "resolv": pod_files.resolv_conf(dns, host_resolv),
    }
    for key, path in paths.items():
        with open(path, "w", encoding="utf-8") as f:
            f.write(texts[key])
        os.chmod(path, 0o644)
    return {**paths, "hostname_value": hostname}

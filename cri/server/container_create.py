"""CreateContainer: image -> writable snapshot -> mounted rootfs -> bundle -> shim create.

Order and undo (AsyncExitStack, newest first on failure):
  checks first, nothing taken: the pod exists and is ready (NotFound /
  FailedPrecondition), the image exists (NotFound naming it; an image that
  is an absolute path makes this a restore from the checkpoint archive
  there, which must exist (NotFound), be one (InvalidArgument), name an
  image that is here (NotFound) and ask for no terminal: cri/
  checkpoint_archive.py), the log path
  stays inside the pod's log_directory (InvalidArgument), each image
  volume's image is here (NotFound naming config.mounts[i].image.image),
  the CDI devices it asks for are defined (InvalidArgument naming
  config.CDI_devices[i] or the annotation; the spec files are read at each
  create that asks for one), the name is free (AlreadyExists naming the
  holder; but a CREATED container of that name in that pod made from the
  same config is the answer to a retry whose first answer was lost), the
  OCI spec builds (InvalidArgument naming the CRI field: a missing command,
  a volume host path inside the daemon's own directories, ...; for a
  restore, every bind mount of the checkpointed container must be there,
  FailedPrecondition naming config.mounts); a missing
  host path is created as a directory right before the spec is built
  (containerd's behaviour, cri/oci/host_paths.py);
  then: record (CREATING, written while the next steps run) -> snapshot (a
  restore applies the archive's file changes to it) -> rootfs mount (through
  the pod's id map when it has a user namespace: cri/snapshot/idmapped.py) ->
  image volumes (cri/image_mounts.py, idmapped alike) -> config.json (these
  in one worker thread: _build_bundle) -> record CREATED, with no task yet,
  and the snapshot's metadata, written side by side: the runtime's create
  runs at StartContainer (containerd's order; cri/store/container.py has why).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import Awaitable, Callable
from typing import Any

from cri_api.v1 import api_pb2

from .. import checkpoint_archive, errors, faults, image_mounts
from ..oci import cdi
from ..own_privileges import has_cap_sys_resource, held_capabilities, own_oom_score_adj
from ..pod_cgroup import cgroups_path
from ..store.container import Container, ContainerState, unique_name
from ..store.sandbox import Sandbox, SandboxState
from ..bundle import release_rootfs, unmount_all, write_config
from ..oci import host_paths
from .cri_service import CriService, now_ns


def resolve_log_path(log_directory: str, log_path: str) -> str:
    """The absolute log file of a container; InvalidArgument if it escapes log_directory (pure)."""
    if not log_path:
        return ""
    if not log_directory:
        raise errors.InvalidArgument(
            f"config.log_path {log_path!r} is set but the pod sandbox has no log_directory"
        )
    base = os.path.normpath(log_directory)
    full = os.path.normpath(os.path.join(base, log_path))
    if os.path.isabs(log_path) and not full.startswith(base + "/"):
        raise errors.InvalidArgument(f"config.log_path {log_path!r} is outside the pod's log_directory {base}")
    if not full.startswith(base + "/"):
        raise errors.InvalidArgument(f"config.log_path {log_path!r} is outside the pod's log_directory {base}")
    return full


async def create_container(cri: CriService, request: api_pb2.CreateContainerRequest) -> api_pb2.CreateContainerResponse:
    config = request.config
    if not config.HasField("metadata") or not config.metadata.name:
        raise errors.InvalidArgument("config.metadata.name is required")
    if not config.image.image:
        raise errors.InvalidArgument("config.image.image is required")
    sandbox = cri.sandbox(request.pod_sandbox_id)
    if sandbox.state is not SandboxState.READY:
        raise errors.FailedPrecondition(f"pod sandbox {sandbox.id} is not ready ({sandbox.state.value})")
    sandbox_config = sandbox.config
    restore = None
    if checkpoint_archive.names_archive(config.image.image):
        # A restore (CRI-O's convention): the image is a checkpoint archive naming the real one.
        if config.tty:
            raise errors.InvalidArgument("config.tty: a container restored from a checkpoint has no terminal")
        restore = await asyncio.to_thread(checkpoint_archive.read_head, config.image.image, "config.image.image")
        try:
            image = cri.images.get(restore.meta.image_ref or restore.meta.image_name)
        except errors.NotFound as err:
            raise errors.NotFound(f"config.image.image: the checkpoint's image {restore.meta.image_name!r} "
                                  f"({restore.meta.image_ref}) is not here: pull it first") from err
    else:
        try:
            image = cri.images.get(config.image.image)
        except errors.NotFound as err:
            raise errors.NotFound(f"image {config.image.image!r} not found (pull it first)") from err
    # What the status and the spec's annotations name: for a restore, the checkpoint's image.
    image_name = (restore.meta.image_name or image.id) if restore is not None else config.image.image
    log_path = resolve_log_path(sandbox_config.log_directory, config.log_path)
    volume_images = _image_volumes(cri, config)
    cdi_wanted = cdi.requested_devices([d.name for d in config.CDI_devices], config.annotations)
    cdi_found = cdi.resolve(await asyncio.to_thread(cdi.load_spec_dirs, cri.config.cdi_spec_dirs), cdi_wanted) \
        if cdi_wanted else []
    guarded = host_paths.Guarded.of_daemon(cri.config.root_dir, cri.config.state_dir, cri.config.socket_path)
    # An image volume has no host path to create (cri_mount refuses one).
    host_sources = host_paths.check([
        "" if m.HasField("image") and m.image.image else m.host_path for m in config.mounts], guarded)
    name = unique_name(sandbox_config.metadata, config.metadata)
    holder = cri.containers.index.id_by_name(name)
    if holder is not None:
        held = cri.containers.find(holder)
        if held is not None and held.sandbox_id == sandbox.id and held.state is ContainerState.CREATED \
                and held.config == config:
            # A retry whose first answer was lost (the daemon died after saving CREATED).
            return api_pb2.CreateContainerResponse(container_id=held.id)
        raise errors.AlreadyExists(f"container name {name!r} is already in use by container {holder}")

    cid = secrets.token_hex(32)
    bundle = cri.container_dir(cid)
    from ..oci.container_spec import PodFiles

    sdir = cri.sandbox_dir(sandbox.id)
    ipc_host = sandbox_config.linux.security_context.namespace_options.ipc == api_pb2.NODE
    pod_files = PodFiles(
        hostname_path=os.path.join(sdir, "hostname"), hosts_path=os.path.join(sdir, "hosts"),
        resolv_path=os.path.join(sdir, "resolv.conf"), shm_path="" if ipc_host else os.path.join(sdir, "shm"),
    )
    container = Container(
        id=cid, name=name, sandbox_id=sandbox.id, config_b64=Container.encode_config(config),
        image_id=image.id, image_ref=image_name,
        image_repo_digest=image.repo_digests[0] if image.repo_digests else image.id,
        log_path=log_path, created_at=now_ns(), snapshot_key=cid, bundle=bundle,
        stop_signal=image.stop_signal, mounts=[_mount_json(m) for m in config.mounts],
    )
    async with contextlib.AsyncExitStack() as undo:
        # The CREATING record is written while the bundle is built, not
        # before: a daemon killed with the record not yet on disk leaves a
        # bundle dir and a snapshot that no record names, and the restart
        # removes those as orphans (cri/restart.py, assumption 7), as it rolls
        # back a CREATING record.  The CREATED save below waits for it (one
        # record's writes keep their order: cri/store/record_dir.py).
        recorded = asyncio.ensure_future(cri.containers.add(container))
        recorded.add_done_callback(lambda _: faults.point("CreateContainer/recorded"))
        undo.push_async_callback(cri.containers.delete, cid)
        undo.callback(cri.forget_caches, cid)
        steps = contextlib.ExitStack()
        undo.push_async_callback(asyncio.to_thread, steps.close)
        await _to_the_end(asyncio.to_thread(
            _build_bundle, steps, cri, container, config, sandbox, image, image_name, restore, volume_images,
            host_sources, cdi_found, cdi_wanted, pod_files))
        container.state = ContainerState.CREATED  # with no pid: no task yet
        # The snapshot's metadata and the CREATED record are written side by
        # side (each is one fsync'd write; the snapshot's was 18 ms p50 of a
        # 65 ms create in the density ramp, and the rest of the bundle 3 ms).
        # The answer waits for both, so a daemon killed between them leaves a
        # CREATED record whose snapshot the metadata lacks, of a create nobody
        # heard back from: the restart rolls it back (cri/restart.py,
        # assumption 6).
        await asyncio.gather(cri.containers.save(container), asyncio.to_thread(cri.snapshotter.make_durable))
        undo.pop_all()
        faults.point("CreateContainer/created")
    cri.events.publish(cri, container, api_pb2.CONTAINER_CREATED_EVENT)
    return api_pb2.CreateContainerResponse(container_id=cid)


def _build_bundle(steps: contextlib.ExitStack, cri: CriService, container: Container,
                  config: api_pb2.ContainerConfig, sandbox: Sandbox, image: Any, image_name: str, restore: Any,
                  volume_images: list[image_mounts.ImageMount], host_sources: Any, cdi_found: list[Any],
                  cdi_wanted: list[tuple[str, str]], pod_files: Any) -> None:
    """The blocking part of a create, in one worker thread (one hand-off
    instead of seven: each cost up to 10 ms of queueing with ten pods
    starting, bench/density.py): rootfs dir -> snapshot (a restore applies
    the archive's file changes to it) -> rootfs mount (through the pod's id
    map when it has a user namespace: cri/snapshot/idmapped.py) -> image
    volumes (cri/image_mounts.py, idmapped alike) -> missing host paths ->
    OCI spec -> seeded anonymous volumes -> config.json.  Each step pushes
    its undo on ``steps`` as soon as it is taken; the caller closes it if the
    create fails, and drops it if the create succeeds."""
    from ..oci.container_spec import container_image_volumes, container_spec

    cid, bundle = container.id, container.bundle
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs, mode=0o755)
    steps.callback(release_rootfs, cri.snapshotter, "", "", bundle)
    parent = image.chain_ids[-1] if image.chain_ids else None
    mounts = cri.snapshotter.prepare(cid, parent, durable=False)  # made durable beside the CREATED record
    steps.callback(release_rootfs, cri.snapshotter, "", cid, "")
    if restore is not None:
        # The checkpointed container's file changes go into the new writable layer before it is mounted.
        container.restore_from = checkpoint_archive.unpack(
            config.image.image, os.path.join(bundle, "checkpoint"),
            checkpoint_archive.writable_layer(mounts), "config.image.image")
    idmap_mount = _pod_idmap_mount(cri, sandbox, cid)
    (idmap_mount or cri.snapshotter.mount)(mounts, rootfs)
    steps.callback(unmount_all, rootfs)
    steps.callback(image_mounts.release, cri.snapshotter, bundle, cid)
    image_sources = image_mounts.mount_all(cri.snapshotter, volume_images, bundle, cid, None, idmap_mount)
    faults.point("CreateContainer/mounted")
    host_paths.create_missing(host_sources)
    floor = own_oom_score_adj() if cri.config.restrict_oom_score_adj and not has_cap_sys_resource() else None
    # After the mount: the user name is resolved from the image's /etc/passwd.
    spec = container_spec(
        config, sandbox.config, image=image, rootfs=rootfs, sandbox_pid=sandbox.pid,
        netns_path=sandbox.netns_path, pod_files=pod_files,
        cgroups_path=cgroups_path(sandbox.cgroup_parent, cid),
        container_id=cid, oom_score_adj_floor=floor, sandbox_id=sandbox.id, image_name=image_name,
        target_pid=lambda target: _target_pid(cri, sandbox.id, target),
        volumes_dir=os.path.join(bundle, "volumes"), held_capabilities=held_capabilities(), node=cri.node,
        image_sources=image_sources,
        apparmor_enabled=cri.apparmor.enabled,
        apparmor_loaded=cri.apparmor.loaded() if cri.apparmor.enabled else None,
        # containerd's rule (and the cgroup v2 KEP's): on a v2 node an
        # unprivileged container gets a cgroup namespace of its own, so it
        # sees its own cgroup as /sys/fs/cgroup's root.
        private_cgroupns=cri.node is not None and cri.node.cgroup_v2
        and not config.linux.security_context.privileged,
    )
    if cdi_found:
        spec = cdi.apply_devices(spec, cdi_found, cdi_wanted)
    if restore is not None:
        spec = checkpoint_archive.restored_spec(spec, restore.spec, "config.image.image")
    _seed_image_volumes(container_image_volumes(config, image, os.path.join(bundle, "volumes")), rootfs)
    _, handler = cri.config.runtimes.resolve(sandbox.handler)
    if handler.oci_version:
        spec["ociVersion"] = handler.oci_version
    write_config(os.path.join(bundle, "config.json"), spec)
    if container.log_path:
        os.makedirs(os.path.dirname(container.log_path), mode=0o755, exist_ok=True)


async def _to_the_end(work: Awaitable[None]) -> None:
    """Await work that runs in a thread; a caller cancelled meanwhile (a client
    that went away) still waits for the thread to end, so that the undo that
    runs next sees every step it took, not half of them."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


def _pod_idmap_mount(cri: CriService, sandbox: Sandbox, cid: str) -> Callable[[list[Any], str], None] | None:
    """For a pod with its own user namespace, a mount function that shows the image's files
    through the pod's id map (cri/snapshot/idmapped.py has why and how); None otherwise."""
    from ..oci.namespaces import user_mappings
    from ..snapshot import idmapped

    maps = user_mappings(sandbox.config.linux.security_context.namespace_options,
                         "sandbox_config.linux.security_context.namespace_options")
    if maps is None:
        return None
    root_ids = idmapped.root_host_ids(*maps)
    # Short: the idmapped layers' paths go into one overlay option string (a page at most).
    scratch = os.path.join(cri.config.state_dir, "idm", cid[:16])

    def mount(mounts: list[Any], target: str) -> None:
        fd = idmapped.open_pod_userns(sandbox.pid)
        try:
            idmapped.mount(mounts, target, fd, scratch, root_ids)
        finally:
            os.close(fd)

    return mount


def _image_volumes(cri: CriService, config: api_pb2.ContainerConfig) -> list[image_mounts.ImageMount]:
    """The config's image volumes, each image present (kubelet pulls them first, by the volume's
    pull policy: NotFound otherwise) and its sub path sound; nothing is taken yet."""
    wanted = []
    for i, m in enumerate(config.mounts):
        if not (m.HasField("image") and m.image.image):
            continue
        where = f"config.mounts[{i}]"
        try:
            image = cri.images.get(m.image.image)
        except errors.NotFound as err:
            raise errors.NotFound(f"{where}.image.image: image {m.image.image!r} not found "
                                  "(an image volume's image is pulled before the container is created)") from err
        wanted.append(image_mounts.ImageMount(i, image.chain_ids[-1] if image.chain_ids else None,
                                              image_mounts.check_sub_path(m.image_sub_path, where), where))
    return wanted


def _seed_image_volumes(volumes: list[Any], rootfs: str) -> None:
    """Create each anonymous image volume, seeded with the image's content at its path (docker's rule)."""
    for vol in volumes:
        source = os.path.join(rootfs, vol.container_path.lstrip("/"))
        if os.path.isdir(source) and not os.path.islink(source):
            shutil.copytree(source, vol.host_path, symlinks=True, dirs_exist_ok=True)
        else:
            os.makedirs(vol.host_path, mode=0o755, exist_ok=True)


def _target_pid(cri: CriService, sandbox_id: str, target: str) -> int:
    """The pid of the TARGET container of a pid namespace option (must be in the same pod and running)."""
    c = cri.container(target)
    if c.sandbox_id != sandbox_id:
        raise errors.InvalidArgument(f"config.linux.security_context.namespace_options.target_id {target}: in another pod")
    if c.state is not ContainerState.RUNNING or not c.pid:
        raise errors.FailedPrecondition(f"config.linux.security_context.namespace_options.target_id {target}: not running")
    return c.pid


def _mount_json(m: api_pb2.Mount) -> dict[str, object]:
    return {
        "container_path": m.container_path, "host_path": m.host_path, "readonly": m.readonly,
        "selinux_relabel": m.selinux_relabel, "propagation": int(m.propagation),
    }

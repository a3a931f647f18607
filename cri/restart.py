"""Startup recovery: bring the on-disk stores to a consistent state before serving.

Assumptions this relies on (if one stops holding, this module must change):

1. No other process writes under ``root_dir`` while dockyardd starts: a second
   daemon on the same root is refused earlier (the socket is in use).
2. Every ingest file (content store) and every snapshot temp directory belongs
   to a write that died with the previous daemon; none is resumable, so all
   are deleted.  Committed blobs and snapshots were renamed into place only
   after verification and fsync, so any that exists is complete.
3. The image store's records were written atomically (temp + fsync + rename);
   loading them needs no repair, and a record naming a blob or snapshot that
   is missing is reported, not silently dropped (the store raises on load).
4. A blob or committed snapshot that no image record references is the
   leftover of a pull that was interrupted between download and record (or of
   a GC that was interrupted); deleting it loses nothing an image needs.
   Pods and containers do reference snapshots: each has an active snapshot
   (keyed by its id) built on its image's committed chain, and the
   snapshotter refuses to delete a committed snapshot an active one is built
   on (FailedPrecondition), so GC never takes a layer from under one.  Active
   snapshots are recovered with their records (assumption 7).
5. Recovery runs before the readiness flag is set, so no RPC (and no pull)
   races it; instrument.py answers UNAVAILABLE meanwhile.

The RuntimeService part (``recover_runtime``) further assumes:

6. Sandbox and container records were written atomically; a record in state
   INIT (sandbox) or CREATING (container) belongs to a RunPodSandbox or
   CreateContainer that died with the previous daemon: the caller got no
   answer, so the object is rolled back (its netns, snapshot, rootfs mount,
   /dev/shm, cgroup, shim and record removed), never finished.  So is a
   CREATED container with no task whose snapshot the snapshotter does not
   know: CreateContainer writes the CREATED record and the snapshot metadata
   side by side and answers after both, so that create died between them
   (the snapshot's dir went with the snapshotter's clean_temporary).  An
   INIT pod's snapshot may be unknown as well, and goes the same way:
   RunPodSandbox writes its metadata while it makes the pod and saves READY
   only after it has landed.
7. Resource names are derived from the object id alone (netns
   <state>/netns/<id>, shim <state>/shims/<id>, bundle <state>/containers/<id>,
   snapshot key <id>, an image volume's view <id>/image-mount/<n>, pod cgroup
   <cgroup_parent>/pod-<id>, or under the systemd driver the pod slice
   <parent stem>-pod<id>.slice), so leftovers of an object without a record
   are found by listing those places.  A container's scope needs no sweep:
   systemd stops it when its last process exits, and an orphan container's
   processes are the runtime's to delete.
8. A shim outlives the daemon and records every exit in its own state dir;
   a live shim is the truth about its containers' states and exit codes.  It
   deletes a container from the runtime (cgroup and runtime state) as soon as
   its init's exit is recorded, before it reports that exit, so an EXITED
   container normally has nothing left in the runtime, and a force-delete of
   one the runtime no longer knows is no error (runc, crun, dockyard-runc).  A
   dead shim (pid gone or not a shim) proves nothing about its containers:
   they are force-deleted through the runtime's own state and marked exited
   with reason ShimDied.  A CREATED container whose record has no task
   (``task_pending``: no pid) is either unknown to its shim, and then its record
   alone is the truth and it stays CREATED while the shim lives, or known to
   it: the last daemon died after its StartContainer reached the shim and
   before it saved the record, and the shim finished the call.  The record
   then takes the shim's pid and state (``CriService.adopt_task``).
9. The state dir is not guaranteed to be a tmpfs.  The boot id
   (/proc/sys/kernel/random/boot_id) stored in it tells a reboot: then no
   process, mount or netns of the last boot exists, so everything in the
   state dir is stale and is removed, and every container is marked exited
   (reason Rebooted) and every pod not ready, to be removed by the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .errors import CriError

if TYPE_CHECKING:
    from .server.cri_service import CriService

log = logging.getLogger("dockyard.cri.restart")


class TempCleaner(Protocol):
    def clean_temporary(self) -> int: ...


class Collector(Protocol):
    def collect_garbage(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    content_temps: int
    snapshot_temps: int
    blobs_collected: int
    snapshots_collected: int
    images: int


def recover(content: TempCleaner, snapshots: TempCleaner, images: Collector, image_count: int) -> RecoveryReport:
    """Run the steps in order: temps first (so GC never sees half-written data),
    then GC of what no loaded image references.  Blocking; call in a thread."""
    content_temps = content.clean_temporary()
    snapshot_temps = snapshots.clean_temporary()
    blobs, chains = images.collect_garbage()
    report = RecoveryReport(content_temps, snapshot_temps, blobs, chains, image_count)
    log.info(
        "recovery: removed %d ingest temps, %d snapshot temps, %d unreferenced blobs, "
        "%d unreferenced snapshots; %d images",
        content_temps, snapshot_temps, blobs, chains, image_count,
    )
    return report


BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
REBOOTED_REASON = "Rebooted"


def read_boot_id(path: str = BOOT_ID_FILE) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def rebooted(stored: str | None, current: str) -> bool:
    """A reboot happened iff a boot id was stored and differs (pure); a fresh state dir is no reboot."""
    return stored is not None and stored != current


@dataclass(slots=True)
class RuntimeRecovery:
    rebooted: bool = False
    sandboxes: int = 0
    containers: int = 0
    rolled_back: int = 0
    dead_shims: int = 0
    leftovers: int = 0


async def recover_runtime(cri: CriService, boot_id_file: str = BOOT_ID_FILE) -> RuntimeRecovery:
    """Load the records, reconcile them with the shims and the host, remove leftovers."""
    from .bundle import release_rootfs
    from .server.cri_service import now_ns
    from .server.sandbox_remove import release_sandbox_files
    from .store.container import ContainerState
    from .store.sandbox import SandboxState

    report = RuntimeRecovery()
    began = time.monotonic()
    state = cri.config.state_dir
    os.makedirs(state, mode=0o711, exist_ok=True)
    # A pod with a user namespace runs as an unprivileged host uid, which must
    # be able to walk to its rootfs: the state dir may be searched by anyone
    # (not listed), whatever mode it was made with (a mkdtemp dir is 0700).
    os.chmod(state, os.stat(state).st_mode & 0o7777 | 0o111)
    marker = os.path.join(state, "boot_id")
    current = read_boot_id(boot_id_file)
    try:
        with open(marker, encoding="ascii") as f:
            stored: str | None = f.read().strip()
    except FileNotFoundError:
        stored = None
    report.rebooted = rebooted(stored, current)
    if report.rebooted:
        log.warning("boot id changed (%s -> %s): clearing the state dir's runtime leftovers", stored, current)
        # A state dir on disk may still hold mount points (netns bind mounts,
        # /dev/shm tmpfs, rootfs overlays) that outlived their boot's processes;
        # rmtree cannot unlink a mount point and would descend into a mounted
        # rootfs, so they are detached first.
        await asyncio.to_thread(_unmount_under, state)
        for sub in ("shims", "netns", "sandboxes", "containers", "runtimes"):
            await asyncio.to_thread(shutil.rmtree, os.path.join(state, sub), True)
    with open(marker + ".tmp", "w", encoding="ascii") as f:
        f.write(current + "\n")
    os.rename(marker + ".tmp", marker)

    sandboxes = cri.sandboxes.load()
    containers = cri.containers.load()
    report.sandboxes, report.containers = len(sandboxes), len(containers)

    # Half-done creates: roll back (assumption 6).
    snapshots = await asyncio.to_thread(cri.snapshotter.active)
    for c in containers:
        unrecorded = c.task_pending and bool(c.snapshot_key) and c.snapshot_key not in snapshots
        if c.state is ContainerState.CREATING or unrecorded:
            log.info("rolling back container %s, whose CreateContainer the last daemon did not finish", c.id)
            await cri.force_delete(c.sandbox_id, c.id)
            await asyncio.to_thread(release_rootfs, cri.snapshotter, c.rootfs, c.snapshot_key, c.bundle)
            await cri.containers.delete(c.id)
            report.rolled_back += 1
    for s in sandboxes:
        if s.state is SandboxState.INIT:
            log.info("rolling back pod %s, whose RunPodSandbox the last daemon did not finish", s.id)
            for c in cri.containers.of_sandbox(s.id):
                await cri.containers.delete(c.id)
            await cri.force_delete(s.id, s.id)
            await cri.shims.shutdown(s.id)
            with contextlib.suppress(CriError):
                await cri.cni.teardown(s.id, s.netns_path)
            await asyncio.to_thread(release_sandbox_files, cri, s)
            await cri.sandboxes.delete(s.id)
            report.rolled_back += 1

    # Live shims are the truth; dead ones prove nothing (assumption 8).
    for s in cri.sandboxes.list():
        if report.rebooted:
            for c in cri.containers.of_sandbox(s.id):
                if c.state is not ContainerState.EXITED:
                    cri.record_exit(c, 255, now_ns(), reason=REBOOTED_REASON, message="the node rebooted")
            cri.record_pause_exit(s, 255)
            continue
        client = await cri.shims.reconnect(s.id, s.handler)
        if client is None:
            if any(c.state is not ContainerState.EXITED for c in cri.containers.of_sandbox(s.id)) or s.pause_exit_code is None:
                report.dead_shims += 1
                for c in cri.containers.of_sandbox(s.id):
                    if c.state is not ContainerState.EXITED:
                        await cri.force_delete(s.id, c.id)
                await cri.force_delete(s.id, s.id)
                await cri.on_shim_dead(s.id)
            continue
        await cri.on_shim_resync(s.id)

    report.leftovers = await asyncio.to_thread(_remove_orphans, cri)
    log.info(
        "runtime recovery in %.2fs: %d pods, %d containers, %d half-done rolled back, %d dead shims, "
        "%d orphans removed%s",
        time.monotonic() - began, report.sandboxes, report.containers, report.rolled_back, report.dead_shims,
        report.leftovers, " (after a reboot)" if report.rebooted else "",
    )
    return report


def _remove_orphans(cri: CriService) -> int:
    """Leftovers of objects without a record (assumption 7); blocking."""
    from .network import netns
    from .pod_cgroup import remove_pod_cgroup
    from .bundle import release_rootfs, unmount_all
    from .image_mounts import owner_key
    from .shims import shim_alive

    state = cri.config.state_dir
    known_pods = {s.id for s in cri.sandboxes.list()}
    known_containers = {c.id for c in cri.containers.list()}
    removed = 0
    for name in _listdir(os.path.join(state, "netns")):
        if name not in known_pods:
            netns.remove(os.path.join(state, "netns", name))
            removed += 1
    for name in _listdir(os.path.join(state, "sandboxes")):
        if name not in known_pods:
            sdir = os.path.join(state, "sandboxes", name)
            release_rootfs(cri.snapshotter, os.path.join(sdir, "bundle", "rootfs"), "", "")
            if os.path.isdir(os.path.join(sdir, "shm")):
                unmount_all(os.path.join(sdir, "shm"))
            shutil.rmtree(sdir, ignore_errors=True)
            removed += 1
    for name in _listdir(os.path.join(state, "containers")):
        if name not in known_containers:
            cdir = os.path.join(state, "containers", name)
            release_rootfs(cri.snapshotter, os.path.join(cdir, "rootfs"), "", cdir)
            removed += 1
    # Idmapped layers of a rootfs being mounted when the last daemon died (cri/snapshot/idmapped.py).
    for name in _listdir(os.path.join(state, "idm")):
        _unmount_under(os.path.join(state, "idm", name))
        shutil.rmtree(os.path.join(state, "idm", name), ignore_errors=True)
        removed += 1
    # Scratch of a CheckpointContainer cut off by the last daemon's death (cri/server/container_checkpoint.py):
    # CRIU images never archived.  The call is retried, or not; the images are no use either way.
    for name in _listdir(os.path.join(state, "checkpoints")):
        shutil.rmtree(os.path.join(state, "checkpoints", name), ignore_errors=True)
        removed += 1
    for name in _listdir(os.path.join(state, "shims")):
        if name not in known_pods and not shim_alive(os.path.join(state, "shims", name)):
            shutil.rmtree(os.path.join(state, "shims", name), ignore_errors=True)
            removed += 1
    for key in sorted(cri.snapshotter.active()):
        owner = owner_key(key)  # a container's image volumes are keyed under its id
        if owner not in known_pods and owner not in known_containers:
            release_rootfs(cri.snapshotter, "", key, "")
            removed += 1
    parent = cri.config.cgroup_parent.strip("/")
    orphans: list[str] = []
    if cri.config.cgroup_driver == "systemd":
        # Pod slices <stem>-pod<id>.slice, nested in the parent slice's directory.
        # Stopping a slice would kill what runs in it, so one that still has
        # processes is reported and kept, as a cgroupfs pod directory is.
        from dockyard.runtime.kernel.cgroupfs.systemd_path import slice_dir

        stem = parent[:-len(".slice")]
        head, tail = ("pod" if stem == "-" else f"{stem}-pod"), ".slice"  # systemd_path.pod_slice's names
        directory = "/sys/fs/cgroup" + slice_dir(parent).rstrip("/")
        for name in _listdir(directory):
            if not (name.startswith(head) and name.endswith(tail)) or name[len(head):-len(tail)] in known_pods:
                continue
            if _populated(os.path.join(directory, name)):
                log.warning("orphan pod slice %s still has processes: kept", name)
                continue
            orphans.append(name)
    else:
        for hierarchy in _listdir("/sys/fs/cgroup"):
            for name in _listdir(os.path.join("/sys/fs/cgroup", hierarchy, parent)):
                if name.startswith("pod-") and name[4:] not in known_pods and f"/{parent}/{name}" not in orphans:
                    orphans.append(f"/{parent}/{name}")
    for orphan in orphans:
        try:
            remove_pod_cgroup(orphan)
        except CriError as err:  # still has processes: reported, kept
            log.warning("orphan pod cgroup: %s", err.message)
            continue
        removed += 1
    return removed


def _populated(cgroup_dir: str) -> bool:
    """Whether a cgroup (v2) or any below it has a process (cgroup.events)."""
    try:
        with open(os.path.join(cgroup_dir, "cgroup.events")) as f:
            return "populated 1" in f.read().splitlines()
    except OSError:
        return False


def mounts_under(mountinfo: str, directory: str) -> list[str]:
    """Mount points strictly below ``directory``, deepest first (pure; mountinfo's octal escapes decoded)."""
    prefix = directory.rstrip("/") + "/"
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        target = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if target.startswith(prefix):
            found.append(target)
    return sorted(set(found), key=lambda t: (-t.count("/"), t))


def _unmount_under(directory: str) -> None:
    from .bundle import unmount_all

    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        targets = mounts_under(f.read(), os.path.realpath(directory))
    for target in targets:
        unmount_all(target)


def _listdir(path: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(path) if not n.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []

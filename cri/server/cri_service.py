"""What the RuntimeService RPC modules share: the stores, the shims, the network,
the images, the event fan-out -- containerd's criService, as one object.

Each RPC lives in its own module (sandbox_run.py, container_create.py, ...)
as ``async def rpc(cri: CriService, request) -> response``.  This module keeps
only what several of them need: lookups, the state updates that shim events
drive, and the teardown steps that Stop/Remove and recovery all perform (the
bundle's own release is cri/bundle.py).

Locking: every state change of a sandbox or container happens under that
object's asyncio lock (``sandboxes.index.lock(id)``); blocking work (mounts,
netns, file trees) runs in a worker thread so the loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cri_api.v1 import api_pb2

from .. import errors, faults
from ..apparmor import AppArmor
from ..bundle import release_rootfs
from ..bundle_facts import BundleFactsCache
from ..config import Config
from ..events import ContainerEvents
from ..metrics import NodeCounts
from ..oci.resources import NodeResources
from ..pod_cgroup import oom_kill_unexplained, slice_oom_kills
from ..shims import Shims
from ..stats import StatsSampler
from ..store.container import Container, ContainerState, ContainerStore
from ..store.sandbox import Sandbox, SandboxState, SandboxStore
from .built_messages import KeptAnswers
from .status import NetworkStatus

log = logging.getLogger("dockyard.cri.runtime")

# Exit status the shim reports for a process killed by signal N: 128 + N.
SIGKILL_STATUS = 128 + 9
SHIM_DIED_REASON = "ShimDied"


def now_ns() -> int:
    return time.time_ns()


class ImagesLike(Protocol):
    def get(self, ref_or_id: str) -> Any: ...
    async def pull(self, ref_text: str, auth: object) -> Any: ...
    async def rootfs_released(self) -> None: ...


class SnapshotterLike(Protocol):
    root: str

    def prepare(self, key: str, parent_chain_id: str | None, *, durable: bool = True) -> list[Any]: ...
    def make_durable(self) -> None: ...
    def view(self, key: str, parent_chain_id: str | None) -> list[Any]: ...
    def mounts(self, key: str) -> list[Any]: ...
    def remove(self, key: str) -> None: ...
    def active(self) -> set[str]: ...
    @staticmethod
    def mount(mounts: list[Any], target: str) -> None: ...
    @staticmethod
    def unmount(target: str) -> None: ...


class NetworkLike(NetworkStatus, Protocol):
    """The pod network (cri/network/cni.py's CNI)."""

    async def setup(self, pod_id: str, netns: str, *, k8s_namespace: str = "", k8s_name: str = "",
                    k8s_uid: str = "", port_mappings: Sequence[Mapping[str, Any]] = (),
                    bandwidth: Mapping[str, Any] | None = None,
                    dns: Mapping[str, Any] | None = None) -> Any: ...

    async def teardown(self, pod_id: str, netns: str, *, k8s_namespace: str = "", k8s_name: str = "",
                       k8s_uid: str = "", port_mappings: Sequence[Mapping[str, Any]] = (),
                       bandwidth: Mapping[str, Any] | None = None,
                       dns: Mapping[str, Any] | None = None, if_recorded: bool = False) -> None: ...

    async def probe_plugins(self) -> None: ...


class RuntimeMetrics(Protocol):
    """The metrics the RuntimeService records (cri/metrics.py's Metrics)."""

    def pod_started(self, handler: str, seconds: float) -> None: ...
    def container_started(self, handler: str, seconds: float) -> None: ...
    def shim_started(self) -> None: ...
    def shim_restarted(self) -> None: ...
    def shim_died(self) -> None: ...
    def runtime_call(self, verb: str, handler: str, seconds: float, ok: bool) -> None: ...


class NoMetrics:
    """RuntimeMetrics that records nothing (unit tests, tools)."""

    def pod_started(self, handler: str, seconds: float) -> None: ...
    def container_started(self, handler: str, seconds: float) -> None: ...
    def shim_started(self) -> None: ...
    def shim_restarted(self) -> None: ...
    def shim_died(self) -> None: ...
    def runtime_call(self, verb: str, handler: str, seconds: float, ok: bool) -> None: ...


@dataclass(slots=True)
class CriService:
    config: Config
    images: ImagesLike
    snapshotter: SnapshotterLike
    cni: NetworkLike
    sandboxes: SandboxStore
    containers: ContainerStore
    events: ContainerEvents
    shims: Shims = field(init=False)
    pod_cidr: str = ""
    # The node's cgroup version, CPUs, memory nodes and huge page sizes (set at
    # start by daemon.py; None in unit tests: host facts are then not checked).
    node: NodeResources | None = None
    # The node's AppArmor (off in unit tests and on hosts without it).
    apparmor: AppArmor = field(default_factory=lambda: AppArmor(enabled=False))
    sampler: StatsSampler = field(default_factory=StatsSampler)
    # Each container's cgroupsPath, process and user from its config.json, read once.
    bundle_facts: BundleFactsCache = field(default_factory=BundleFactsCache)
    kept: KeptAnswers = field(default_factory=KeptAnswers)  # built_messages.py
    # RunPodSandbox calls in flight by unique name: a retry awaits the first.
    sandbox_runs: dict[str, asyncio.Future[str]] = field(default_factory=dict)
    # Exit notifications per container id (set when the exit is recorded).
    exited: dict[str, asyncio.Event] = field(default_factory=dict)
    # Housekeeping that no answer waits for; held here so it is not collected mid-flight.
    chores: set[asyncio.Task[None]] = field(default_factory=set)
    metrics: RuntimeMetrics = field(default_factory=NoMetrics)

    def __post_init__(self) -> None:
        self.shims = Shims(self.config, self.on_shim_event, self.on_shim_resync, self.on_shim_dead,
                           metrics=self.metrics)

    def node_counts(self) -> NodeCounts:
        """Pods and containers by state, and connected shims, for the metrics
        scrape (called from its HTTP thread: it only reads, and copying a
        dict's values is atomic under the GIL)."""
        pods: dict[str, int] = {}
        for s in self.sandboxes.list():
            if s.state is not SandboxState.INIT:
                state = "ready" if s.state is SandboxState.READY else "notready"
                pods[state] = pods.get(state, 0) + 1
        containers: dict[str, int] = {}
        for c in self.containers.list():
            if c.state is not ContainerState.CREATING:
                containers[c.state.value] = containers.get(c.state.value, 0) + 1
        return NodeCounts(pods, containers, self.shims.count())

    def chore(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` after the current answer, without making the caller wait."""
        task = asyncio.create_task(coro, name=name)
        self.chores.add(task)
        task.add_done_callback(self.chores.discard)

    def forget_caches(self, object_id: str) -> None:
        """A container or pod is gone: drop what was kept about it in memory."""
        self.sampler.forget(object_id)
        self.bundle_facts.forget(object_id)
        self.kept.forget(object_id)
        self.exited.pop(object_id, None)

    # --- paths ---

    def sandbox_dir(self, sandbox_id: str) -> str:
        return os.path.join(self.config.state_dir, "sandboxes", sandbox_id)

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.config.state_dir, "containers", container_id)

    def netns_path(self, sandbox_id: str) -> str:
        return os.path.join(self.config.state_dir, "netns", sandbox_id)

    def pause_bundle(self, sandbox_id: str) -> str:
        return os.path.join(self.sandbox_dir(sandbox_id), "bundle")

    # --- exit bookkeeping ---

    def exit_event(self, container_id: str) -> asyncio.Event:
        ev = self.exited.get(container_id)
        if ev is None:
            ev = self.exited[container_id] = asyncio.Event()
        return ev

    def record_exit(self, container: Container, exit_status: int, exited_at: int, *, reason: str = "", message: str = "") -> bool:
        """Mark a container exited (once); persist; publish. True if it changed."""
        if container.state in (ContainerState.EXITED,):
            return False
        container.state = ContainerState.EXITED
        container.exit_code = exit_status
        container.finished_at = exited_at or now_ns()
        if reason:
            container.reason, container.message = reason, message
        # Not awaited: the shim keeps the exit status too, and a restarted
        # daemon takes it from there (restart.py assumption 8).
        self.containers.save(container)
        self.exit_event(container.id).set()
        self.events.publish(self, container, api_pb2.CONTAINER_STOPPED_EVENT)
        return True

    def record_pause_exit(self, sandbox: Sandbox, exit_status: int) -> None:
        if sandbox.pause_exit_code is None:
            sandbox.pause_exit_code = exit_status
        stopped = sandbox.state is SandboxState.READY
        if stopped:
            sandbox.state = SandboxState.NOTREADY
        self.sandboxes.save(sandbox)  # not awaited: the shim keeps the exit too
        self.exit_event(sandbox.id).set()
        if stopped:  # the pod stopped (StopPodSandbox, or its pause process died): kubelet relists it
            self.publish_sandbox(sandbox, api_pb2.CONTAINER_STOPPED_EVENT)

    async def on_shim_event(self, pod_id: str, event: dict[str, Any]) -> None:
        kind = event.get("event")
        cid = str(event.get("container_id", ""))
        if kind == "oom":
            c = self.containers.find(cid) if cid else None
            if c is not None and c.id == cid:
                c.oom_killed = True
                await self.containers.save(c)
            return
        if kind != "exit" or event.get("exec_id"):
            return
        await self.apply_exit(pod_id, cid, int(event.get("exit_status", 0)), int(event.get("exited_at", 0)))

    async def apply_exit(self, pod_id: str, cid: str, exit_status: int, exited_at: int, oom_killed: bool = False) -> None:
        if cid == pod_id:
            sandbox = self.sandboxes.find(pod_id)
            if sandbox is not None and sandbox.id == pod_id:
                self.record_pause_exit(sandbox, exit_status)
            return
        c = self.containers.find(cid) if cid else None
        if c is None or c.id != cid or c.state not in (ContainerState.RUNNING, ContainerState.CREATED):
            return
        if not oom_killed and not c.oom_killed and exit_status == 128 + signal.SIGKILL:
            facts = self.bundle_facts.get(c.id, c.bundle)
            if facts is not None:  # a systemd scope's cgroup may be gone before its shim read it
                kills = await asyncio.to_thread(slice_oom_kills, facts.cgroups_path)
                explained = sum(1 for other in self.containers.of_sandbox(c.sandbox_id) if other.oom_killed)
                oom_killed = oom_kill_unexplained(kills, explained)
                if oom_killed:
                    log.info("container %s: OOM kill counted by its pod slice (%s, %d explained)", c.id, kills,
                             explained)
            if c.state not in (ContainerState.RUNNING, ContainerState.CREATED):
                return  # the same exit, applied meanwhile (a resync beside the event)
        if oom_killed:
            c.oom_killed = True
        self.record_exit(c, exit_status, exited_at)

    async def on_shim_resync(self, pod_id: str) -> None:
        """(Re)subscribed: learn from the shim's list what we may have missed:
        exits, and tasks made by a StartContainer whose daemon died before it
        saved the record (the shim finished the call on its own)."""
        try:
            listing = await self.shims.client(pod_id).call("list")
        except errors.CriError as err:
            log.warning("shim of pod %s: list after subscribe: %s", pod_id, err.message)
            return
        for st in listing.get("containers", []):
            cid = str(st.get("container_id", st.get("id", "")))
            self.adopt_task(cid, st)
            if st.get("status") == "stopped":
                await self.apply_exit(pod_id, cid, int(st.get("exit_status", 0)), int(st.get("exited_at", 0)),
                                      bool(st.get("oom_killed", False)))

    def adopt_task(self, cid: str, st: dict[str, Any]) -> None:
        """A container the record says has no task yet, that its shim runs:
        the record takes the shim's pid and state (the shim is the truth,
        restart.py assumption 8), so a retried StartContainer finds it
        running instead of creating it a second time."""
        c = self.containers.find(cid) if cid else None
        if c is None or c.id != cid or not c.task_pending or not int(st.get("pid", 0)):
            return
        c.pid = int(st["pid"])
        if st.get("status") in ("running", "stopped"):
            c.started_at = int(st.get("started_at", 0)) or now_ns()
            if st.get("status") == "running":
                c.state = ContainerState.RUNNING
        self.containers.save(c)  # not awaited: the shim that told us still knows
        log.info("container %s: adopted the task its shim made (pid %d, %s)", cid, c.pid, st.get("status"))
        if c.state is ContainerState.RUNNING:
            self.events.publish(self, c, api_pb2.CONTAINER_STARTED_EVENT)

    async def on_shim_dead(self, pod_id: str) -> None:
        """The shim is gone: nothing it ran can be proven alive; mark all exited with the reason."""
        message = f"the shim of pod {pod_id} died; the container's exit status is unknown"
        sandbox = self.sandboxes.find(pod_id)
        for c in self.containers.of_sandbox(pod_id):
            if c.state in (ContainerState.RUNNING, ContainerState.CREATED, ContainerState.UNKNOWN):
                # Its processes may outlive the shim: kill them through the runtime's state.
                await self.force_delete(pod_id, c.id)
                self.record_exit(c, 255, now_ns(), reason=SHIM_DIED_REASON, message=message)
        if sandbox is not None and sandbox.id == pod_id:
            if sandbox.pause_exit_code is None:
                await self.force_delete(pod_id, sandbox.id)
            self.record_pause_exit(sandbox, 255)

    # --- lookups ---

    def sandbox(self, id_or_prefix: str) -> Sandbox:
        try:
            return self.sandboxes.get(id_or_prefix)
        except errors.NotFound as err:
            raise errors.NotFound(f"pod sandbox {errors.shorten(id_or_prefix)} not found") from err

    def container(self, id_or_prefix: str) -> Container:
        try:
            return self.containers.get(id_or_prefix)
        except errors.NotFound as err:
            raise errors.NotFound(f"container {errors.shorten(id_or_prefix)} not found") from err

    def running_container(self, id_or_prefix: str, refused: str = "") -> Container:
        """The container, which must be running: else FailedPrecondition, ending
        with ``refused`` (what the caller cannot do) when given."""
        c = self.container(id_or_prefix)
        if c.state is not ContainerState.RUNNING:
            why = f": {refused}" if refused else ""
            raise errors.FailedPrecondition(f"container {c.id} is {c.state.value}, not running{why}")
        return c

    def ready_sandbox(self, id_or_prefix: str, refused: str = "") -> Sandbox:
        """The pod sandbox, which must be ready: else FailedPrecondition, as above."""
        sandbox = self.sandbox(id_or_prefix)
        if sandbox.state is not SandboxState.READY:
            why = f": {refused}" if refused else ""
            raise errors.FailedPrecondition(f"pod sandbox {sandbox.id} is {sandbox.state.value}, not ready{why}")
        return sandbox

    # --- shared teardown steps (each idempotent) ---

    async def kill_and_wait(self, pod_id: str, cid: str, timeout: float) -> None:
        """SIGKILL a container (all its processes) and wait for the exit to be recorded."""
        client = self.shims.client(pod_id)
        with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
            await client.call("kill", {"container_id": cid, "signal": 9, "all": True})
        await self.wait_exit(pod_id, cid, timeout)

    async def wait_exit(self, pod_id: str, cid: str, timeout: float) -> dict[str, Any] | None:
        """The shim's wait result, or None if the container is unknown to the shim."""
        try:
            result = await self.shims.client(pod_id).call("wait", {"container_id": cid}, timeout=timeout)
        except errors.NotFound:
            return None
        await self.apply_exit(pod_id, cid, int(result.get("exit_status", 0)), int(result.get("exited_at", 0)),
                              bool(result.get("oom_killed", False)))
        return result

    async def release_container(self, c: Container) -> None:
        """Delete from the shim, unmount the rootfs, remove the snapshot and bundle.

        The shim deleted the container from the runtime when its init exited
        (shim/service.py): its ``delete`` then only forgets it, or tries the
        runtime's again if that failed.  Without a live shim the runtime's own
        state is asked (an unknown id is no error): a shim that died after such
        a failure would otherwise leave the cgroup behind for good."""
        if self.shims.has(c.sandbox_id):
            with contextlib.suppress(errors.NotFound):
                await self.shims.client(c.sandbox_id).call("delete", {"container_id": c.id})
        else:
            await self.force_delete(c.sandbox_id, c.id)
        faults.point("RemoveContainer/deleted")
        await asyncio.to_thread(release_rootfs, self.snapshotter, c.rootfs, c.snapshot_key, c.bundle)
        await self.images.rootfs_released()

    async def force_delete(self, pod_id: str, container_id: str) -> None:
        """Kill and delete a container through its pod's runtime's own state (no shim involved)."""
        sandbox = self.sandboxes.find(pod_id)
        handler = sandbox.handler if sandbox is not None and sandbox.id == pod_id else self.config.runtimes.default
        await self.shims.force_delete(handler, container_id)

    def publish_sandbox(self, sandbox: Sandbox, kind: api_pb2.ContainerEventType.ValueType) -> None:
        self.events.publish_sandbox(self, sandbox, kind)

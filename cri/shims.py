"""One shim per pod: start it, find it again after a daemon restart, notice when it dies.

Facts this relies on:

* ``dockyard-shim start --id POD --state-dir DIR --runtime BIN --runtime-root R``
  daemonizes (double fork + setsid) and exits 0 once ``DIR/shim.sock``
  accepts, having written ``DIR/shim.pid``.  The shim is therefore never our
  child: it outlives this daemon, and we cannot wait() for it.  Liveness is
  "the pid in shim.pid exists and its command line is a dockyard-shim", the
  second half guarding against pid reuse after the shim died.
* The shim keeps each container's record and exit status under
  ``DIR/containers``; a reconnecting daemon catches up with ``list``.
* A runtime handler with ``private_cgroup_unified_umount`` gets a generated
  wrapper as its runtime binary: each runtime call runs in a new mount
  namespace with /sys/fs/cgroup/unified unmounted (crun 1.8 fails on a
  hybrid host); only the cgroup tree is private there, so volume propagation
  between host and container still works.  A fresh namespace per call (rather than one for the whole
  shim) matters: the host's root mount is private here, so a namespace made
  when the shim started would never see rootfs mounts the daemon makes later
  for the pod's next containers.
* Spares (config ``spare_shims``): a shim's start is two interpreter starts,
  which a pod otherwise waits for (seconds under a slow CPU, as in the TCG
  guest).  Spares for the default handler are started ahead in
  ``<state>/shims/.spare-<hex>``; RunPodSandbox renames one's directory to
  the pod's (rename(2) moves the bound socket and the shim's working
  directory with it), connects, and sends ``claim`` with the new path, then
  the next spare starts.  A dot name is never read as a pod's (restart.py
  skips them), and a spare has no containers, so a spare the last daemon left
  is simply shut down at start.  A daemon that dies between the rename and
  the pod's READY record leaves an INIT pod whose shim is in the pod's
  directory: recovery's rollback shuts it down like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from dockyard.api import shim as proto

from . import errors
from .config import Config, RuntimeHandler
from .shim_client import ShimClient

log = logging.getLogger("dockyard.cri.shims")

SPARE_PREFIX = ".spare-"
START_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 10.0
CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "/sys/fs/cgroup/unified"

class ShimMetrics(Protocol):
    def shim_started(self) -> None: ...
    def shim_restarted(self) -> None: ...
    def shim_died(self) -> None: ...
    def runtime_call(self, verb: str, handler: str, seconds: float, ok: bool) -> None: ...


EventHandler = Callable[[str, dict[str, Any]], Awaitable[None]]
PodHandler = Callable[[str], Awaitable[None]]


async def stop_task(task: asyncio.Task[Any], timeout: float) -> bool:
    """Cancel ``task`` until it is done, for at most ``timeout`` seconds; True if it is.

    One cancel() is not enough on Python 3.11: asyncio.wait_for swallows a
    cancellation that arrives as its inner future completes (fixed in 3.12),
    and the event watcher awaits wait_for when it (re)subscribes. The cancel
    is then lost, the watcher goes on reading events from a shim that only
    exits once we stop waiting for the watcher, and a pod's shutdown hangs for
    good (seen under load as a RunPodSandbox rollback that never returned).
    Cancelling again at each step cannot be swallowed twice in a row by the
    same wait_for, and the bound keeps shutdown finite whatever happens.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("task %s ignored cancellation for %.0fs; leaving it", task.get_name(), timeout)
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.1, remaining))
    if not task.cancelled():
        task.exception()  # retrieved: it ended with an error while stopping, which is fine
    return True


def find_binary(name: str) -> str:
    """An absolute path as is; a bare name on PATH, then next to this Python (a venv's bin)."""
    if name.startswith("/"):
        return name
    found = shutil.which(name)
    if found:
        return found
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(beside, os.X_OK):
        return beside
    raise errors.FailedPrecondition(f"{name} not found on PATH or in {os.path.dirname(sys.executable)}")


def unified_umount_wrapper(binary: str) -> str:
    """The text of a runtime wrapper running ``binary`` without the cgroup2 'unified' mount (pure)."""
    # Propagation stays as the host has it (shared volumes must still carry
    # mounts between host and container, which critest's rshared/rslave specs
    # check); only the cgroup tree is made private first, so that the umount
    # stays in this namespace and never reaches the host's cgroups.
    inner = (f'if mountpoint -q {UNIFIED}; then mount --make-rprivate {CGROUP_ROOT} && umount {UNIFIED} || exit 125; fi; '
             'exec "$0" "$@"')
    return (
        "#!/bin/sh\n"
        "# Generated by dockyardd (runtime handler option private_cgroup_unified_umount):\n"
        "# run the runtime in its own mount namespace without the hybrid cgroup2 mount.\n"
        f"exec unshare --mount --propagation unchanged -- /bin/sh -c {shlex.quote(inner)} {shlex.quote(binary)} \"$@\"\n"
    )


def shim_alive(shim_dir: str) -> int:
    """The shim's pid if it runs, else 0."""
    try:
        with open(os.path.join(shim_dir, proto.PID_FILE)) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0
    if pid <= 0:
        return 0
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0
    # A zombie shim (not yet reaped by its subreaper) is dead.
    if stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X"):
        return 0
    return pid if b"shim" in cmdline else 0


async def _ask_shutdown(pod_id: str, client: ShimClient, deadline: float) -> None:
    while True:
        try:
            await client.call("shutdown", timeout=max(0.1, deadline - time.monotonic()))
            return
        except errors.Unavailable:
            return  # it exited while answering, or it is gone already
        except errors.FailedPrecondition as err:
            if time.monotonic() >= deadline:
                log.warning("shim of pod %s: %s", pod_id, err.message)
                return
            await asyncio.sleep(0.02)  # an exit the shim has not reaped yet
        except errors.DeadlineExceeded:
            return


async def wait_exit(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` (not our child) has exited; False on timeout.
    A pidfd turns readable when the process exits, zombie or not: an event,
    not a poll of /proc."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    loop.add_reader(pidfd, lambda: None if exited.done() else exited.set_result(None))
    try:
        await asyncio.wait_for(exited, max(0.0, timeout))
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


class Shims:
    """The shims of all pods, their clients and their event loops."""

    def __init__(self, config: Config, on_event: EventHandler, on_resync: PodHandler, on_dead: PodHandler,
                 metrics: ShimMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self._on_event = on_event
        self._on_resync = on_resync
        self._on_dead = on_dead
        self._clients: dict[str, ShimClient] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._closing: set[str] = set()
        self._handlers: dict[str, str] = {}  # pod id -> runtime handler name (metrics labels)
        # Spares of the default handler, each a task giving the spare's name
        # once it serves; kept only after start_spares (the daemon's start).
        self._spares: list[asyncio.Task[str]] = []
        self._spare_handler = ""

    def count(self) -> int:
        return len(self._clients)

    def _client(self, pod_id: str, handler_name: str) -> ShimClient:
        self._handlers[pod_id] = handler_name
        metrics = self.metrics
        if metrics is None:
            return ShimClient(pod_id, proto.socket_path(self.dir(pod_id)))

        def observe(verb: str, seconds: float, ok: bool) -> None:
            metrics.runtime_call(verb, handler_name, seconds, ok)
        return ShimClient(pod_id, proto.socket_path(self.dir(pod_id)), observe=observe)

    def dir(self, pod_id: str) -> str:
        return proto.shim_dir(self.config.state_dir, pod_id)

    def runtime_root(self, handler_name: str, handler: RuntimeHandler) -> str:
        return handler.root or os.path.join(self.config.state_dir, "runtimes", handler_name)

    def runtime_binary(self, handler_name: str, handler: RuntimeHandler) -> str:
        binary = find_binary(handler.binary)
        if not handler.private_cgroup_unified_umount:
            return binary
        path = os.path.join(self.config.state_dir, "runtimes", f"{handler_name}.wrapper")
        text = unified_umount_wrapper(binary)
        os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
        try:
            with open(path) as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.chmod(tmp, 0o755)
            os.rename(tmp, path)
        return path

    def client(self, pod_id: str) -> ShimClient:
        client = self._clients.get(pod_id)
        if client is None:
            raise errors.Unavailable(f"no shim for pod {pod_id} (it died or was never started)")
        return client

    def has(self, pod_id: str) -> bool:
        return pod_id in self._clients

    async def start(self, pod_id: str, handler_name: str, handler: RuntimeHandler) -> ShimClient:
        """The pod's shim: a spare adopted, or a fresh one started."""
        client = await self._adopt_spare(pod_id, handler_name)
        if client is None:
            await self._spawn(pod_id, handler_name, handler)
            client = self._client(pod_id, handler_name)
            await client.connect()
            self._attach(pod_id, client)
        if self.metrics is not None:
            self.metrics.shim_started()
        return client

    async def _spawn(self, name: str, handler_name: str, handler: RuntimeHandler) -> None:
        """``dockyard-shim start`` serving in ``dir(name)``; returns once it accepts."""
        directory = self.dir(name)
        os.makedirs(directory, mode=0o711, exist_ok=True)
        root = self.runtime_root(handler_name, handler)
        os.makedirs(root, mode=0o711, exist_ok=True)
        argv = [
            find_binary(self.config.shim_binary), "start", "--id", name, "--state-dir", directory,
            "--runtime", self.runtime_binary(handler_name, handler), "--runtime-root", root,
            *(["--runtime-cgroup-driver", "systemd"] if self.config.cgroup_driver == "systemd" else []),
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT_S)
        except asyncio.TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise errors.Internal(f"starting the shim of {name} took more than {START_TIMEOUT_S}s") from exc
        if proc.returncode != 0:
            raise errors.Internal(
                f"starting the shim of {name} failed (exit {proc.returncode}): {err.decode(errors='replace').strip()}"
            )
        log.debug("shim of %s started (%s)", name, out.decode(errors="replace").strip())

    # --- spares -----------------------------------------------------------

    async def start_spares(self) -> None:
        """Daemon start: shut down the spares a previous daemon left (its
        handlers may have differed), then start this one's."""
        parent = os.path.dirname(self.dir(SPARE_PREFIX))
        try:
            names = [n for n in os.listdir(parent) if n.startswith(SPARE_PREFIX)]
        except FileNotFoundError:
            names = []
        for name in names:
            log.info("shutting down the spare shim %s a previous daemon left", name)
            await self.shutdown(name)
        self._spare_handler, _ = self.config.runtimes.resolve("")
        self._keep_spares()

    def _keep_spares(self) -> None:
        if not self._spare_handler:
            return
        handler = self.config.runtimes.handlers[self._spare_handler]
        while len(self._spares) < self.config.spare_shims:
            name = SPARE_PREFIX + secrets.token_hex(8)
            self._spares.append(asyncio.create_task(self._start_spare(name, handler), name=f"spare shim {name}"))

    async def _start_spare(self, name: str, handler: RuntimeHandler) -> str:
        try:
            await self._spawn(name, self._spare_handler, handler)
        except BaseException:
            await self.shutdown(name)  # whatever came up of it
            raise
        return name

    async def _adopt_spare(self, pod_id: str, handler_name: str) -> ShimClient | None:
        """A spare's shim made the pod's, or None (no spare for this handler, or it failed)."""
        if handler_name != self._spare_handler or not self._spares:
            return None
        task = self._spares.pop(0)
        self._keep_spares()  # the next pod's spare starts now
        try:
            spare = await asyncio.shield(task)
        except asyncio.CancelledError:
            self._spares.append(task)  # still ours to shut down (stop_spares)
            raise
        except (errors.CriError, OSError) as err:  # a fresh start follows and gives the real error
            log.warning("spare shim failed to start: %s", err)
            return None
        try:
            os.rename(self.dir(spare), self.dir(pod_id))
        except OSError as err:
            log.warning("spare shim %s: renaming its dir for pod %s: %s", spare, pod_id, err)
            await self.shutdown(spare)
            return None
        client = self._client(pod_id, handler_name)
        try:
            await client.connect()
            await client.call("claim", {"dir": self.dir(pod_id)})
        except errors.CriError as err:
            log.warning("spare shim %s could not be adopted by pod %s: %s", spare, pod_id, err.message)
            await client.close()
            await self.shutdown(pod_id)
            return None
        self._attach(pod_id, client)
        log.debug("pod %s adopted the spare shim %s", pod_id, spare)
        return client

    async def stop_spares(self) -> None:
        """Daemon exit: no new spares; those started (or starting) are shut down."""
        self._spare_handler = ""
        spares, self._spares = self._spares, []
        for task in spares:
            try:
                name = await task
            except (errors.CriError, OSError):  # it failed to start and cleaned up after itself
                continue
            await self.shutdown(name)

    async def reconnect(self, pod_id: str, handler_name: str = "") -> ShimClient | None:
        """After a daemon restart: the shim's client, or None if the shim is dead."""
        directory = self.dir(pod_id)
        if not shim_alive(directory):
            return None
        client = self._client(pod_id, handler_name)
        try:
            await client.connect()
        except errors.Unavailable:
            return None
        self._attach(pod_id, client)
        if self.metrics is not None:
            self.metrics.shim_restarted()
        return client

    def _attach(self, pod_id: str, client: ShimClient) -> None:
        self._clients[pod_id] = client
        self._closing.discard(pod_id)
        self._watchers[pod_id] = asyncio.create_task(self._watch(pod_id, client), name=f"shim {pod_id} events")

    async def _watch(self, pod_id: str, client: ShimClient) -> None:
        """Deliver events; resubscribe after a lost connection while the shim lives."""
        delay = 0.05
        subscriptions = 0
        while pod_id not in self._closing:
            try:
                async for event in client.events():
                    if event.get("event") == "subscribed":
                        delay = 0.05
                        subscriptions += 1
                        if subscriptions > 1 and self.metrics is not None:
                            self.metrics.shim_restarted()
                        await self._on_resync(pod_id)
                        continue
                    await self._on_event(pod_id, event)
            except errors.CriError as err:
                log.debug("shim of pod %s: event stream: %s", pod_id, err.message)
            if pod_id in self._closing:
                return
            if not shim_alive(self.dir(pod_id)):
                log.warning("shim of pod %s died", pod_id)
                if self.metrics is not None:
                    self.metrics.shim_died()
                self._clients.pop(pod_id, None)
                self._handlers.pop(pod_id, None)
                self._watchers.pop(pod_id, None)
                await client.close()
                await self._on_dead(pod_id)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def shutdown(self, pod_id: str) -> None:
        """Ask the shim to exit, wait for it, remove its dir.  A shim this
        daemon never connected to (recovery rolling back a pod whose start
        the last daemon did not finish) is asked too: otherwise it would be
        waited for, for nothing, until the deadline (10 s per pod).  It
        refuses while a container of its own still lives; the caller has
        killed them, and the shim records their exits as it reaps them, so
        the request is repeated until then."""
        directory = self.dir(pod_id)
        self._closing.add(pod_id)
        client = self._clients.pop(pod_id, None)
        self._handlers.pop(pod_id, None)
        watcher = self._watchers.pop(pod_id, None)
        if watcher is not None:
            await stop_task(watcher, SHUTDOWN_TIMEOUT_S)
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT_S
        pid = shim_alive(directory)
        if pid and client is None:
            client = ShimClient(pod_id, proto.socket_path(directory))
        if client is not None:
            if pid:
                await _ask_shutdown(pod_id, client, deadline)
            await client.close()
        began = time.monotonic()
        if pid and not await wait_exit(pid, deadline - time.monotonic()) and shim_alive(directory):
            log.warning("shim of pod %s ignored shutdown for %.0fs; killing pid %d", pod_id, SHUTDOWN_TIMEOUT_S, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        elif time.monotonic() - began > 1.0:
            log.info("waited %.1fs for the shim of pod %s to exit", time.monotonic() - began, pod_id)
        shutil.rmtree(directory, ignore_errors=True)
        if watcher is None or watcher.done():
            self._closing.discard(pod_id)  # nothing reads it any more; keep the set from growing

    async def force_delete(self, handler_name: str, container_id: str) -> None:
        """``<runtime> delete --force <id>`` with the handler's root: kills what the
        container still runs and removes its cgroup and runtime state, without a shim.
        A container the runtime does not know is fine (nothing left)."""
        handler = self.config.runtimes.handlers.get(handler_name)
        if handler is None:
            return
        argv = [self.runtime_binary(handler_name, handler), "--root", self.runtime_root(handler_name, handler),
                *(["--systemd-cgroup"] if self.config.cgroup_driver == "systemd" else []),
                "delete", "--force", container_id]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            # "does not exist" is the usual, fine answer; anything else (a
            # process that would not die) is worth an operator's eye.
            log.warning("%s failed (exit %d): %s", " ".join(argv), proc.returncode,
                        errors.shorten(err.decode(errors="replace").strip(), 1000))

    async def close_all(self) -> None:
        """Daemon exit: drop connections, leave the pods' shims running (the spares: stop_spares)."""
        for pod_id in list(self._clients):
            self._closing.add(pod_id)
            watcher = self._watchers.pop(pod_id, None)
            if watcher is not None:
                await stop_task(watcher, SHUTDOWN_TIMEOUT_S)
            await self._clients.pop(pod_id).close()

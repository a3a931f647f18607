"""Attaching pods to the network by running CNI plugin binaries.

``CNI`` is what the sandbox RPCs call: ``setup`` (ADD) when a pod runs,
``teardown`` (DEL) when it stops or is removed, ``check`` (CHECK) on demand,
``status`` for the NetworkReady condition.  For a 1.1.0 list, the Status
RPC first runs the plugins' STATUS verb (``probe_plugins``) and a plugin
that says it cannot serve ADD makes the network not ready, naming it; the
daemon runs GC once at start (``collect_garbage``), with the attachments of
the pods it still has as the valid ones.  The protocol's data rules live in
``protocol.py``; which config is in force, in ``conflist.py``.

Why a per-pod cache file (``<cache_dir>/<pod_id>.json``, versioned JSON,
written atomically):

* DEL must get the same network config and runtimeConfig as ADD did, even if
  the conf dir changed since (portmap's DEL finds its rules through the
  portMappings it is given, and a DEL run against a *new* network name
  would release nothing), and even after the daemon restarted.
* The record is written *before* ADD with no result ("adding"), so a daemon
  killed half-way through ADD still knows what to DEL on its next start.
* It is removed only after a DEL of every plugin succeeded; a failed DEL
  keeps it for the retry.

DEL is idempotent and works with the netns gone: when ``netns`` is empty or
no longer a pinned namespace, plugins get ``CNI_NETNS=""``, which the spec
says they must accept on DEL (host-local still releases the address, bridge
skips the veth, portmap drops its rules).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.cri import errors
from dockyard.cri.content.durable import write_atomic

from . import netns as netns_mod
from .conflist import ConfDir, NetworkConfig, parse_network
from .protocol import (
    PluginFailed,
    RuntimeArgs,
    build_runtime_config,
    convert_result,
    del_gets_prev_result,
    has_status_and_gc,
    parse_result,
    plugin_env,
    plugin_error,
    plugin_stdin,
    result_ips,
    supports_check,
    verb_env,
    verb_stdin,
)

log = logging.getLogger("dockyard.cri.network")

CACHE_VERSION = 1
DEFAULT_IFNAME = "eth0"
NOT_READY = "NetworkPluginNotReady"
# Plugins need iptables, ip and friends; the daemon may run with an empty env.
_FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# STATUS runs inside a Status RPC, which kubelet calls every few seconds.
STATUS_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class CNIResult:
    """The outcome of ADD: the pod's IPs (primary first) and the final result."""

    ips: list[str]
    raw: dict[str, Any] = field(compare=False)
    network: str = ""


class CNI:
    """The CNI plugins of one conf dir, run for pods identified by their sandbox id."""

    def __init__(self, conf_dir: str, bin_dirs: Sequence[str], cache_dir: str, *,
                 ifname: str = DEFAULT_IFNAME, plugin_timeout: float = 60.0) -> None:
        self.conf = ConfDir(conf_dir)
        self.bin_dirs = tuple(bin_dirs)
        self.cache_dir = cache_dir
        self.ifname = ifname
        self.plugin_timeout = plugin_timeout
        # One operation per pod at a time; entries vanish when nobody holds them.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # The last STATUS verdict: (the network it was for, "" or why it is not ready).
        self._plugin_status: tuple[tuple[str, str], str] | None = None

    # --- readiness -------------------------------------------------------

    def status(self) -> tuple[bool, str, str]:
        """(ready, reason, message) for the NetworkReady condition.

        Cheap enough for every Status call: a scandir of the conf dir, files
        re-read only when it changed, one access() per plugin binary.
        """
        selection, dir_error = self.conf.current()
        rejected = selection.rejected_text()
        if selection.config is None:
            why = dir_error or f"no valid network config found in {self.conf.path}"
            if rejected:
                why += f" (rejected: {rejected})"
            return False, NOT_READY, f"cni config load failed: {why}"
        missing = [t for t in selection.config.plugin_types if self._find(t) is None]
        if missing:
            return False, NOT_READY, (
                f"network {selection.config.name} ({selection.config.source}) needs plugins "
                f"{', '.join(missing)}, not found in {':'.join(self.bin_dirs)}")
        verdict = self._plugin_status
        if verdict is not None and verdict[0] == _identity(selection.config) and verdict[1]:
            return False, NOT_READY, (
                f"network {selection.config.name} ({selection.config.source}) is not ready: {verdict[1]}")
        message = f"using network {selection.config.name} from {selection.config.source}"
        if rejected:
            message += f"; ignored invalid configs: {rejected}"
        return True, "", message

    async def probe_plugins(self) -> None:
        """Run STATUS of each plugin of a 1.1.0 list in force, in order, and keep
        the verdict for ``status``: the first plugin that fails names the reason."""
        selection, _ = self.conf.current()
        network = selection.config
        if network is None or not has_status_and_gc(network.cni_version):
            return
        if any(self._find(t) is None for t in network.plugin_types):
            return  # status() says which are missing
        problem = ""
        for plugin in network.raw["plugins"]:
            try:
                await self._run(plugin["type"], "STATUS", verb_env("STATUS", self.bin_dirs, self._base_env()),
                                verb_stdin(network.raw, plugin), STATUS_TIMEOUT)
            except errors.CriError as err:
                problem = err.message
                break
        self._plugin_status = (_identity(network), problem)

    async def collect_garbage(self, pod_ids: Iterable[str]) -> list[errors.CriError]:
        """GC of each plugin of a 1.1.0 list in force: every attachment but those of
        ``pod_ids`` that have a recorded ADD is stale.  Errors are returned (and
        logged), not raised: a failed GC loses nothing, the next one retries."""
        selection, _ = self.conf.current()
        network = selection.config
        if network is None or not has_status_and_gc(network.cni_version):
            return []
        valid = []
        for pod_id in sorted(pod_ids):
            record = await asyncio.to_thread(self._read_cache, pod_id)
            if record is not None:
                valid.append({"containerID": pod_id, "ifname": str(record.get("ifname") or self.ifname)})
        failures: list[errors.CriError] = []
        for plugin in network.raw["plugins"]:
            try:
                await self._run(plugin["type"], "GC", verb_env("GC", self.bin_dirs, self._base_env()),
                                verb_stdin(network.raw, plugin, valid), self.plugin_timeout)
            except errors.CriError as err:
                log.warning("CNI GC of network %s: %s", network.name, err)
                failures.append(err)
        return failures

    def current_network(self) -> NetworkConfig:
        """The config in force, or FailedPrecondition saying why there is none."""
        selection, _ = self.conf.current()
        if selection.config is None:
            _, _, message = self.status()
            raise errors.FailedPrecondition(f"network is not ready: {message}")
        return selection.config

    # --- ADD / DEL / CHECK ----------------------------------------------------

    async def setup(self, pod_id: str, netns: str, *, k8s_namespace: str = "", k8s_name: str = "",
                    k8s_uid: str = "", port_mappings: Sequence[Mapping[str, Any]] = (),
                    bandwidth: Mapping[str, Any] | None = None,
                    dns: Mapping[str, Any] | None = None) -> CNIResult:
        """ADD the pod (netns pinned at ``netns``) to the network in force.

        On a plugin failure the plugins are DELeted again and the error (naming
        the plugin) is raised: nothing stays attached.  A repeated call for a
        pod already attached to the same netns returns the recorded result.
        """
        _check_pod_id(pod_id)
        network = self.current_network()
        runtime_config = build_runtime_config(port_mappings, bandwidth, dns)
        args = RuntimeArgs(pod_id, netns, self.ifname, k8s_namespace, k8s_name, k8s_uid)
        args.cni_args()  # refuse bad K8S_* values before anything is attached
        async with self._lock(pod_id):
            existing = await asyncio.to_thread(self._read_cache, pod_id)
            if (existing is not None and isinstance(existing.get("result"), dict)
                    and existing.get("netns") == netns and netns_mod.is_netns(netns)):
                # A retried setup (the caller's retry after a timeout): the pod
                # is attached already, and a second ADD would make host-local
                # refuse a duplicate allocation for the same container id.
                result = existing["result"]
                return CNIResult(ips=result_ips(result, str(existing.get("ifname") or self.ifname)),
                                 raw=result, network=str(existing["network"].get("name", "")))
            record = {
                "version": CACHE_VERSION, "pod_id": pod_id, "ifname": self.ifname, "netns": netns,
                "k8s": {"namespace": k8s_namespace, "name": k8s_name, "uid": k8s_uid},
                "network": dict(network.raw), "source": network.source,
                "runtime_config": runtime_config, "result": None,
            }
            await asyncio.to_thread(self._write_cache, pod_id, record)
            prev: dict[str, Any] | None = None
            try:
                for plugin in network.raw["plugins"]:
                    stdin = plugin_stdin(network.raw, plugin, prev_result=prev, runtime_config=runtime_config)
                    out = await self._exec(plugin["type"], "ADD", args, stdin)
                    prev = convert_result(parse_result(plugin["type"], "ADD", out), network.cni_version)
            except Exception as err:
                await self._undo_add(pod_id, network.raw, args, runtime_config, prev, err)
                raise
            if prev is None:  # unreachable: a valid list has >= 1 plugin
                raise errors.Internal(f"CNI ADD of pod {pod_id} produced no result")
            record["result"] = prev
            await asyncio.to_thread(self._write_cache, pod_id, record)
        return CNIResult(ips=result_ips(prev, self.ifname), raw=prev, network=network.name)

    async def _undo_add(self, pod_id: str, network: Mapping[str, Any], args: RuntimeArgs,
                        runtime_config: Mapping[str, Any], prev: Mapping[str, Any] | None,
                        cause: BaseException) -> None:
        try:
            await self._delete(network, args, runtime_config, prev)
        except errors.CriError as err:
            # Keep the cache so a later teardown retries the DEL.
            log.warning("pod %s: DEL after failed ADD (%s) failed too: %s", pod_id, cause, err)
            return
        await asyncio.to_thread(self._remove_cache, pod_id)

    async def teardown(self, pod_id: str, netns: str, *, k8s_namespace: str = "", k8s_name: str = "",
                       k8s_uid: str = "", port_mappings: Sequence[Mapping[str, Any]] = (),
                       bandwidth: Mapping[str, Any] | None = None,
                       dns: Mapping[str, Any] | None = None, if_recorded: bool = False) -> None:
        """DEL the pod; idempotent, and fine when the netns is already gone.

        Uses what ADD recorded; without a record (ADD never ran, or a previous
        DEL finished) it DELs against the config in force with the given
        arguments, which plugins treat as a no-op, unless ``if_recorded``
        asks for nothing then; without any config there is nothing anyone
        could have attached, so it returns.
        """
        _check_pod_id(pod_id)
        async with self._lock(pod_id):
            record = await asyncio.to_thread(self._read_cache, pod_id)
            # An open and an ioctl on a local file: cheap enough for the loop.
            live_netns = netns if netns and netns_mod.is_netns(netns) else ""
            if record is not None:
                k8s = record.get("k8s") or {}
                args = RuntimeArgs(pod_id, live_netns, str(record.get("ifname") or self.ifname),
                                   str(k8s.get("namespace", "")), str(k8s.get("name", "")),
                                   str(k8s.get("uid", "")))
                network: Mapping[str, Any] = record["network"]
                runtime_config: Mapping[str, Any] = record.get("runtime_config") or {}
                prev = record.get("result")
            else:
                selection, _ = self.conf.current()
                if selection.config is None or if_recorded:
                    return
                args = RuntimeArgs(pod_id, live_netns, self.ifname, k8s_namespace, k8s_name, k8s_uid)
                network = selection.config.raw
                runtime_config = build_runtime_config(port_mappings, bandwidth, dns)
                prev = None
            await self._delete(network, args, runtime_config, prev)
            await asyncio.to_thread(self._remove_cache, pod_id)

    async def check(self, pod_id: str, netns: str) -> None:
        """CHECK the pod's attachment as ADD recorded it; raise naming the plugin if broken."""
        _check_pod_id(pod_id)
        async with self._lock(pod_id):
            record = await asyncio.to_thread(self._read_cache, pod_id)
            if record is None or record.get("result") is None:
                raise errors.FailedPrecondition(f"pod {pod_id} has no completed network attachment to check")
            network = record["network"]
            if not supports_check(network["cniVersion"]) or network.get("disableCheck") is True:
                return
            if not netns_mod.is_netns(netns):
                raise errors.FailedPrecondition(f"network namespace {netns} of pod {pod_id} is gone")
            k8s = record.get("k8s") or {}
            args = RuntimeArgs(pod_id, netns, str(record.get("ifname") or self.ifname),
                               str(k8s.get("namespace", "")), str(k8s.get("name", "")), str(k8s.get("uid", "")))
            for plugin in network["plugins"]:
                stdin = plugin_stdin(network, plugin, prev_result=record["result"],
                                     runtime_config=record.get("runtime_config") or {})
                await self._exec(plugin["type"], "CHECK", args, stdin)

    def cached_result(self, pod_id: str) -> CNIResult | None:
        """What the last successful ADD of the pod returned (for status after a restart)."""
        record = self._read_cache(pod_id)
        if record is None or not isinstance(record.get("result"), dict):
            return None
        ifname = str(record.get("ifname") or self.ifname)
        return CNIResult(ips=result_ips(record["result"], ifname), raw=record["result"],
                         network=str(record["network"].get("name", "")))

    async def _delete(self, network: Mapping[str, Any], args: RuntimeArgs,
                      runtime_config: Mapping[str, Any], prev: Mapping[str, Any] | None) -> None:
        version = str(network["cniVersion"])
        prev_for_del = prev if prev is not None and del_gets_prev_result(version) else None
        # Unlike libcni, a failing DEL does not stop the others: DEL is
        # idempotent, and stopping would keep host-local's address (the
        # first plugin, DELeted last) reserved until a retry that may never
        # come.  The first error is raised once every plugin had its turn.
        first: errors.CriError | None = None
        for plugin in reversed(network["plugins"]):
            stdin = plugin_stdin(network, plugin, prev_result=prev_for_del, runtime_config=runtime_config)
            try:
                await self._exec(plugin["type"], "DEL", args, stdin)
            except errors.CriError as err:
                log.warning("CNI DEL of %s: %s", args.container_id, err)
                first = first or err
        if first is not None:
            raise first

    # --- running one plugin ----------------------------------------------

    def _find(self, plugin_type: str) -> str | None:
        for directory in self.bin_dirs:
            candidate = os.path.join(directory, plugin_type)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        return None

    @staticmethod
    def _base_env() -> dict[str, str]:
        return {"PATH": os.environ.get("PATH") or _FALLBACK_PATH}

    async def _exec(self, plugin_type: str, command: str, args: RuntimeArgs, stdin: bytes) -> bytes:
        env = plugin_env(command, args, self.bin_dirs, self._base_env())
        return await self._run(plugin_type, command, env, stdin, self.plugin_timeout)

    async def _run(self, plugin_type: str, command: str, env: Mapping[str, str], stdin: bytes,
                   timeout: float) -> bytes:
        path = self._find(plugin_type)
        if path is None:
            raise PluginFailed(plugin_type, command, 0, f"not found in {':'.join(self.bin_dirs)}")
        proc = await asyncio.create_subprocess_exec(
            path, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(env), cwd="/")
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError as exc:
            await _kill(proc)
            raise PluginFailed(plugin_type, command, 0, f"timed out after {timeout:g}s") from exc
        except BaseException:
            await _kill(proc)
            raise
        code = proc.returncode if proc.returncode is not None else -1
        if code != 0:
            raise plugin_error(plugin_type, command, code, out, err)
        return out

    # --- the cache ---------------------------------------------------------

    def _lock(self, pod_id: str) -> asyncio.Lock:
        lock = self._locks.get(pod_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[pod_id] = lock
        return lock

    def _cache_path(self, pod_id: str) -> str:
        return os.path.join(self.cache_dir, f"{pod_id}.json")

    def _write_cache(self, pod_id: str, record: Mapping[str, Any]) -> None:
        os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        write_atomic(self._cache_path(pod_id), json.dumps(record, sort_keys=True).encode())

    def _read_cache(self, pod_id: str) -> dict[str, Any] | None:
        path = self._cache_path(pod_id)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            record = json.loads(data)
        except ValueError as err:
            raise errors.Internal(f"CNI cache {path} is not JSON: {err}") from err
        if not isinstance(record, dict) or record.get("version") != CACHE_VERSION:
            raise errors.Internal(f"CNI cache {path} has unknown version {record.get('version') if isinstance(record, dict) else None!r}")
        try:
            # Re-validate the recorded config as if it were a file: DEL feeds it to plugins.
            parse_network("cache.conflist", json.dumps(record["network"]).encode())
        except (KeyError, ValueError) as err:
            raise errors.Internal(f"CNI cache {path} holds no valid network config: {err}") from err
        return record

    def _remove_cache(self, pod_id: str) -> None:
        try:
            os.unlink(self._cache_path(pod_id))
        except FileNotFoundError:
            pass


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        await proc.wait()


def _identity(network: NetworkConfig) -> tuple[str, str]:
    """Which config a STATUS verdict was for: a changed file is probed anew."""
    return network.source, json.dumps(network.raw, sort_keys=True)


def _check_pod_id(pod_id: str) -> None:
    # The id names a cache file and goes into CNI_ARGS and iptables comments.
    if not pod_id or not all(c.isalnum() or c in "-_." for c in pod_id) or pod_id.startswith("."):
        raise errors.InvalidArgument(f"pod id {pod_id!r} is not usable as a CNI container id")

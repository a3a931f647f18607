"""ExecSync: run a command in a container, capture its output, with a timeout.

The process is the container's own (config.json's env, cwd, user,
capabilities, ...) with the command's argv and no terminal.  Output is
captured by the shim, at most 16 MiB per stream, and trimmed so that the
reply fits in one CRI message (message_size.py).  On timeout the process is
SIGKILLed and the call fails with DeadlineExceeded, which is what kubelet's
exec probes expect for a timed-out probe (ExecProbeTimeout).

A shim of protocol 2 does it all in one ``exec_sync`` request (the deadline
kept by the shim); an older one, started by an older daemon and adopted,
gets the three calls it knows (exec, wait, delete).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from typing import Any

from cri_api.v1 import api_pb2

from dockyard.api import shim as proto

from .. import errors
from ..message_size import fit_exec_output
from ..oci.process_args import check_exec_argv
from ..shim_client import ShimClient
from .cri_service import CriService

KILL_WAIT_S = 10.0
SHIM_EXEC_SYNC = proto.METHOD_SINCE["exec_sync"]  # the shim protocol that brought it


def exec_process(spec_process: dict[str, Any], cmd: list[str], tty: bool = False) -> dict[str, Any]:
    """The container's process with another argv (pure)."""
    process = {k: v for k, v in spec_process.items() if k not in ("args", "terminal", "consoleSize", "commandLine")}
    process["args"] = list(cmd)
    process["terminal"] = tty
    return process


def load_process(bundle: str) -> dict[str, Any]:
    with open(os.path.join(bundle, "config.json"), encoding="utf-8") as f:
        spec = json.load(f)
    process = spec.get("process")
    if not isinstance(process, dict):
        raise errors.Internal(f"{bundle}/config.json has no process")
    return process


def container_process(cri: CriService, container_id: str, bundle: str) -> dict[str, Any]:
    """The spec's process, from the bundle facts cache (read once per container)."""
    facts = cri.bundle_facts.get(container_id, bundle)
    if facts is None or facts.process is None:
        return load_process(bundle)  # raises the error naming the file
    return facts.process


async def exec_sync(cri: CriService, request: api_pb2.ExecSyncRequest) -> api_pb2.ExecSyncResponse:
    check_exec_argv(list(request.cmd), "cmd")
    c = cri.running_container(request.container_id, "cannot exec in it")
    process = exec_process(container_process(cri, c.id, c.bundle), list(request.cmd))
    client = cri.shims.client(c.sandbox_id)
    exec_id = "exec-" + secrets.token_hex(8)
    if await client.protocol() >= SHIM_EXEC_SYNC:
        result = await _in_one_call(client, c.id, exec_id, process, request.timeout)
        if result.get("timed_out"):
            raise _timed_out(list(request.cmd), c.id, request.timeout)
    else:
        result = await _exec_wait_delete(cri, client, c.id, exec_id, process, list(request.cmd), request.timeout)
    out = fit_exec_output(base64.b64decode(result.get("stdout", "")), base64.b64decode(result.get("stderr", "")),
                          stdout_dropped=int(result.get("stdout_dropped", 0)),
                          stderr_dropped=int(result.get("stderr_dropped", 0)))
    return api_pb2.ExecSyncResponse(stdout=out.stdout, stderr=out.stderr, exit_code=int(result.get("exit_status", 0)))


async def _in_one_call(client: ShimClient, container_id: str, exec_id: str, process: dict[str, Any],
                       timeout_s: int) -> dict[str, Any]:
    """The shim runs, waits for, kills at the deadline and forgets the exec: one round trip."""
    params = {"container_id": container_id, "exec_id": exec_id, "process": process,
              "timeout_ms": max(timeout_s, 0) * 1000}
    # The shim keeps the deadline; ours only guards against a shim that stops answering.
    result: dict[str, Any] = await client.call("exec_sync", params,
                                               timeout=timeout_s + KILL_WAIT_S if timeout_s > 0 else None)
    return result


def _timed_out(cmd: list[str], container_id: str, timeout_s: int) -> errors.DeadlineExceeded:
    return errors.DeadlineExceeded(f"command {cmd!r} in container {container_id} timed out after {timeout_s}s (killed)")


async def _exec_wait_delete(cri: CriService, client: ShimClient, container_id: str, exec_id: str, process: dict[str, Any],
                            cmd: list[str], timeout_s: int) -> dict[str, Any]:
    """The same in three calls, for a shim older than exec_sync (started by an older daemon)."""
    await client.call("exec", {"container_id": container_id, "exec_id": exec_id, "process": process, "capture": True})
    timeout = float(timeout_s) if timeout_s > 0 else None
    ref = {"container_id": container_id, "exec_id": exec_id}
    try:
        try:
            result: dict[str, Any] = await client.call("wait", ref, timeout=timeout)
        except errors.DeadlineExceeded:
            with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
                await client.call("kill", {**ref, "signal": 9})
            with contextlib.suppress(errors.CriError):
                await client.call("wait", ref, timeout=KILL_WAIT_S)
            raise _timed_out(cmd, container_id, timeout_s) from None
    finally:
        # The answer need not wait for the shim to drop its record of the exec.
        cri.chore(_forget_exec(client, container_id, exec_id), f"delete exec {exec_id}")
    return result


async def _forget_exec(client: ShimClient, container_id: str, exec_id: str) -> None:
    with contextlib.suppress(errors.CriError):
        await client.call("delete", {"container_id": container_id, "exec_id": exec_id})

"""ExecSync: run a command in a container, capture its output, with a timeout.

The process is the container's own (config.json's env, cwd, user,
capabilities, ...) with the command's argv and no terminal.  Output is
captured by the shim, at most 16 MiB per stream, and trimmed so that the
reply fits in one CRI message (message_size.py).  On timeout the process is
SIGKILLed and the call fails with DeadlineExceeded, which is what kubelet's
exec probes expect for a timed-out probe (ExecProbeTimeout).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from typing import Any

from cri_api.v1 import api_pb2

from .. import errors
from ..message_size import fit_exec_output
from ..oci.process_args import check_exec_argv
from .cri_service import CriService

KILL_WAIT_S = 10.0


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
    await client.call("exec", {"container_id": c.id, "exec_id": exec_id, "process": process, "capture": True})
    timeout = float(request.timeout) if request.timeout > 0 else None
    try:
        try:
            result = await client.call("wait", {"container_id": c.id, "exec_id": exec_id}, timeout=timeout)
        except errors.DeadlineExceeded:
            with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
                await client.call("kill", {"container_id": c.id, "exec_id": exec_id, "signal": 9})
            with contextlib.suppress(errors.CriError):
                await client.call("wait", {"container_id": c.id, "exec_id": exec_id}, timeout=KILL_WAIT_S)
            raise errors.DeadlineExceeded(
                f"command {list(request.cmd)!r} in container {c.id} timed out after {request.timeout}s (killed)"
            ) from None
    finally:
        # The answer need not wait for the shim to drop its record of the exec.
        cri.chore(_forget_exec(client, c.id, exec_id), f"delete exec {exec_id}")
    out = fit_exec_output(base64.b64decode(result.get("stdout", "")), base64.b64decode(result.get("stderr", "")),
                          stdout_dropped=int(result.get("stdout_dropped", 0)),
                          stderr_dropped=int(result.get("stderr_dropped", 0)))
    return api_pb2.ExecSyncResponse(stdout=out.stdout, stderr=out.stderr, exit_code=int(result.get("exit_status", 0)))


async def _forget_exec(client: Any, container_id: str, exec_id: str) -> None:
    with contextlib.suppress(errors.CriError):
        await client.call("delete", {"container_id": container_id, "exec_id": exec_id})

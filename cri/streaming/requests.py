"""Validation of the CRI's streaming requests (pure).

What is checked here is what can be checked on the request alone; whether the
container exists and runs is the daemon's business (NotFound /
FailedPrecondition) before it asks the stream server for a URL.  Errors are
``InvalidArgument`` naming the CRI field, like every other RPC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..errors import InvalidArgument
from ..oci.process_args import check_exec_argv


@dataclass(frozen=True, slots=True)
class ExecParams:
    container_id: str
    cmd: tuple[str, ...]
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclass(frozen=True, slots=True)
class AttachParams:
    container_id: str
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool


@dataclass(frozen=True, slots=True)
class PortForwardParams:
    sandbox_id: str
    ports: tuple[int, ...]   # empty: any port the client names


class _StdioRequest(Protocol):
    """ExecRequest and AttachRequest alike (the proto messages fit)."""
    @property
    def container_id(self) -> str: ...
    @property
    def tty(self) -> bool: ...
    @property
    def stdin(self) -> bool: ...
    @property
    def stdout(self) -> bool: ...
    @property
    def stderr(self) -> bool: ...


def _check_stdio(req: _StdioRequest) -> None:
    if not req.container_id:
        raise InvalidArgument("container_id: must not be empty")
    if req.tty and req.stderr:
        # With a tty both outputs are the one pty: stderr cannot be separate.
        raise InvalidArgument("stderr: tty and stderr cannot both be true")
    if not (req.stdin or req.stdout or req.stderr):
        raise InvalidArgument("stdin/stdout/stderr: at least one must be true")


def validate_exec(req: _StdioRequest, cmd: list[str] | tuple[str, ...]) -> ExecParams:
    _check_stdio(req)
    check_exec_argv(cmd, "cmd")
    return ExecParams(req.container_id, tuple(cmd), req.tty, req.stdin, req.stdout, req.stderr)


def validate_attach(req: _StdioRequest) -> AttachParams:
    _check_stdio(req)
    return AttachParams(req.container_id, req.tty, req.stdin, req.stdout, req.stderr)


def validate_port_forward(sandbox_id: str, ports: list[int] | tuple[int, ...]) -> PortForwardParams:
    if not sandbox_id:
        raise InvalidArgument("pod_sandbox_id: must not be empty")
    for i, port in enumerate(ports):
        if not 1 <= port <= 65535:
            raise InvalidArgument(f"port[{i}]: {port} is not a TCP port (1-65535)")
    return PortForwardParams(sandbox_id, tuple(ports))

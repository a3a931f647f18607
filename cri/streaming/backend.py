"""What the streaming server needs from the daemon.

The daemon implements ``StreamBackend`` (through the shim: runtime exec with
the pty over --console-socket, attach to the stdio the shim holds, a dial into
the pod's netns via ``netns_dial``).  The server only speaks protocols.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class ProcessIO(Protocol):
    """One running process's stdio, as the backend gives it.

    read_stdout/read_stderr return b"" at EOF (and at once when that stream was
    not asked for).  ``wait`` returns the exit code (128+signal for a signal).
    ``cancel`` is called when the client went away before the process ended:
    an exec process is killed, an attach just detaches (and stdin_once closes
    the container's stdin).  It may be called after ``wait`` returned and must
    then do nothing.
    """

    async def write_stdin(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    async def read_stdout(self) -> bytes: ...
    async def read_stderr(self) -> bytes: ...
    async def resize(self, width: int, height: int) -> None: ...
    async def wait(self) -> int: ...
    async def cancel(self) -> None: ...


class StreamBackend(Protocol):
    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool,
                   stdout: bool, stderr: bool) -> ProcessIO: ...

    async def attach(self, container_id: str, *, tty: bool, stdin: bool, stdout: bool,
                     stderr: bool) -> ProcessIO: ...

    async def port_forward(self, sandbox_id: str,
                           port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...

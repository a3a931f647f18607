"""Typed errors of the runtime.

Every error says what was being done (``op``), to what (``target``: a path,
a container id, a config field) and why (``errno`` or a cause chained with
``raise ... from err``).  The CLI turns any of them into exit code 1 and one
log line; the CRI daemon maps the same classes to gRPC codes in its own single
table.  Nothing is ever classified by its message text.
"""

from __future__ import annotations

import errno as _errno

from . import leanos as os


class RuntimeFault(Exception):
    """Base class: an operation on a target failed."""

    def __init__(self, op: str, target: str = "", detail: str = "", err: int = 0) -> None:
        self.op = op
        self.target = target
        self.detail = detail
        self.errno = err
        super().__init__(self.message())

    def message(self) -> str:
        parts = [self.op]
        if self.target:
            parts.append(self.target)
        text = " ".join(parts)
        if self.detail:
            text += ": " + self.detail
        if self.errno:
            text += f": {os.strerror(self.errno)} ({_errno.errorcode.get(self.errno, self.errno)})"
        return text


class InvalidArgument(RuntimeFault):
    """The caller's input is wrong: a flag, an id, a signal name."""


class InvalidSpec(InvalidArgument):
    """config.json asks for something malformed; ``target`` is the field path
    (for example ``linux.namespaces[2].type``)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__("invalid config.json field", field, detail)
        self.field = field


class NotFound(RuntimeFault):
    """The container (or file) the caller names does not exist."""


class AlreadyExists(RuntimeFault):
    """A container with that id exists already."""


class FailedPrecondition(RuntimeFault):
    """The container is in a state where the call is not allowed."""


class Unsupported(RuntimeFault):
    """The kernel or this build cannot do what was asked (systemd cgroups,
    an AppArmor profile without AppArmor, ...)."""


class SyscallError(RuntimeFault):
    """A system call failed; carries the errno."""

    def __init__(self, op: str, target: str = "", err: int = 0, detail: str = "") -> None:
        super().__init__(op, target, detail, err)


class HookFailed(RuntimeFault):
    """An OCI hook exited non-zero or timed out."""

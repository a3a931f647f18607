"""Typed errors of the runtime.

Every error says what was being done (``op``), to what (``target``: a path,
a container id, a config field) and why (``errno`` or a cause chained with
``raise ... from err``).  The CLI turns any of them into exit code 1 and one
log line; the CRI daemon maps the same classes to gRPC codes in its own single
table.  Nothing is ever classified by its message text.
"""

from __future__ import annotations

import errno as _errno

from .lean import leanos

# How much of a value an error echoes.  Targets and details can carry what a
# caller sent (an argv string, a path); echoed whole, one hostile request
# made megabyte-long log lines, and an init's error report that no longer fit
# in one message of the parent-init channel (runtime/sync.py).
ECHO_LIMIT = 200
DETAIL_LIMIT = 1000


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` as an error may echo it: whole when short, else its first
    ``limit`` characters and its length.  A text at most 32 characters over
    the limit is kept whole: that is what shortening adds, so an error
    rebuilt from a shortened one (sync.py re-raises the init's) is unchanged."""
    if len(text) <= limit + 32:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class RuntimeFault(Exception):
    """Base class: an operation on a target failed."""

    def __init__(self, op: str, target: str = "", detail: str = "", err: int = 0) -> None:
        self.op = op
        self.target = shorten(target)
        self.detail = shorten(detail, DETAIL_LIMIT)
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
            text += f": {leanos.strerror(self.errno)} ({_errno.errorcode.get(self.errno, self.errno)})"
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

"""Domain errors of the CRI daemon.

Every cri module raises one of these; a message names the object it is about
(an image reference, a digest, a file, a config field) and never carries a
credential.  Exactly one place turns them into gRPC status codes: the table
in ``dockyard.cri.server.instrument``.  Nothing is classified by message text.

A pull failure is a ``PullError``: besides its message it carries ``reason``
(the label of the pull-failure metric) and ``code`` (the name of the error
class whose gRPC code it maps to), because one reason always belongs to one
code group but the reason is what operators count.
"""

from __future__ import annotations

# What an error echoes of a caller's value: its head and its length (runtime/kernel/errors.py).
from dockyard.runtime.kernel.errors import ECHO_LIMIT as ECHO_LIMIT
from dockyard.runtime.kernel.errors import shorten as shorten


class CriError(Exception):
    """Base class: a CRI operation failed; ``message`` says on what."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CriError):
    """The image, blob, snapshot or container named does not exist."""


class InvalidArgument(CriError):
    """The caller's input is malformed: a reference, a filter, a config value."""


class AlreadyExists(CriError):
    """An object with that name or id exists already."""


class FailedPrecondition(CriError):
    """The object is in a state where the call is not allowed."""


class Unauthenticated(CriError):
    """A registry refused the credentials (or asked for some and got none)."""


class PermissionDenied(CriError):
    """The caller or the daemon may not do this."""


class Unavailable(CriError):
    """A dependency (registry, the daemon itself during startup) is not reachable yet."""


class DeadlineExceeded(CriError):
    """An operation ran past its timeout."""


class ResourceExhausted(CriError):
    """Out of disk, memory or a configured limit."""


class Internal(CriError):
    """A broken invariant: the daemon's own fault."""


class Cancelled(CriError):
    """The operation was cancelled (client gone, daemon shutting down)."""


class Unimplemented(CriError):
    """The daemon does not serve this RPC (yet); the message says which."""


# reason -> name of the CriError class whose gRPC code the failure carries
# by default (a caller may pass another code group).
PULL_REASON_CODES: dict[str, str] = {
    "not_found": "NotFound",
    "unauthorized": "Unauthenticated",
    "digest_mismatch": "InvalidArgument",
    "bad_media_type": "InvalidArgument",
    "bad_layer": "InvalidArgument",
    "registry_error": "Unavailable",
    "timeout": "DeadlineExceeded",
    "no_progress": "DeadlineExceeded",
    "cancelled": "Cancelled",
}
PULL_REASONS = frozenset(PULL_REASON_CODES)
PULL_CODES = frozenset(
    {"NotFound", "Unauthenticated", "InvalidArgument", "Unavailable", "DeadlineExceeded", "Cancelled"}
)


class PullError(CriError):
    """An image pull failed.

    ``reason`` is one of ``PULL_REASONS`` (the pull-failure metric's label);
    ``code`` is one of ``PULL_CODES`` and defaults to the reason's group in
    ``PULL_REASON_CODES``.
    """

    def __init__(self, message: str, reason: str, code: str | None = None) -> None:
        if reason not in PULL_REASONS:
            raise ValueError(f"unknown pull failure reason {reason!r}")
        chosen = code if code is not None else PULL_REASON_CODES[reason]
        if chosen not in PULL_CODES:
            raise ValueError(f"unknown pull error code group {chosen!r}")
        super().__init__(message)
        self.reason = reason
        self.code = chosen

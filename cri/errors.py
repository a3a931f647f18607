"""Domain errors raised by every module of the CRI daemon.

Each error names the object it is about (image reference, digest, file, field)
in its message. Only cri/server/instrument.py maps these classes to gRPC
status codes, in one table; nothing else classifies errors, and nothing
classifies them by message text. Messages never carry credentials.
"""

from __future__ import annotations


class CriError(Exception):
    """Base of the daemon's domain errors; the message names the object."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CriError):
    """The named object does not exist."""


class InvalidArgument(CriError):
    """The caller's input (reference, config field, file) is malformed."""


class AlreadyExists(CriError):
    """The named object exists already."""


class FailedPrecondition(CriError):
    """The object is in a state that does not allow the operation."""


class Unauthenticated(CriError):
    """Credentials were missing or rejected."""


class PermissionDenied(CriError):
    """Credentials were accepted but do not allow the operation."""


class Unavailable(CriError):
    """A dependency (registry, daemon startup) cannot serve now; retry may help."""


class DeadlineExceeded(CriError):
    """The operation ran out of time."""


class ResourceExhausted(CriError):
    """A limit (disk, quota, size) was hit."""


class Internal(CriError):
    """A bug or broken invariant inside the daemon."""


class Cancelled(CriError):
    """The operation was cancelled (caller went away, daemon shutting down)."""


PULL_REASONS = frozenset(
    {
        "not_found",
        "unauthorized",
        "digest_mismatch",
        "bad_media_type",
        "registry_error",
        "timeout",
        "no_progress",
        "bad_layer",
        "cancelled",
    }
)

# The gRPC code group each pull reason falls into by default.
_REASON_CODES: dict[str, str] = {
    "not_found": "NotFound",
    "unauthorized": "Unauthenticated",
    "digest_mismatch": "InvalidArgument",
    "bad_media_type": "InvalidArgument",
    "registry_error": "Unavailable",
    "timeout": "DeadlineExceeded",
    "no_progress": "DeadlineExceeded",
    "bad_layer": "InvalidArgument",
    "cancelled": "Cancelled",
}


class PullError(CriError):
    """An image pull failed.

    `reason` is the metrics label (one of PULL_REASONS); `code` names the
    gRPC code group ("NotFound", "Unauthenticated", "InvalidArgument",
    "Unavailable", "DeadlineExceeded", "Cancelled").
    """

    def __init__(self, message: str, *, reason: str, code: str | None = None) -> None:
        if reason not in PULL_REASONS:
            raise ValueError(f"unknown pull failure reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.code = code if code is not None else _REASON_CODES[reason]

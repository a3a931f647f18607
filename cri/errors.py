"""Domain errors raised by every dockyardd module.

Each message names the object it is about (image reference, digest, file,
config field). Only ``cri/server/instrument.py`` maps these classes to gRPC
status codes, in one table; nothing is classified by message text.
Messages never carry credentials.
"""

from __future__ import annotations


class CriError(Exception):
    """Base of every dockyardd domain error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CriError):
    """The named object does not exist."""


class InvalidArgument(CriError):
    """The caller's input is malformed (reference, digest, config value, tar member)."""


class AlreadyExists(CriError):
    """The named object exists already."""


class FailedPrecondition(CriError):
    """The object is in a state where the operation is not allowed."""


class Unauthenticated(CriError):
    """The registry rejected or required credentials."""


class PermissionDenied(CriError):
    """The caller is authenticated but not allowed."""


class Unavailable(CriError):
    """A dependency (registry, daemon startup) is not reachable or not ready."""


class DeadlineExceeded(CriError):
    """A timeout expired."""


class ResourceExhausted(CriError):
    """A resource limit (disk, memory, quota) was hit."""


class Internal(CriError):
    """A bug or an unexpected failure inside dockyardd."""


class Cancelled(CriError):
    """The operation was cancelled (client went away, daemon stopping)."""


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

PULL_CODES = frozenset(
    {"NotFound", "Unauthenticated", "InvalidArgument", "Unavailable", "DeadlineExceeded", "Cancelled"}
)


class PullError(CriError):
    """An image pull failed.

    ``reason`` is the metrics label (one of PULL_REASONS); ``code`` names the
    gRPC code group (one of PULL_CODES) that instrument.py maps to a status.
    """

    def __init__(self, message: str, *, reason: str, code: str) -> None:
        if reason not in PULL_REASONS:
            raise ValueError(f"unknown pull failure reason {reason!r}")
        if code not in PULL_CODES:
            raise ValueError(f"unknown pull error code group {code!r}")
        super().__init__(message)
        self.reason = reason
        self.code = code

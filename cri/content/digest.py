"""Digest strings ("sha256:<64 lowercase hex>") parsed and checked; no I/O.

Only sha256 is accepted: every blob this daemon stores is named by sha256
(OCI image spec's registered algorithms are sha256 and sha512, and registries
serve sha256 in practice); anything else is refused up front rather than
stored under a name we could not verify.
"""

from __future__ import annotations

import re

from ..errors import InvalidArgument

ALGORITHM = "sha256"

_HEX = re.compile(r"[0-9a-f]{64}")


def digest_hex(digest: str) -> str:
    """Return the hex part of a sha256 digest, or raise InvalidArgument naming it."""
    algorithm, sep, hexpart = digest.partition(":")
    if not sep:
        raise InvalidArgument(f"digest {digest!r}: missing the '<algorithm>:' prefix")
    if algorithm != ALGORITHM:
        raise InvalidArgument(f"digest {digest!r}: unsupported algorithm {algorithm!r} (only sha256)")
    if not _HEX.fullmatch(hexpart):
        raise InvalidArgument(f"digest {digest!r}: not 64 lowercase hex characters")
    return hexpart


def is_digest(text: str) -> bool:
    """True if ``text`` is a well-formed sha256 digest."""
    algorithm, sep, hexpart = text.partition(":")
    return bool(sep) and algorithm == ALGORITHM and _HEX.fullmatch(hexpart) is not None


def from_hex(hexpart: str) -> str:
    """"sha256:" + hexpart, checking the hex."""
    if not _HEX.fullmatch(hexpart):
        raise InvalidArgument(f"digest hex {hexpart!r}: not 64 lowercase hex characters")
    return f"{ALGORITHM}:{hexpart}"

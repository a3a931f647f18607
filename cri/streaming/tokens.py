"""Single-use tokens that stand for one cached streaming request.

Exec/Attach/PortForward return a URL holding a token; the first HTTP request
that presents it takes the cached request out of the cache (so a second one,
even concurrent, finds nothing), and a token older than its lifetime is as
good as unknown.  Both answers are the same 404, so a client cannot tell a
used token from one that never existed.

Tokens are 32 bytes from ``secrets`` (urlsafe base64): unguessable, so the URL
itself is the credential, as with the kubelet's streaming server.  The clock is
injected so tests need not sleep.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_TTL = 60.0
DEFAULT_MAX_ENTRIES = 10_000


class TokenCacheFull(Exception):
    """Too many outstanding tokens; the caller should answer ResourceExhausted."""


@dataclass(frozen=True, slots=True)
class _Entry(Generic[T]):
    value: T
    expires_at: float


class TokenCache(Generic[T]):
    def __init__(self, ttl: float = DEFAULT_TTL, *, max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl <= 0:
            raise ValueError(f"token lifetime must be positive, got {ttl}")
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, _Entry[T]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def insert(self, value: T) -> str:
        """Cache ``value``; return a fresh token for it."""
        self._sweep()
        if len(self._entries) >= self.max_entries:
            raise TokenCacheFull(f"{len(self._entries)} streaming tokens outstanding")
        token = secrets.token_urlsafe(32)
        self._entries[token] = _Entry(value, self._clock() + self.ttl)
        return token

    def consume(self, token: str) -> T | None:
        """The cached value, removed; None if unknown, used or expired."""
        entry = self._entries.pop(token, None)
        if entry is None or self._clock() >= entry.expires_at:
            return None
        return entry.value

    def _sweep(self) -> None:
        now = self._clock()
        for tok in [t for t, e in self._entries.items() if now >= e.expires_at]:
            del self._entries[tok]

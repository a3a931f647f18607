"""Single-use streaming tokens: served once, expire, unknown is None."""

from __future__ import annotations

import pytest

from dockyard.cri.streaming.tokens import TokenCache, TokenCacheFull


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("steps,expect", [
    (["take"], ["v"]),
    (["take", "take"], ["v", None]),                 # used
    (["advance 59.9", "take"], ["v"]),
    (["advance 60", "take"], [None]),                # expired at exactly the ttl
    (["take-unknown"], [None]),
])
def test_consume(steps: list[str], expect: list[str | None]) -> None:
    clock = Clock()
    cache: TokenCache[str] = TokenCache(60.0, clock=clock)
    tok = cache.insert("v")
    got: list[str | None] = []
    for step in steps:
        if step.startswith("advance"):
            clock.now += float(step.split()[1])
        elif step == "take":
            got.append(cache.consume(tok))
        else:
            got.append(cache.consume(tok + "x"))
    assert got == expect


def test_tokens_are_unique_urlsafe_and_long() -> None:
    cache: TokenCache[int] = TokenCache()
    toks = {cache.insert(i) for i in range(500)}
    assert len(toks) == 500
    assert all(len(t) >= 40 and all(c.isalnum() or c in "-_" for c in t) for t in toks)


def test_expired_entries_are_swept_and_cap_enforced() -> None:
    clock = Clock()
    cache: TokenCache[int] = TokenCache(1.0, max_entries=3, clock=clock)
    for i in range(3):
        cache.insert(i)
    with pytest.raises(TokenCacheFull):
        cache.insert(9)
    clock.now += 2
    cache.insert(4)
    assert len(cache) == 1


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenCache(0)


def test_session_metrics_series() -> None:
    """The Prometheus adapter counts opened/failed and tracks active, by kind."""
    from prometheus_client import CollectorRegistry, generate_latest

    from dockyard.cri.streaming.session_metrics import PrometheusSessionMetrics

    reg = CollectorRegistry()
    m = PrometheusSessionMetrics(reg)
    m.opened("exec")
    m.opened("exec")
    m.closed("exec")
    m.failed("portforward", "bad_token")
    text = generate_latest(reg).decode()
    assert 'dockyard_streaming_sessions_active{kind="exec"} 1.0' in text
    assert 'dockyard_streaming_sessions_opened_total{kind="exec"} 2.0' in text
    assert 'dockyard_streaming_sessions_failed_total{kind="portforward",reason="bad_token"} 1.0' in text

"""Prometheus metrics of streaming sessions, by kind (exec, attach, portforward).

``dockyard_streaming_sessions_active{kind}`` (gauge),
``dockyard_streaming_sessions_opened_total{kind}`` and
``dockyard_streaming_sessions_failed_total{kind,reason}``, where reason is
one of: bad_token, protocol, stream_timeout, backend, client_gone,
connection.  Registered on the daemon's registry, so they appear on its
metrics endpoint next to the RPC metrics.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

METRIC_NAMES = (
    "dockyard_streaming_sessions_active",
    "dockyard_streaming_sessions_opened_total",
    "dockyard_streaming_sessions_failed_total",
)


class PrometheusSessionMetrics:
    """The server's ``SessionMetrics`` hooks, as Prometheus series."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.active = Gauge("dockyard_streaming_sessions_active", "Streaming sessions running now, by kind.",
                            ["kind"], registry=registry)
        self.opened_total = Counter("dockyard_streaming_sessions_opened",
                                    "Streaming sessions opened (a valid token was presented), by kind.",
                                    ["kind"], registry=registry)
        self.failed_total = Counter("dockyard_streaming_sessions_failed",
                                    "Streaming sessions that ended in an error, by kind and reason.",
                                    ["kind", "reason"], registry=registry)

    def opened(self, kind: str) -> None:
        self.opened_total.labels(kind).inc()
        self.active.labels(kind).inc()

    def closed(self, kind: str) -> None:
        self.active.labels(kind).dec()

    def failed(self, kind: str, reason: str) -> None:
        self.failed_total.labels(kind, reason).inc()

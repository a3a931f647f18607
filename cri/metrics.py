"""dockyardd's Prometheus metrics.

Naming (decided here, documented in the report and in ``METRIC_NAMES``):

* RPCs follow containerd, whose CRI server is wrapped by go-grpc-prometheus:
  ``dockyard_grpc_server_handled_total`` and
  ``dockyard_grpc_server_handling_seconds``, labelled ``method`` (the CRI
  RPC name, e.g. ``PullImage``) and ``grpc_code`` (``OK``, ``NOT_FOUND``...).
  containerd has no separate error counter; CRI-O does
  (``container_runtime_crio_operations_errors_total``), so
  ``dockyard_grpc_server_errors_total`` counts the non-OK calls with the same
  labels, which keeps alert rules simple.
* Image pulls follow CRI-O's ``container_runtime_crio_image_pulls_*``:
  ``dockyard_image_pulls_in_progress`` (gauge),
  ``dockyard_image_pulls_success_total``,
  ``dockyard_image_pulls_failure_total{reason}`` (reason from PullError),
  ``dockyard_image_pulls_bytes_total`` (bytes fetched from registries),
  ``dockyard_image_pull_duration_seconds`` (histogram, pull + unpack) and
  ``dockyard_image_layer_reuse_total`` (layers already present, not fetched).

* Streaming sessions (Exec, Attach, PortForward on the streaming server),
  by kind (``exec``, ``attach``, ``portforward``):
  ``dockyard_streaming_sessions_active`` (gauge),
  ``dockyard_streaming_sessions_opened_total`` and
  ``dockyard_streaming_sessions_failed_total{kind,reason}``
  (cri/streaming/session_metrics.py; ``Metrics.streaming`` is the server's hook).

Each ``Metrics`` owns its own ``CollectorRegistry`` so tests can make many.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from dockyard.cri.streaming import session_metrics

METRIC_NAMES = (
    "dockyard_grpc_server_handled_total",
    "dockyard_grpc_server_errors_total",
    "dockyard_grpc_server_handling_seconds",
    "dockyard_image_pulls_in_progress",
    "dockyard_image_pulls_success_total",
    "dockyard_image_pulls_failure_total",
    "dockyard_image_pulls_bytes_total",
    "dockyard_image_pull_duration_seconds",
    "dockyard_image_layer_reuse_total",
    *session_metrics.METRIC_NAMES,
)

_RPC_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_PULL_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    """All of the daemon's metrics; also the Puller's ``PullMetrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # prometheus_client appends _total to counters itself.
        self.rpc_handled = Counter(
            "dockyard_grpc_server_handled", "CRI RPCs completed, by method and gRPC code.",
            ["method", "grpc_code"], registry=r,
        )
        self.rpc_errors = Counter(
            "dockyard_grpc_server_errors", "CRI RPCs that returned a non-OK code.",
            ["method", "grpc_code"], registry=r,
        )
        self.rpc_seconds = Histogram(
            "dockyard_grpc_server_handling_seconds", "CRI RPC latency.",
            ["method", "grpc_code"], buckets=_RPC_BUCKETS, registry=r,
        )
        self.pulls_in_progress = Gauge(
            "dockyard_image_pulls_in_progress", "Image pulls running now.", registry=r,
        )
        self.pull_success = Counter(
            "dockyard_image_pulls_success", "Image pulls that completed.", registry=r,
        )
        self.pull_failure = Counter(
            "dockyard_image_pulls_failure", "Image pulls that failed, by reason.",
            ["reason"], registry=r,
        )
        self.pull_bytes = Counter(
            "dockyard_image_pulls_bytes", "Bytes fetched from registries.", registry=r,
        )
        self.pull_seconds = Histogram(
            "dockyard_image_pull_duration_seconds", "Image pull time, download and unpack.",
            buckets=_PULL_BUCKETS, registry=r,
        )
        self.layer_reuse = Counter(
            "dockyard_image_layer_reuse", "Layers found already present and not fetched.",
            registry=r,
        )
        self.streaming = session_metrics.PrometheusSessionMetrics(r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- RPCs (instrument.py) ---
    def rpc_done(self, method: str, grpc_code: str, seconds: float) -> None:
        self.rpc_handled.labels(method, grpc_code).inc()
        self.rpc_seconds.labels(method, grpc_code).observe(seconds)
        if grpc_code != "OK":
            self.rpc_errors.labels(method, grpc_code).inc()

    # --- pulls (server/images.py and the registry Puller) ---
    def pull_started(self) -> None:
        self.pulls_in_progress.inc()

    def pull_finished(self, seconds: float, failure_reason: str | None) -> None:
        self.pulls_in_progress.dec()
        if failure_reason is None:
            self.pull_success.inc()
            self.pull_seconds.observe(seconds)
        else:
            self.pull_failure.labels(failure_reason).inc()

    def bytes_pulled(self, count: int) -> None:
        self.pull_bytes.inc(count)

    def layer_reused(self) -> None:
        self.layer_reuse.inc()

    # --- HTTP endpoint ---
    def serve(self, host: str, port: int) -> None:
        """Serve /metrics from a daemon thread (prometheus_client's WSGI server)."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)

    @property
    def port(self) -> int:
        assert self._server is not None, "metrics server not started"
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

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

* Pod and container start, as kubelet's ``kubelet_pod_start_*`` but seen
  from the runtime: ``dockyard_pod_start_duration_seconds{handler}``
  (RunPodSandbox received to the sandbox ready) and
  ``dockyard_container_start_duration_seconds{handler}`` (CreateContainer
  received to the container running, StartContainer's answer).
* What the node holds, counted at scrape time from the stores:
  ``dockyard_pods{state}`` (ready, notready), ``dockyard_containers{state}``
  (created, running, exited, unknown) and ``dockyard_shims`` (connected
  shims); ``dockyard_shim_starts_total`` and
  ``dockyard_shim_restarts_total`` (event streams re-established to a shim
  that lives on: after a daemon restart or a lost connection; a dockyard
  shim is never restarted in place, it outlives the daemon instead) and
  ``dockyard_shim_deaths_total`` (a shim found dead while its pod existed).
* Runtime calls (through the pod's shim, which runs the OCI runtime):
  ``dockyard_runtime_call_duration_seconds{verb,handler}`` and
  ``dockyard_runtime_call_errors_total{verb,handler}``; verbs are the shim
  protocol's methods (create, start, exec, kill, wait, delete, ...).
* CNI: ``dockyard_cni_operation_duration_seconds{operation}`` (ADD, DEL)
  and ``dockyard_cni_operation_failures_total{operation}``.
* The daemon's own process: prometheus_client's ``process_*`` (CPU seconds,
  resident and virtual memory, open fds, start time).

Label values are bounded: RPC and protocol method names, gRPC codes, state
names, the configured runtime handlers, registry host names and failure
reasons; never a pod or container name or id.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

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
    "dockyard_pod_start_duration_seconds",
    "dockyard_container_start_duration_seconds",
    "dockyard_pods",
    "dockyard_containers",
    "dockyard_shims",
    "dockyard_shim_starts_total",
    "dockyard_shim_restarts_total",
    "dockyard_shim_deaths_total",
    "dockyard_runtime_call_duration_seconds",
    "dockyard_runtime_call_errors_total",
    "dockyard_cni_operation_duration_seconds",
    "dockyard_cni_operation_failures_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    *session_metrics.METRIC_NAMES,
)

_RPC_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
_PULL_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_START_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0)
POD_STATES = ("ready", "notready")
CONTAINER_STATES = ("created", "running", "exited", "unknown")


@dataclass(frozen=True, slots=True)
class NodeCounts:
    """What the node holds right now (cri_service.CriService.node_counts)."""

    pods: Mapping[str, int]
    containers: Mapping[str, int]
    shims: int


class _NodeCollector(Collector):
    """Gauges computed when Prometheus scrapes, from the daemon's own stores:
    a count kept up to date at every transition could drift; this cannot."""

    def __init__(self, source: Callable[[], NodeCounts | None]) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        counts = self.source()
        pods = GaugeMetricFamily("dockyard_pods", "Pod sandboxes by state.", labels=["state"])
        containers = GaugeMetricFamily("dockyard_containers", "Containers by state.", labels=["state"])
        shims = GaugeMetricFamily("dockyard_shims", "Shims the daemon is connected to (one per pod).")
        if counts is not None:
            for state in POD_STATES:
                pods.add_metric([state], counts.pods.get(state, 0))
            for state in CONTAINER_STATES:
                containers.add_metric([state], counts.containers.get(state, 0))
            shims.add_metric([], counts.shims)
        return [pods, containers, shims]


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
            "dockyard_image_pulls_bytes", "Bytes fetched from registries, by the image's registry.",
            ["registry"], registry=r,
        )
        self.pull_seconds = Histogram(
            "dockyard_image_pull_duration_seconds", "Image pull time, download and unpack, by registry.",
            ["registry"], buckets=_PULL_BUCKETS, registry=r,
        )
        self.layer_reuse = Counter(
            "dockyard_image_layer_reuse", "Layers found already present and not fetched.",
            registry=r,
        )
        self.streaming = session_metrics.PrometheusSessionMetrics(r)
        self.pod_start_seconds = Histogram(
            "dockyard_pod_start_duration_seconds", "RunPodSandbox received to the pod sandbox ready.",
            ["handler"], buckets=_START_BUCKETS, registry=r,
        )
        self.container_start_seconds = Histogram(
            "dockyard_container_start_duration_seconds",
            "CreateContainer received to the container running (StartContainer answered).",
            ["handler"], buckets=_START_BUCKETS, registry=r,
        )
        self.shim_starts = Counter("dockyard_shim_starts", "Shims started (one per pod).", registry=r)
        self.shim_restarts = Counter(
            "dockyard_shim_restarts",
            "Connections re-established to a shim that lived on (after a daemon restart or a lost stream).",
            registry=r,
        )
        self.shim_deaths = Counter("dockyard_shim_deaths", "Shims found dead while their pod existed.", registry=r)
        self.runtime_seconds = Histogram(
            "dockyard_runtime_call_duration_seconds",
            "Calls to a pod's shim and the OCI runtime behind it, by verb and runtime handler.",
            ["verb", "handler"], buckets=_CALL_BUCKETS, registry=r,
        )
        self.runtime_errors = Counter(
            "dockyard_runtime_call_errors", "Calls to a pod's shim that failed, by verb and runtime handler.",
            ["verb", "handler"], registry=r,
        )
        self.cni_seconds = Histogram(
            "dockyard_cni_operation_duration_seconds", "CNI operations on a pod's network (all plugins).",
            ["operation"], buckets=_CALL_BUCKETS, registry=r,
        )
        self.cni_failures = Counter(
            "dockyard_cni_operation_failures", "CNI operations that failed.", ["operation"], registry=r,
        )
        self._node_source: Callable[[], NodeCounts | None] = lambda: None
        r.register(_NodeCollector(lambda: self._node_source()))
        ProcessCollector(registry=r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        # Each method's OK series, looked up once: labels() costs more than
        # the inc and observe, and kubelet's polled calls nearly all end OK.
        self._rpc_ok: dict[str, tuple[Counter, Histogram]] = {}

    # --- RPCs (instrument.py) ---
    def rpc_done(self, method: str, grpc_code: str, seconds: float) -> None:
        if grpc_code == "OK":
            ok = self._rpc_ok.get(method)
            if ok is None:
                ok = self._rpc_ok[method] = (self.rpc_handled.labels(method, "OK"),
                                             self.rpc_seconds.labels(method, "OK"))
            ok[0].inc()
            ok[1].observe(seconds)
            return
        self.rpc_handled.labels(method, grpc_code).inc()
        self.rpc_seconds.labels(method, grpc_code).observe(seconds)
        self.rpc_errors.labels(method, grpc_code).inc()

    # --- pulls (server/images.py and the registry Puller) ---
    def pull_started(self) -> None:
        self.pulls_in_progress.inc()

    def pull_finished(self, seconds: float, failure_reason: str | None, registry: str = "") -> None:
        self.pulls_in_progress.dec()
        if failure_reason is None:
            self.pull_success.inc()
            self.pull_seconds.labels(registry).observe(seconds)
        else:
            self.pull_failure.labels(failure_reason).inc()

    def bytes_pulled(self, count: int, registry: str = "") -> None:
        self.pull_bytes.labels(registry).inc(count)

    # --- pods, containers, shims, runtime calls, CNI (cri/server, cri/shims.py) ---
    def pod_started(self, handler: str, seconds: float) -> None:
        self.pod_start_seconds.labels(handler).observe(seconds)

    def container_started(self, handler: str, seconds: float) -> None:
        self.container_start_seconds.labels(handler).observe(seconds)

    def shim_started(self) -> None:
        self.shim_starts.inc()

    def shim_restarted(self) -> None:
        self.shim_restarts.inc()

    def shim_died(self) -> None:
        self.shim_deaths.inc()

    def runtime_call(self, verb: str, handler: str, seconds: float, ok: bool) -> None:
        self.runtime_seconds.labels(verb, handler).observe(seconds)
        if not ok:
            self.runtime_errors.labels(verb, handler).inc()

    def cni_operation(self, operation: str, seconds: float, ok: bool) -> None:
        self.cni_seconds.labels(operation).observe(seconds)
        if not ok:
            self.cni_failures.labels(operation).inc()

    def count_node(self, source: Callable[[], NodeCounts | None]) -> None:
        """Where the pod/container/shim gauges come from at scrape time."""
        self._node_source = source

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

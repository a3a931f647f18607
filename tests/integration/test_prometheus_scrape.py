"""A real Prometheus (Debian's ``prometheus``) scrapes dockyardd, and what
operators graph arrives with the values the test caused.

Prometheus runs on loopback with a 1 s scrape interval and a scrape config
for the test's dockyardd (deploy/prometheus-scrape.yaml's job, pointed at
the test daemon's port).  The test runs pods with crictl and then polls
Prometheus' HTTP query API until each series shows the expected value, so
it waits for samples, not for a guessed time; the bound (PROMQL_WAIT_S)
only ends a wait that can no longer succeed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from daemon_fixture import REPO, daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_SNIPPET = REPO / "deploy" / "prometheus-scrape.yaml"
PROMQL_WAIT_S = 60.0
PODS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.load(resp)
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])

    def value(self, promql: str) -> float | None:
        """The single value of an instant query that returns one series, else None."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def wait_for(self, promql: str, want: float) -> None:
        deadline = time.monotonic() + PROMQL_WAIT_S
        got = self.value(promql)
        while got != want:
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus: {promql} is {got}, want {want} (waited {PROMQL_WAIT_S:.0f}s)")
            time.sleep(0.2)
            got = self.value(promql)


@pytest.fixture
def prometheus(pods: Pods, tmp_path: Path) -> Iterator[Prometheus]:  # noqa: F811 (pods is a fixture)
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus is missing: hack/apt-packages.txt lists it (make deps installs it)")
    job = yaml.safe_load(SCRAPE_SNIPPET.read_text())["scrape_configs"][0]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{pods.daemon.metrics_port}"]}]
    job["scrape_interval"] = "1s"
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                      "scrape_configs": [job]}))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
                            stdout=log, stderr=log, cwd=tmp_path)
    prom = Prometheus(port)
    try:
        deadline = time.monotonic() + PROMQL_WAIT_S
        while True:
            try:
                with urllib.request.urlopen(f"{prom.base}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.1)
        prom.wait_for('up{job="dockyardd"}', 1)
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_prometheus_scrapes_pod_starts_states_runtime_calls_and_cni(pods: Pods, prometheus: Prometheus) -> None:  # noqa: F811
    """Pods started through CRI show in Prometheus: the pod-start and
    container-start histograms count each start once, pods/containers/shims
    gauges count what runs, runtime calls are labelled by verb and handler,
    CNI ADD and DEL are counted, the process collector reports the daemon;
    pulls are counted by registry; and no label value is a pod or container id."""
    pods.daemon.pull("busybox")
    ids: list[str] = []
    containers: list[str] = []
    for n in range(PODS):
        pod, pod_cfg = pods.run_pod(f"prom{n}")
        cid = pods.crictl("create", pod, pods.write(f"ctr{n}", container_config("c", ["sleep", "600"])), pod_cfg)
        pods.crictl("start", cid)
        ids.append(pod)
        containers.append(cid)
    p = prometheus
    p.wait_for("sum(dockyard_pod_start_duration_seconds_count)", PODS)
    p.wait_for("sum(dockyard_container_start_duration_seconds_count)", PODS)
    p.wait_for('sum(dockyard_pod_start_duration_seconds_count{handler="dockyard-runc"})', PODS)
    p.wait_for('dockyard_pods{state="ready"}', PODS)
    p.wait_for('dockyard_containers{state="running"}', PODS)
    p.wait_for("dockyard_shims", PODS)
    p.wait_for("dockyard_shim_starts_total", PODS)
    p.wait_for('sum(dockyard_grpc_server_handled_total{method="RunPodSandbox",grpc_code="OK"})', PODS)
    # Each pod's pause and its container are created and started in one runtime call each.
    p.wait_for('sum(dockyard_runtime_call_duration_seconds_count{verb="create",handler="dockyard-runc"})', 2 * PODS)
    p.wait_for('sum(dockyard_cni_operation_duration_seconds_count{operation="ADD"})', PODS)
    p.wait_for('sum(dockyard_cni_operation_failures_total{operation="ADD"}) or vector(0)', 0)
    # Pulls by registry: busybox from docker.io (through the test mirror).
    p.wait_for('dockyard_image_pull_duration_seconds_count{registry="docker.io"}', 1)
    p.wait_for('clamp_max(dockyard_image_pulls_bytes_total{registry="docker.io"}, 1)', 1)
    rss = p.value("process_resident_memory_bytes")
    assert rss is not None and rss > 10 << 20, rss
    cpu = p.value("process_cpu_seconds_total")
    assert cpu is not None and cpu > 0, cpu
    # The histogram's buckets are cumulative and end in +Inf = count.
    assert p.value('sum(dockyard_pod_start_duration_seconds_bucket{le="+Inf"})') == PODS

    pods.crictl("stopp", ids[0])
    pods.crictl("rmp", ids[0])
    p.wait_for('dockyard_pods{state="ready"}', PODS - 1)
    p.wait_for('dockyard_containers{state="running"}', PODS - 1)
    p.wait_for("dockyard_shims", PODS - 1)
    # StopPodSandbox DELs; RemovePodSandbox may DEL again (idempotent), so at least one.
    p.wait_for('clamp_max(sum(dockyard_cni_operation_duration_seconds_count{operation="DEL"}), 1)', 1)

    series = p.query('{__name__=~"dockyard_.*|process_.*"}')
    assert series, "no dockyard series in Prometheus"
    secret = set(ids) | set(containers)
    for s in series:
        for name, value in s["metric"].items():
            assert not any(i[:12] in value for i in secret), \
                f"label {name}={value} of {s['metric']['__name__']} names a pod or container"

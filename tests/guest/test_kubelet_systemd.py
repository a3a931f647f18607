"""A standalone kubelet with its defaults on the guest, on dockyardd with the systemd driver.

The host's kubelet scenarios (tests/e2e/test_kubelet.py) run here with what
a node has and the host lacks: cgroup v2, systemd as PID 1, kubelet's own
defaults for everything cgroup-related (no cgroupDriver, cgroupRoot,
cgroupsPerQOS, failCgroupV1 or oomScoreAdj in its config).  kubelet asks
the runtime for its cgroup driver (KEP-4033's RuntimeConfig) and gets
systemd: it makes kubepods.slice and the QoS and pod slices over D-Bus, and
each container is dockyardd's scope in its pod's slice.

Left out of the host's list, for the guest's time budget: the liveness
probe restart (kubelet's restart backoff, nothing cgroup-specific).  The
resource-limits scenario is the v2 one: the host's reads v1 files.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_fixture import Daemon
from guest_daemon import REPO, systemd_daemon  # noqa: F401 (fixture)
from guest_env import run

sys.path.insert(0, str(REPO / "tests" / "e2e"))
import test_kubelet as scenarios  # the host's scenarios, reused
from e2e_endpoint import CRIEndpoint, unmount_under

StaticPod = Callable[[str, dict[str, Any]], str]


@pytest.fixture(scope="module")
def kubelet(systemd_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
            guest_out: Path) -> Iterator[scenarios.Kubelet]:
    state = Path(systemd_daemon.config["state_dir"])
    endpoint = CRIEndpoint("dockyardd-systemd", systemd_daemon.socket, systemd_daemon.log, state)
    tmp = tmp_path_factory.mktemp("kubelet")
    manifests = tmp / "manifests"
    manifests.mkdir()
    healthz = scenarios.free_port()
    config_file, config = scenarios.write_kubelet_config(tmp, endpoint, manifests, healthz)
    argv = scenarios.kubelet_argv(config_file, tmp)
    k = scenarios.Kubelet(endpoint, tmp, manifests, tmp / "kubelet.log", healthz, int(config["readOnlyPort"]), False)
    try:
        with scenarios.running_kubelet(k, argv, 300):
            yield k
    finally:
        if guest_out.is_dir():  # the guest's /tmp dies with it
            shutil.copy(k.log, guest_out / "kubelet-systemd.log")
        scenarios._remove_leftover_pods(endpoint)
        unmount_under(tmp)
        for link in scenarios.CONTAINER_LOGS.glob(f"*_{scenarios.NS}_*.log"):
            link.unlink(missing_ok=True)


static_pod = scenarios.static_pod


def test_kubelet_takes_systemd_from_the_runtime(kubelet: scenarios.Kubelet) -> None:
    """kubelet's config names no driver; it uses the runtime's (systemd) and makes kubepods.slice."""
    log = kubelet.log_text()
    assert '"Using cgroup driver setting received from the CRI runtime" cgroupDriver="systemd"' in log, log[-3000:]
    # kubelet makes its QoS slices after it reports healthy (its container manager starts apart).
    scenarios.wait_for("kubelet's kubepods.slice", lambda: Path("/sys/fs/cgroup/kubepods.slice").is_dir(),
                       scenarios.POD_TIMEOUT_S)
    done = run(["systemctl", "show", "kubepods.slice", "--property=ActiveState"], check=True)
    assert done.stdout.strip() == "ActiveState=active", done.stdout  # a unit of systemd's, not a bare mkdir


def test_busybox_log_through_kubelet_symlink(kubelet: scenarios.Kubelet, static_pod: StaticPod) -> None:
    """As on the host: stdout reaches /var/log/containers in CRI format."""
    scenarios.test_busybox_log_through_kubelet_symlink(kubelet, static_pod)


def test_init_container_and_two_apps_share_empty_dir(kubelet: scenarios.Kubelet, static_pod: StaticPod) -> None:
    """As on the host: an init container, then two apps sharing an emptyDir."""
    scenarios.test_init_container_and_two_apps_share_empty_dir(kubelet, static_pod)


def test_resource_limits_in_the_pod_slice(kubelet: scenarios.Kubelet, static_pod: StaticPod) -> None:
    """A Burstable pod's container is dockyardd's scope in kubelet's pod slice
    (kubepods.slice/kubepods-burstable.slice/...-pod<uid>.slice), with its
    CPU and memory limits in the scope's v2 files and seen from inside."""
    ep = kubelet.endpoint
    resources = {"requests": {"cpu": "100m", "memory": "32Mi"}, "limits": {"cpu": "250m", "memory": "64Mi"}}
    pod = static_pod("limits", scenarios.pod_spec(scenarios.container_spec("limited", "sleep 3600",
                                                                           resources=resources)))
    c = scenarios.wait_for("the limited container to run", lambda: scenarios.running(ep, pod, "limited"),
                           scenarios.POD_TIMEOUT_S)
    scopes = list(Path("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice").glob(
        f"kubepods-burstable-pod*.slice/dockyard-{c.id}.scope"))
    assert len(scopes) == 1, scopes
    scope = scopes[0]
    assert (scope / "memory.max").read_text().strip() == str(64 << 20)
    assert (scope / "cpu.max").read_text().strip() == "25000 100000"
    assert scenarios.exec_sync(ep, c.id, "cat", "/sys/fs/cgroup/memory.max").strip() == str(64 << 20)


def test_removed_manifest_stops_pod_and_runtime_forgets_it(kubelet: scenarios.Kubelet) -> None:
    """As on the host: the pod stops, and after container GC the runtime holds nothing of it."""
    scenarios.test_removed_manifest_stops_pod_and_runtime_forgets_it(kubelet)


def test_kubelet_log_has_no_cri_errors(kubelet: scenarios.Kubelet) -> None:
    """As on the host: no failed CRI call in kubelet's log."""
    scenarios.test_kubelet_log_has_no_cri_errors(kubelet)

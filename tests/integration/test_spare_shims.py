"""Spare shims (config ``spare_shims``, cri/shims.py): started ahead, adopted by
the next pod of the default handler, replaced, and never left behind.

Each test runs a real dockyardd with real shims; the ``pods`` fixture checks
after each one that no shim process, mount, netns or cgroup is left (a spare
the daemon did not shut down on SIGTERM is such a process).
"""

from __future__ import annotations

import os
import select
import signal
import time
from typing import Any

import pytest
from bundle import SUBREAPER
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

from dockyard.cri.shims import SPARE_PREFIX, shim_alive

WAIT_S = 60.0  # a bound on a wait for the daemon's own work, never the test's verdict


def spares(pods: Pods) -> dict[str, int]:
    """Spare dir name -> its live shim's pid (0 while it is still starting)."""
    shims = pods.state / "shims"
    if not shims.is_dir():
        return {}
    return {p.name: shim_alive(str(p)) for p in shims.iterdir() if p.name.startswith(SPARE_PREFIX)}


def wait_for_spares(pods: Pods, count: int, other_than: frozenset[int] | set[int] = frozenset()) -> dict[str, int]:
    """The daemon's ``count`` live spares (none of ``other_than``'s pids), once they serve."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = spares(pods)
        live = {name: pid for name, pid in found.items() if pid and pid not in other_than}
        if len(live) == count and len(found) == count:
            return live
        assert time.monotonic() < deadline, f"expected {count} spare shims, have {found}\n{pods.daemon.log_text()}"
        time.sleep(0.05)


def wait_exit(pid: int) -> None:
    """Until process ``pid`` has exited (a pidfd turns readable), reaping it if it is ours to reap."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + WAIT_S
    try:
        while not select.select([fd], [], [], 0.2)[0]:
            SUBREAPER.reap_adopted()  # an orphaned shim may be the session subreaper's child
            assert time.monotonic() < deadline, f"process {pid} still runs after {WAIT_S:.0f}s"
    finally:
        os.close(fd)
    SUBREAPER.reap_adopted()


def shim_pid(pods: Pods, pod_id: str) -> int:
    return int((pods.state / "shims" / pod_id / "shim.pid").read_text())


def test_a_pod_adopts_the_spare_and_its_state_goes_to_the_pods_dir(pods: Pods) -> None:
    ((spare, spare_pid),) = wait_for_spares(pods, 1).items()
    pod_id, cfg = pods.run_pod("adopter")
    assert shim_pid(pods, pod_id) == spare_pid, "the pod's shim is the spare that was waiting"
    assert not (pods.state / "shims" / spare).exists(), "the spare's dir became the pod's"
    # The next spare is a new process.
    wait_for_spares(pods, 1, other_than={spare_pid})
    pods.daemon.pull("busybox")
    # The adopted shim writes its containers' records (the pause container's
    # first) and the runtime's log in the pod's dir, not under the old name.
    ctr = pods.write("ctr", container_config("sleeper", ["sleep", "3600"]))
    cid = pods.crictl("create", pod_id, ctr, cfg)
    pods.crictl("start", cid)
    shim_dir = pods.state / "shims" / pod_id
    assert sorted(os.listdir(shim_dir / "containers")) == sorted([f"{pod_id}.json", f"{cid}.json"])
    assert (shim_dir / "runtime.log").exists()
    assert pods.crictl("inspect", "-o", "go-template", "--template", "{{.status.state}}", cid) == "CONTAINER_RUNNING"
    pods.crictl("rmp", "-f", pod_id)
    assert not shim_dir.exists()


def test_a_dead_spare_is_replaced_and_the_pod_starts_anyway(pods: Pods) -> None:
    ((_, spare_pid),) = wait_for_spares(pods, 1).items()
    os.kill(spare_pid, signal.SIGKILL)
    wait_exit(spare_pid)
    pod_id, _ = pods.run_pod("after-dead-spare")
    assert shim_pid(pods, pod_id) != spare_pid
    assert pods.crictl("inspectp", "-o", "go-template", "--template", "{{.status.state}}", pod_id) == "SANDBOX_READY"
    wait_for_spares(pods, 1, other_than={spare_pid})


def test_the_spares_a_killed_daemon_left_are_shut_down_at_start(pods: Pods) -> None:
    old = wait_for_spares(pods, 1)
    assert pods.daemon.proc is not None
    pods.daemon.proc.kill()
    assert pods.daemon.proc.wait(60) == -signal.SIGKILL
    pods.daemon.stop()  # forget the dead process
    (old_pid,) = old.values()
    assert shim_alive(str(pods.state / "shims" / next(iter(old)))) == old_pid, "a spare outlives its daemon"
    pods.daemon.start()
    wait_exit(old_pid)
    assert not (pods.state / "shims" / next(iter(old))).exists()
    wait_for_spares(pods, 1, other_than={old_pid})
    pod_id, _ = pods.run_pod("after-restart")
    assert shim_pid(pods, pod_id) != old_pid


@pytest.fixture
def pods_extra_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"spare_shims": getattr(request, "param", 1)}


@pytest.mark.parametrize("pods_extra_config", [2], indirect=True)
def test_spare_shims_is_how_many_are_kept(pods: Pods) -> None:
    first = wait_for_spares(pods, 2)
    pod_a, _ = pods.run_pod("a")
    pod_b, _ = pods.run_pod("b")
    adopted = {shim_pid(pods, pod_a), shim_pid(pods, pod_b)}
    assert adopted == set(first.values()), "each pod adopted one of the two spares"
    wait_for_spares(pods, 2, other_than=adopted)

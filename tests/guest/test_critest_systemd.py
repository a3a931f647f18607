"""critest's validation suite against dockyardd with the systemd cgroup driver, in the guest.

`make test-guest` runs a subset of 8 specs here (`make test` leaves this
module out: tests/e2e/test_guest.py), the ones whose steps go through the
driver: a pod run and removed (its slice and the pause container's scope come
and go), a container started and a running one removed (its scope), container
stats (read from the scope's v2 files), exec into one of several containers of
a pod, the OOM kill, and a pod in a user namespace (its container mounts its
cgroup2 over a locked copy of the host's: runtime/rootfs/setup.py). The other
specs (streaming, images, networking, security contexts, mounts, sysctls,
idempotence, runtime info) make and remove pods and containers the same way
and check what the driver does not touch; they run in every `make test` on the
host, and under TCG (a 20-spec subset took 9 minutes on a loaded machine) they
would take the budget. `make critest-guest` runs the whole suite here
(DOCKYARD_CRITEST_ALL=1), with the host's skip list minus its AppArmor line:
the guest has AppArmor.

The JUnit report is left in the run's shared directory (critest-systemd.xml).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from daemon_fixture import Daemon
from guest_daemon import REPO, systemd_daemon  # noqa: F401 (fixture)
from guest_env import run

SUBSET = (r"runtime should support (running|removing) PodSandbox"
          r"|runtime should support (starting|removing running) container \[Conformance\]"
          r"|runtime should support listing container stats \[Conformance\]"
          r"|when running multiple containers in a pod should support container exec"
          r"|Container OOM"
          r"|NamespaceMode_POD")
SKIPS = REPO / "hack" / "critest-skips.txt"


def skip_patterns() -> list[str]:
    """The host's skip list, less the AppArmor line (this kernel has AppArmor)."""
    lines = [ln for ln in SKIPS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return [ln for ln in lines if "AppArmor" not in ln]


def test_critest_with_the_systemd_driver(systemd_daemon: Daemon, tmp_path: Path, guest_out: Path) -> None:  # noqa: F811
    """Every spec run passes and none is skipped by critest itself."""
    (tmp_path / "sudo").write_text('#!/bin/sh\nexec "$@"\n')  # critest loads AppArmor profiles with sudo
    (tmp_path / "sudo").chmod(0o755)
    report = guest_out / "critest-systemd.xml" if guest_out.is_dir() else tmp_path / "critest-systemd.xml"
    endpoint = f"unix://{systemd_daemon.socket}"
    argv = [str(REPO / "build" / "bin" / "critest"), "--runtime-endpoint", endpoint, "--image-endpoint", endpoint,
            "--ginkgo.no-color", f"--ginkgo.junit-report={report}",
            *(f"--ginkgo.skip={p}" for p in skip_patterns())]
    if not os.environ.get("DOCKYARD_CRITEST_ALL"):
        argv.append(f"--ginkgo.focus={SUBSET}")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
    done = run(argv, timeout=3600, env=env)
    tail = done.stdout[-4000:]
    assert done.returncode == 0, tail
    cases = [c for c in ET.parse(report).getroot().iter("testcase")
             if not re.match(r"\[(Before|After|SynchronizedBefore)Suite\]", c.get("name", ""))]
    ran = [c for c in cases if c.find("skipped") is None]
    failed = [c.get("name") for c in ran if c.find("failure") is not None or c.find("error") is not None]
    skipped_by_critest = [c.get("name") for c in cases if c.find("skipped") is not None
                          and "benchmark" not in (c.get("name") or "")
                          and not any(re.search(p, c.get("name") or "") for p in skip_patterns())
                          and (os.environ.get("DOCKYARD_CRITEST_ALL") or re.search(SUBSET, c.get("name") or ""))]
    assert not failed, failed
    assert not skipped_by_critest, skipped_by_critest
    assert len(ran) >= (100 if os.environ.get("DOCKYARD_CRITEST_ALL") else 7), len(ran)
    print(f"critest with the systemd driver: {len(ran)} specs passed")

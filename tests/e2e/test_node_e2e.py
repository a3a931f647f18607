"""A subset of Kubernetes' node e2e suite ([NodeConformance]) against dockyardd.

hack/run-node-e2e.sh runs the suite (built by hack/install-node-e2e.sh, images
from hack/build-node-e2e-images.sh) with the patterns of
hack/node-e2e-subset.txt as its focus, in network, mount, cgroup, IPC and
PID namespaces of its own (so it takes no lock), and writes ginkgo's JSON and
JUnit reports to build/node-e2e/dockyardd-subset/. It leaves nothing on the
host but what every kubelet writes to /proc/sys when it starts, which no
namespace covers (vm.overcommit_memory=1, kernel.panic=10,
kernel.panic_on_oops=1; test_kubelet.py's kubelet does the same). The whole
focused set runs with `make node-e2e`; README.md (Node conformance) has its
results.

The bar is the one the critest test sets: every selected spec passes. A spec
that skips itself at run time counts as a failure unless
hack/node-e2e-skips.txt names it (it would then not have been selected), since
such a skip means the runtime reported a feature missing.

`make test` runs it (its prerequisite node-e2e-tools builds the suite and
the images; the test pushes them again if a registry lost them).
DOCKYARD_NODE_E2E=0 skips it, saying so, for a quick local run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_endpoint import BUILD, REPO, SUBREAPER, run_checked

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.environ.get("DOCKYARD_NODE_E2E") == "0",
                       reason="DOCKYARD_NODE_E2E=0: the node e2e subset was turned off (make node-e2e-subset runs it)"),
]

SUBSET = REPO / "hack" / "node-e2e-subset.txt"
NAME = "dockyardd-subset"
REPORTS = BUILD / "node-e2e" / NAME
GINKGO_TIMEOUT_S = 30 * 60.0
RUN_TIMEOUT_S = 45 * 60.0


@dataclass(frozen=True)
class Spec:
    text: str  # the full spec text the focus and skip patterns match
    state: str  # passed | failed | skipped (by itself) | not selected
    message: str


def patterns(path: Path) -> list[str]:
    """The regexes of a pattern file: every line that is neither blank nor a comment."""
    return [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def read_report(path: Path) -> list[Spec]:
    """Ginkgo's JSON report -> its It specs (a filter's leftovers are "not selected")."""
    specs = []
    for report in json.loads(path.read_text())[0]["SpecReports"]:
        if report["LeafNodeType"] != "It":
            continue
        text = " ".join([*report["ContainerHierarchyTexts"], report["LeafNodeText"]])
        failure = report.get("Failure") or {}
        state = report["State"]
        if state == "skipped":
            state = "skipped" if failure else "not selected"
        elif state != "passed":
            state = "failed"
        specs.append(Spec(text, state, str(failure.get("Message", ""))))
    return specs


def test_node_e2e_subset() -> None:
    """Every spec of hack/node-e2e-subset.txt runs and passes against dockyardd, each pattern selects at
    least one spec, and no spec tried an address outside the run."""
    if os.geteuid() != 0:
        pytest.skip("the node e2e suite needs root: it runs a kubelet and a runtime")
    for tool in ("e2e_node.test", "ginkgo", "kubelet"):
        if not (BUILD / "node-e2e" / "bin" / tool).exists():
            pytest.fail(f"build/node-e2e/bin/{tool} missing: run make node-e2e-tools")
    wanted = patterns(SUBSET)
    assert wanted, f"{SUBSET} names no spec"
    # The images again (cached: a push only where the registry's digest
    # differs), in case a registry was replaced since make built them.
    run_checked([str(REPO / "hack" / "build-node-e2e-images.sh")])
    report = REPORTS / "report.json"
    report.unlink(missing_ok=True)  # a failed start must not leave an earlier run's report to read
    # ginkgo's own timeout ends the run (and its cleanup) well before pytest's
    # kill, which would leave the run's processes to the next run's sweep.
    argv = [str(REPO / "hack" / "run-node-e2e.sh"), "--runtime", "dockyardd", "--name", NAME,
            "--focus-file", str(SUBSET), "--timeout", f"{int(GINKGO_TIMEOUT_S)}s"]
    result = SUBREAPER.run(argv, timeout=RUN_TIMEOUT_S, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert report.exists(), f"no ginkgo report (exit {result.returncode}):\n{result.stdout[-4000:]}"
    specs = read_report(report)
    selected = [s for s in specs if s.state != "not selected"]
    unmatched = [p for p in wanted if not any(re.search(p, s.text) for s in selected)]
    assert not unmatched, f"subset patterns that selected no spec: {unmatched}"
    bad = [s for s in selected if s.state != "passed"]
    summary = "\n".join(f"{s.state.upper()}: {s.text}\n    {s.message[:600]}" for s in bad)
    assert not bad, f"{len(bad)} of {len(selected)} node e2e specs did not pass (logs in {REPORTS}):\n{summary}"
    assert result.returncode == 0, result.stdout[-4000:]
    outside = (REPORTS / "outside-attempts.txt").read_text().strip()
    assert not outside, f"specs tried addresses outside the run (xt_recent):\n{outside}"

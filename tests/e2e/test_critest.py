"""critest v1.34.0, cri-tools' CRI validation suite, against the CRI server under test.

hack/run-critest.sh runs it with the skip list in hack/critest-skips.txt and
removes the SysV shm segments its HostIpc specs leave behind. The handler is
$CRITEST_HANDLER ("" = the server's default; make critest-runc / critest-crun
set runc / crun).

The bar is Dockyard's, not containerd's: every spec passes except the ones
the skip list names. A spec critest skips by itself (because the runtime
reports no recursive read-only mounts, no user namespaces, no
SupplementalGroupsPolicy, ...) counts as a failure here unless the skip list
names it, since each such skip is a missing runtime feature.
"""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from e2e_endpoint import BUILD, REPO, SUBREAPER, CRIEndpoint

pytestmark = pytest.mark.root

CRITEST = BUILD / "bin" / "critest"
SKIPS = REPO / "hack" / "critest-skips.txt"
RUN_TIMEOUT_S = 3600.0
BENCHMARK_SPEC = re.compile(r"\bbenchmark about\b")


@dataclass(frozen=True)
class SpecResult:
    name: str
    outcome: str  # passed | failed | skipped
    message: str


def skip_patterns(text: str) -> list[re.Pattern[str]]:
    """The regexes of hack/critest-skips.txt: every non-blank, non-comment line."""
    return [re.compile(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def read_junit(path: Path) -> list[SpecResult]:
    """Specs from critest's JUnit report (ginkgo: one <testcase> per spec)."""
    results = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        if name.startswith(("[BeforeSuite]", "[AfterSuite]", "[SynchronizedBeforeSuite]")):
            continue
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        if failure is not None or error is not None:
            node = failure if failure is not None else error
            assert node is not None
            results.append(SpecResult(name, "failed", (node.get("message") or node.text or "")[:2000]))
        elif skipped is not None:
            results.append(SpecResult(name, "skipped", skipped.get("message") or ""))
        else:
            results.append(SpecResult(name, "passed", ""))
    return results


def run_critest(endpoint: CRIEndpoint, *extra: str) -> subprocess.CompletedProcess[str]:
    if not CRITEST.exists():
        pytest.fail(f"{CRITEST} missing: run hack/install-critest.sh (make critest-tools)")
    argv = [str(REPO / "hack" / "run-critest.sh"), endpoint.url, *extra]
    if os.environ.get("CRITEST_FOCUS"):  # for development: run only the matching specs
        argv += ["--", f"--ginkgo.focus={os.environ['CRITEST_FOCUS']}"]
    env = dict(os.environ, CRITEST_NAME=f"{endpoint.name}-{os.environ.get('CRITEST_HANDLER') or 'default'}")
    return SUBREAPER.run(argv, timeout=RUN_TIMEOUT_S, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env)


def test_critest_conformance(cri_endpoint: CRIEndpoint) -> None:
    """Every critest spec passes against the server, except those hack/critest-skips.txt names with a
    reason (and, for a peer runtime as handler, those hack/critest-skips-<handler>.txt names)."""
    handler = os.environ.get("CRITEST_HANDLER", "")
    result = run_critest(cri_endpoint, *(["--handler", handler] if handler else []))
    name = f"{cri_endpoint.name}-{handler or 'default'}"
    reports = sorted((BUILD / "critest" / name).glob("junit*.xml"))
    assert reports, f"critest wrote no JUnit report (exit {result.returncode}):\n{result.stdout[-4000:]}"
    # critest marks its benchmark specs skipped unless run with -benchmark;
    # test_critest_benchmark runs those.
    specs = [s for report in reports for s in read_junit(report) if not BENCHMARK_SPEC.search(s.name)]
    patterns = skip_patterns(SKIPS.read_text())
    peer_skips = REPO / "hack" / f"critest-skips-{handler}.txt"
    if handler and peer_skips.exists():  # what the peer runtime itself lacks, with the reason there
        patterns += skip_patterns(peer_skips.read_text())
    failed = [s for s in specs if s.outcome == "failed"]
    unlisted_skips = [s for s in specs if s.outcome == "skipped" and not any(p.search(s.name) for p in patterns)]
    summary = "\n".join(f"{s.outcome.upper()}: {s.name}: {s.message[:300]}" for s in failed + unlisted_skips)
    assert not failed and not unlisted_skips, (
        f"{len(failed)} failed, {len(unlisted_skips)} skipped without a listed reason "
        f"(of {len(specs)}):\n{summary}"
    )
    assert result.returncode == 0, result.stdout[-4000:]
    with cri_endpoint.channel() as ch:
        from cri_api.v1 import api_pb2

        left = cri_endpoint.runtime(ch).ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=30).items
    assert not left, f"critest's pods are still known to {cri_endpoint.name}: {[p.metadata.name for p in left]}"


@pytest.mark.skipif(os.environ.get("CRITEST_BENCHMARK") != "1",
                    reason="the benchmark takes minutes and measures, not checks: run it with make critest-bench")
def test_critest_benchmark(cri_endpoint: CRIEndpoint) -> None:
    """critest -benchmark completes against the server; its tables go to build/critest-bench-<server>.txt."""
    out = BUILD / f"critest-bench-{cri_endpoint.name}.txt"
    result = run_critest(cri_endpoint, "--benchmark", str(out))
    assert result.returncode == 0, result.stdout[-4000:]
    assert out.exists() and out.stat().st_size > 0

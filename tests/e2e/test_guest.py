"""The guest suite (tests/guest), run in the test guest and reported here test by test.

Why a guest: this host's cgroups are v1 with a hybrid unified mount, PID 1 is
not systemd and AppArmor is off, while a Kubernetes node runs cgroup v2, most
often under systemd, often with AppArmor. hack/guest boots Debian's own kernel
under qemu with exactly that (hack/guest/run.py's docstring says how), runs
`pytest tests/guest` in it, and leaves junit.xml in a directory shared with
this host. The guest boots once per session; each guest test function is one
test here, passing when all its guest cases passed, so a failure names the
guest test and carries the guest's report.

Facts this relies on:
- The guest runs this checkout, venv and test images from the host's root
  (read-only to it), so the guest's test ids are the ones found here by
  reading tests/guest/test_*.py.
- The guest needs no lock (RULES.md 3): its cgroups, mounts and namespaces
  are its own kernel's; it reaches nothing of the host but the shared
  directory of its run.
"""

from __future__ import annotations

import ast
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUEST_TESTS = REPO / "tests" / "guest"
RUNS = REPO / "build" / "guest" / "runs"
# make test runs a bounded part of the guest suite; `make test-guest`
# (DOCKYARD_GUEST_ALL=1) runs all of it. Why: under TCG the whole suite takes
# 11 minutes on an idle 2-core host and over 30 with both cores busy, too long
# for make test's budget. These modules each start dockyardd with pods (a
# kubelet, critest, CRIU, AppArmor'd pods) and took 570 of the suite's 660
# test seconds on 2026-12-06; test_cri_systemd stays in make test as the
# guest's one end-to-end CRI run under the systemd driver.
FULL_ONLY_MODULES = frozenset({"test_cri_apparmor", "test_checkpoint", "test_critest_systemd", "test_kubelet_systemd"})
FULL_SUITE = os.environ.get("DOCKYARD_GUEST_ALL") == "1"
# The guest's budget: past this the run is killed. The bounded part took
# 148 s idle and about 8 minutes beside two busy loops; the whole suite about
# 11 minutes idle.
GUEST_TIMEOUT = 2700 if FULL_SUITE else 1500


def guest_test_functions() -> list[tuple[str, str]]:
    """(module, function) of every test function in tests/guest, read with ast (no import)."""
    found = []
    for path in sorted(GUEST_TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found.append((path.stem, node.name))
    return found


@dataclass(frozen=True)
class Case:
    name: str
    outcome: str  # passed, failed, error, skipped
    detail: str


@dataclass(frozen=True)
class GuestRun:
    out: Path
    status: int | None
    cases: dict[tuple[str, str], list[Case]]  # (module, function) -> its cases
    runner_output: str

    def console_tail(self, lines: int = 60) -> str:
        console = self.out / "console.log"
        text = console.read_text(errors="replace") if console.exists() else ""
        return "".join(text.replace("\r", "").splitlines(True)[-lines:])


def parse_junit(path: Path) -> dict[tuple[str, str], list[Case]]:
    cases: dict[tuple[str, str], list[Case]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").rpartition(".")[2]
        name = case.get("name", "")
        function = name.partition("[")[0]
        outcome, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                detail = (child.get("message") or "") + "\n" + (child.text or "")
                break
        cases.setdefault((module, function), []).append(Case(name, outcome, detail))
    return cases


@pytest.fixture(scope="session")
def guest_run() -> GuestRun:
    if os.geteuid() != 0:
        pytest.skip("the guest needs root: qemu shares the host's root read-only over 9p")
    build = subprocess.run([str(REPO / "hack" / "guest" / "build.sh")], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"hack/guest/build.sh failed:\n{build.stdout}\n{build.stderr}")
    RUNS.mkdir(parents=True, exist_ok=True)
    out = RUNS / time.strftime("pytest-%Y%m%d-%H%M%S")
    skips = [] if FULL_SUITE else [f"--skip={module}" for module in sorted(FULL_ONLY_MODULES)]
    done = subprocess.run(
        [str(REPO / "hack" / "guest" / "run.py"), "--quiet", "--out", str(out), "--timeout", str(GUEST_TIMEOUT), *skips],
        capture_output=True, text=True,
    )
    junit = out / "junit.xml"
    status_file = out / "status"
    return GuestRun(
        out=out,
        status=int(status_file.read_text()) if status_file.exists() else None,
        cases=parse_junit(junit) if junit.exists() else {},
        runner_output=done.stdout + done.stderr,
    )


def test_guest_suite_ran(guest_run: GuestRun) -> None:
    """The guest booted, ran the whole suite and reported it (a crash or a collection error fails here)."""
    assert guest_run.status is not None, (
        f"the guest reported no status:\n{guest_run.runner_output}\n--- console ---\n{guest_run.console_tail()}"
    )
    assert guest_run.cases, f"the guest wrote no junit report:\n{guest_run.console_tail()}"
    # pytest's status: 0 all passed, 1 some failed (reported by the tests below), others are its own errors.
    assert guest_run.status in (0, 1), f"guest pytest exited {guest_run.status}:\n{guest_run.console_tail()}"
    expected = set(guest_test_functions())
    unknown = set(guest_run.cases) - expected
    assert not unknown, f"guest ran tests this host does not know of: {sorted(unknown)}"


def test_full_only_modules_exist() -> None:
    """Every module make test leaves to `make test-guest` is a guest test module (a rename would otherwise run nothing)."""
    modules = {module for module, _ in guest_test_functions()}
    assert FULL_ONLY_MODULES <= modules, sorted(FULL_ONLY_MODULES - modules)
    assert modules - FULL_ONLY_MODULES, "make test would run no guest test at all"


@pytest.mark.parametrize(("module", "function"), guest_test_functions(), ids=lambda part: part)
def test_in_guest(guest_run: GuestRun, module: str, function: str) -> None:
    """One guest test function: all its cases passed in the guest (its docstring is there)."""
    if module in FULL_ONLY_MODULES and not FULL_SUITE:
        pytest.skip(f"tests/guest/{module}.py runs in `make test-guest` only (DOCKYARD_GUEST_ALL=1): make test's guest part is bounded")
    cases = guest_run.cases.get((module, function))
    if not cases:
        pytest.fail(f"tests/guest/{module}.py::{function} did not run in the guest:\n{guest_run.console_tail(20)}")
    bad = [c for c in cases if c.outcome in ("failed", "error")]
    if bad:
        pytest.fail("\n\n".join(f"{c.name} {c.outcome} in the guest:\n{c.detail}" for c in bad), pytrace=False)
    if all(c.outcome == "skipped" for c in cases):
        pytest.skip(f"skipped in the guest: {cases[0].detail.strip().splitlines()[0]}")

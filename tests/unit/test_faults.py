"""The fault points the restart tests arm: every name the code passes to
faults.point is listed in faults.POINTS, and every listed point is in the
code exactly once (a point that moved or vanished would make its test kill
the daemon nowhere, and pass for nothing)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

from dockyard.cri import faults

CRI = Path(__file__).resolve().parents[2] / "cri"


def point_calls() -> Counter[str]:
    found: Counter[str] = Counter()
    for path in CRI.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "point"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "faults"):
                assert len(node.args) == 1 and isinstance(node.args[0], ast.Constant), ast.dump(node)
                found[str(node.args[0].value)] += 1
    return found


def test_every_point_is_listed_and_used_once() -> None:
    calls = point_calls()
    assert set(calls) == set(faults.POINTS)
    assert all(n == 1 for n in calls.values()), calls


def test_an_unknown_point_is_refused_at_import() -> None:
    env = {faults.ENV: "RunPodSandbox/nowhere", "PYTHONPATH": ""}
    code = "import dockyard.cri.faults"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "unknown fault points ['RunPodSandbox/nowhere']" in done.stderr


def test_unarmed_points_do_nothing() -> None:
    for name in faults.POINTS:
        faults.point(name)  # the test process is still here

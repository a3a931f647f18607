"""pytest's default import mode ("prepend") imports every test file as a
top-level module named after its basename, so two files called test_x.py in
different folders of tests/ stop collection of the whole run with "import
file mismatch" -- but only when both folders are collected together (as
`make test` does), and only on a clean checkout without stale .pyc files.
CI once failed that way; this keeps basenames unique."""

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent


def duplicate_basenames(paths):
    seen = defaultdict(list)
    for path in paths:
        seen[path.name].append(path)
    return {name: found for name, found in seen.items() if len(found) > 1}


def test_duplicate_basenames_are_found():
    paths = [Path("unit/test_a.py"), Path("integration/test_a.py"), Path("unit/test_b.py")]
    assert duplicate_basenames(paths) == {"test_a.py": paths[:2]}


def test_test_file_basenames_are_unique():
    paths = sorted(TESTS.rglob("test_*.py"))
    assert paths, "no test files found"
    clashes = duplicate_basenames(paths)
    assert not clashes, "rename one of each: " + "; ".join(
        f"{name}: {', '.join(str(p.relative_to(TESTS)) for p in found)}"
        for name, found in sorted(clashes.items()))

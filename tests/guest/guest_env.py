"""Where the guest suite runs and the cgroup helpers its fixtures share.

Importing this puts tests/integration on sys.path, so the guest tests build
bundles with the same `bundle` module as the integration tests.
"""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CGROUP_ROOT = Path("/sys/fs/cgroup")

if str(REPO / "tests" / "integration") not in sys.path:
    sys.path.insert(0, str(REPO / "tests" / "integration"))


def run(argv: list[str], *, check: bool = False, timeout: float = 120.0, **popen_args: object) -> subprocess.CompletedProcess[str]:
    """subprocess.run with output captured as text, safe from the suite's subreaper.

    Why not subprocess.run: pytest is a child subreaper here whose thread reaps
    every zombie child it did not start through bundle.SUBREAPER.run, so a
    plain subprocess.run can lose its child's exit status (ECHILD, reported
    as 0: seen under load, an AppArmor denial that "exited 0")."""
    from bundle import SUBREAPER

    done = SUBREAPER.run(argv, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         **popen_args)
    if check and done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
    return done


def in_guest() -> bool:
    """True inside the test guest: hack/guest/run.py names the shared directory on the kernel's command line."""
    try:
        return "dockyard.out=" in Path("/proc/cmdline").read_text()
    except OSError:
        return False


def remove_cgroup(path: Path) -> None:
    """Kill what is left in a cgroup and remove it with its children (cleanup after a failure)."""
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(str(p))):
        remove_cgroup(child)
    (path / "cgroup.kill").write_text("1")
    wait_unpopulated(path)
    path.rmdir()


def wait_unpopulated(path: Path, timeout: float = 10.0) -> None:
    """Wait until no process is left in the cgroup `path` or below it.

    cgroup.events wakes poll() with POLLPRI when its "populated" key changes
    (cgroup-v2.rst), so this waits for the kernel's event, not for a guess.
    """
    with open(path / "cgroup.events", "rb", buffering=0) as events:
        poller = select.poll()
        poller.register(events, select.POLLPRI)
        while True:
            events.seek(0)
            if b"populated 0" in events.read():
                return
            if not poller.poll(timeout * 1000):
                raise TimeoutError(f"{path} still populated after {timeout} s")

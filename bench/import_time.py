#!/usr/bin/env python3
"""What each dockyard-runc verb spends importing modules, for one or more checkouts.

    python bench/import_time.py [--runs 15] [CHECKOUT ...]

Every CHECKOUT (default: this one) gets a launcher like the one
hack/install-launcher.sh writes (python3 -I -S, the `dockyard` package pointed
at that checkout), run with `-X importtime`. One round drives a busybox
`sleep` container through

    create, start, state, exec (true), kill KILL, delete

with each checkout in turn (the order rotates every round). One sample is the
sum of the "self" column of the command's import report: the microseconds the
interpreter spent executing module bodies, in the command and in anything it
forked before exec (create's container init). Run it to compare a change
with the commit before it, for example:

    git worktree add --detach /tmp/before HEAD~1
    python bench/import_time.py /tmp/before .

Wall times move with the load on the machine; run the checkouts interleaved,
as this does, and compare them within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from runtime import SOURCE_BUNDLE, prepare_bundle  # bench/runtime.py, beside this file

REPO = Path(__file__).resolve().parents[1]
VERBS = ("create", "start", "state", "exec", "kill", "delete")
PYTHON = REPO / ".venv" / "bin" / "python3"


def launcher_text(checkout: Path) -> str:
    """hack/install-launcher.sh's dockyard-runc launcher, for `checkout`."""
    return (
        "import sys\nimport gc\ngc.disable()\n"
        'pkg = type(sys)("dockyard")\n'
        f"pkg.__path__ = [{str(checkout)!r}]\n"
        'sys.modules["dockyard"] = pkg\n'
        "from dockyard.runtime.cli.main import main\n"
        "code = main()\n"
        "sys.stdout.flush()\nsys.stderr.flush()\n"
        "import posix\nposix._exit(code)\n"
    )


def import_micros(stderr: str) -> int:
    """The sum of the self column of `-X importtime` lines in `stderr`."""
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        self_us = line.split(":", 1)[1].split("|", 1)[0].strip()
        if self_us.isdigit():
            total += int(self_us)
    return total


class Checkout:
    def __init__(self, path: Path, work: Path, index: int) -> None:
        self.path = path
        self.launcher = work / f"launcher-{index}.py"
        self.launcher.write_text(launcher_text(path))
        self.root = work / f"root-{index}"
        self.samples: dict[str, list[int]] = {verb: [] for verb in VERBS}

    def run(self, verb: str, argv: list[str]) -> Path:
        """Run one verb with its stderr in a file. Not a pipe: create's
        container init inherits it and keeps it open for as long as the
        container runs; its imports before exec land there too."""
        report = self.root.parent / f"{self.root.name}-{verb}.stderr"
        command = [str(PYTHON), "-I", "-S", "-X", "importtime", str(self.launcher),
                   "--root", str(self.root), *argv]
        with open(report, "w") as stderr:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=stderr, timeout=60)
        if done.returncode != 0:
            errors = [line for line in report.read_text().splitlines() if not line.startswith("import time:")]
            raise RuntimeError(f"{self.path}: {verb} exited {done.returncode}: {' '.join(errors)[-400:]}")
        return report

    def cycle(self, bundle: Path, name: str) -> None:
        reports = {
            "create": self.run("create", ["create", "--bundle", str(bundle), name]),
            "start": self.run("start", ["start", name]),
            "state": self.run("state", ["state", name]),
            "exec": self.run("exec", ["exec", name, "true"]),
            "kill": self.run("kill", ["kill", name, "KILL"]),
            # delete --force waits for the init to die: no sleep needed.
            "delete": self.run("delete", ["delete", "--force", name]),
        }
        # Read only now: the init is gone, so all it wrote is in create's file.
        for verb, report in reports.items():
            self.samples[verb].append(import_micros(report.read_text()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("checkouts", nargs="*", type=Path, default=[REPO])
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/import_time.py must run as root", file=sys.stderr)
        return 1
    if not (SOURCE_BUNDLE / "config.json").is_file():
        print(f"{SOURCE_BUNDLE} missing: run `make images` first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as tmp:
        work = Path(tmp)
        checkouts = [Checkout(path.resolve(), work, i) for i, path in enumerate(args.checkouts)]
        for round_ in range(args.runs):
            shift = round_ % len(checkouts)
            for checkout in checkouts[shift:] + checkouts[:shift]:
                bundle = work / f"bundle-{round_}-{checkouts.index(checkout)}"
                prepare_bundle(bundle, ("sleep", "1000"))
                checkout.cycle(bundle, f"imports-{os.getpid()}-{round_}-{checkouts.index(checkout)}")
                shutil.rmtree(bundle)
        print(f"import time per verb, ms (median of {args.runs}; sum of -X importtime self times)")
        print("| verb | " + " | ".join(str(c.path) for c in checkouts) + " |")
        print("| --- " * (len(checkouts) + 1) + "|")
        for verb in VERBS:
            cells = [f"{statistics.median(c.samples[verb]) / 1000:.2f}" for c in checkouts]
            if len(checkouts) > 1:
                first = statistics.median(checkouts[0].samples[verb])
                cells[1:] = [f"{cell} ({statistics.median(c.samples[verb]) / first:.2f}x)"
                             for cell, c in zip(cells[1:], checkouts[1:])]
            print(f"| {verb} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

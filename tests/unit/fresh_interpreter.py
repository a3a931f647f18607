"""Running code in a fresh ``python3 -IS``, as dockyard-runc and the shim run.

Their launchers (hack/install-launcher.sh) start Python isolated and without
site, so the editable install's finder is not there: they put a bare
``dockyard`` package, whose path is the checkout, into sys.modules.  Tests of
what a module imports at start-up run the same way, through this one copy
of that bootstrap.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = (f"import sys\npkg = type(sys)('dockyard'); pkg.__path__ = [{str(REPO)!r}]; "
             "sys.modules['dockyard'] = pkg\n")


def run_fresh(code: str, *args: str) -> str:
    """The stdout of ``code`` in a fresh isolated interpreter where dockyard
    is importable as the launchers make it (``args`` are its sys.argv[1:]);
    a failure fails the test with the interpreter's stderr."""
    done = subprocess.run([sys.executable, "-IS", "-c", BOOTSTRAP + code, *args],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout

"""shim/runtime.py: which runtime binary the shim may run in a fork of itself."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.shim.runtime import is_bundled_runtime


def test_only_the_dockyard_runc_beside_the_shims_interpreter_is_bundled(tmp_path: Path) -> None:
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    python = venv_bin / "python3"
    python.write_text("")
    ours = venv_bin / "dockyard-runc"
    ours.write_text("#!launcher\n")
    other = tmp_path / "usr" / "sbin"
    other.mkdir(parents=True)
    (other / "runc").write_text("")
    (other / "dockyard-runc").write_text("#!launcher\n")  # another installation: other code
    link = tmp_path / "dockyard-runc-link"
    os.symlink(ours, link)

    assert is_bundled_runtime(str(ours), str(python))
    assert is_bundled_runtime(str(link), str(python))  # the same file by another name
    assert not is_bundled_runtime(str(other / "runc"), str(python))
    assert not is_bundled_runtime(str(other / "dockyard-runc"), str(python))
    assert not is_bundled_runtime(str(tmp_path / "missing"), str(python))

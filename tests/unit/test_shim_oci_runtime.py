"""shim/oci_runtime.py: which runtime binary the shim may run in a fork of itself, and which launch strategy it picks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.api.shim import Code, ShimError
from dockyard.shim.oci_runtime import OciRuntime, SpawnBinary, choose_launcher, failure_code, is_bundled_runtime


def _install(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A venv's python3 and dockyard-runc, and another installation's dockyard-runc."""
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python3").write_text("")
    (venv_bin / "dockyard-runc").write_text("#!launcher\n")
    other = tmp_path / "usr" / "sbin"
    other.mkdir(parents=True)
    (other / "dockyard-runc").write_text("#!launcher\n")
    return venv_bin / "python3", venv_bin / "dockyard-runc", other / "dockyard-runc"


@pytest.mark.parametrize(("which", "requested", "expected"), [
    ("bundled", "", "fork"),  # the default for the bundled runtime
    ("bundled", "fork", "fork"),
    ("bundled", "exec", "exec"),  # asked for: executed like any binary
    ("other", "", "exec"),
    ("other", "exec", "exec"),
])
def test_choose_launcher(tmp_path: Path, which: str, requested: str, expected: str) -> None:
    python, ours, other = _install(tmp_path)
    launcher = choose_launcher(str(ours if which == "bundled" else other), str(python), requested)
    assert launcher.name == expected
    if expected == "exec":
        assert isinstance(launcher, SpawnBinary)


@pytest.mark.parametrize(("which", "requested", "message"), [
    ("other", "fork", "runs only the bundled dockyard-runc"),
    ("bundled", "vfork", "is not one of exec, fork"),
])
def test_choose_launcher_refuses(tmp_path: Path, which: str, requested: str, message: str) -> None:
    """The fork strategy runs only the runtime of the shim's own installation; an unknown strategy is refused."""
    python, ours, other = _install(tmp_path)
    with pytest.raises(ShimError) as info:
        choose_launcher(str(ours if which == "bundled" else other), str(python), requested)
    assert info.value.code is Code.INVALID_ARGUMENT and message in info.value.message


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


@pytest.mark.parametrize(("verb", "error_class", "errno", "code"), [
    ("exec", "NotFound", 0, Code.NOT_FOUND),              # the executable is not in the container
    ("create", "InvalidSpec", 0, Code.INVALID_ARGUMENT),
    ("create", "AlreadyExists", 0, Code.ALREADY_EXISTS),
    ("start", "FailedPrecondition", 0, Code.FAILED_PRECONDITION),
    ("create", "Unsupported", 0, Code.FAILED_PRECONDITION),
    ("update", "SyscallError", 22, Code.INVALID_ARGUMENT),  # the kernel refused the value
    ("update", "SyscallError", 16, Code.FAILED_PRECONDITION),  # memory below what is in use
    ("update", "SyscallError", 13, Code.INTERNAL),
    ("create", "SyscallError", 22, Code.INTERNAL),          # outside update, EINVAL may be the runtime's bug
    ("create", "HookFailed", 0, Code.INTERNAL),
    ("create", "", 0, Code.INTERNAL),                       # runc, crun: no class in their log
])
def test_failure_code(verb: str, error_class: str, errno: int, code: str) -> None:
    assert failure_code(verb, error_class, errno) is code


@pytest.mark.parametrize(("verb", "console", "argv"), [
    ("create", "", ["create", "--bundle", "/b", "--pid-file", "/p", "c1"]),
    ("create", "/s", ["create", "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s", "c1"]),
    ("run_detached", "", ["run", "--detach", "--bundle", "/b", "--pid-file", "/p", "c1"]),
    ("run_detached", "/s", ["run", "--detach", "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s", "c1"]),
    ("exec", "", ["exec", "--detach", "--process", "/b", "--pid-file", "/p", "c1"]),
    ("exec", "/s", ["exec", "--detach", "--process", "/b", "--pid-file", "/p", "--console-socket", "/s", "c1"]),
])
def test_spawning_verbs_argv(verb: str, console: str, argv: list[str]) -> None:
    """create, run --detach and exec put the container id last, after the pid file and, only
    when there is one, the console socket (runc's command line)."""
    calls: list[tuple[str, list[str], object]] = []
    runtime = OciRuntime.__new__(OciRuntime)
    runtime._run = lambda what, args, **kw: calls.append((what, args, kw["stdio"])) or b""  # type: ignore[method-assign]
    getattr(runtime, verb)("c1", "/b", "/p", console, (0, 1, 2))
    assert [(args, stdio) for _, args, stdio in calls] == [(argv, (0, 1, 2))]

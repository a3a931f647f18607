"""dockyard-runc's hand-parsed global flags, top-level dispatch, and the size
parser of `update` (no container is touched)."""

from __future__ import annotations

import gc
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from dockyard.runtime import container, spawn
from dockyard.runtime.cli import main
from dockyard.runtime.cli.update import parse_bytes
from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import InvalidArgument
from dockyard.runtime.state import DEFAULT_ROOT
from dockyard.runtime.status import Status

DEFAULTS = {"root": DEFAULT_ROOT, "log": "", "log_format": "text", "debug": False, "systemd_cgroup": False}


def ctx_fields(ctx: main.Context) -> dict[str, object]:
    return {k: getattr(ctx, k) for k in DEFAULTS}


@pytest.mark.parametrize(("argv", "rest", "changed"), [
    ([], [], {}),
    (["state", "c1"], ["state", "c1"], {}),
    (["--root", "/x", "list"], ["list"], {"root": "/x"}),
    (["--root=/x", "list"], ["list"], {"root": "/x"}),
    (["-root", "/x", "list"], ["list"], {"root": "/x"}),  # Go-style single dash
    (["-root=/x", "list"], ["list"], {"root": "/x"}),
    (["--log", "/tmp/l", "--log-format", "json", "kill", "c1"], ["kill", "c1"],
     {"log": "/tmp/l", "log_format": "json"}),
    (["--log-format=json", "list"], ["list"], {"log_format": "json"}),
    (["--debug", "list"], ["list"], {"debug": True}),
    (["--systemd-cgroup", "list"], ["list"], {"systemd_cgroup": True}),
    (["--root=", "list"], ["list"], {"root": ""}),
    (["--criu", "/usr/sbin/criu", "list"], ["list"], {}),      # accepted, ignored
    (["--rootless", "false", "list"], ["list"], {}),
    # parsing stops at the verb: later flags are the verb's
    (["--debug", "exec", "--debug", "c1"], ["exec", "--debug", "c1"], {"debug": True}),
    (["list", "--root", "/y"], ["list", "--root", "/y"], {}),
    (["--version"], ["--version"], {}),
    (["--debug", "--version", "--nonsense"], ["--version"], {"debug": True}),
    (["--help"], ["--help"], {}),
])
def test_parse_globals(argv: list[str], rest: list[str], changed: dict[str, object]) -> None:
    ctx = main.Context()
    assert main._parse_globals(argv, ctx) == rest
    assert ctx_fields(ctx) == {**DEFAULTS, **changed}


@pytest.mark.parametrize(("argv", "target"), [
    (["--nonsense", "list"], "--nonsense"),
    (["--root"], "--root"),
    (["--log-format"], "--log-format"),
    (["--debug", "--bogus=1"], "--bogus"),
    (["-x"], "-x"),
    (["-bogus"], "--bogus"),
])
def test_parse_globals_errors(argv: list[str], target: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        main._parse_globals(argv, main.Context())
    assert info.value.target == target


@pytest.mark.parametrize(("flag", "rest"), [("-v", ["--version"]), ("-h", ["--help"])])
def test_parse_globals_short_version_help(flag: str, rest: list[str]) -> None:
    assert main._parse_globals([flag], main.Context()) == rest


def test_main_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0] == f"dockyard-runc version {main.VERSION}"
    assert lines[1].startswith("commit: ")
    assert lines[2] == f"spec: {main.SPEC_VERSION}"


def test_main_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dockyard-runc")
    for verb in main.VERBS:
        assert verb in out


def test_main_without_verb_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main([]) == 1
    assert capsys.readouterr().out.startswith("usage: dockyard-runc")


def test_main_unknown_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["nosuchverb"]) == 1
    err = capsys.readouterr().err
    assert "nosuchverb" in err and "no such command" in err


@pytest.mark.parametrize("argv", [["--nonsense", "list"], ["--log-format", "xml", "list"]])
def test_main_bad_global_flag(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(argv) == 1
    assert capsys.readouterr().err.startswith("dockyard-runc: ")


def test_main_systemd_cgroup_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--systemd-cgroup is a global flag every verb takes (only create and run use it)."""
    assert main.main(["--root", str(tmp_path), "--systemd-cgroup", "list"]) == 0
    assert "ID" in capsys.readouterr().out


def test_every_verb_module_has_run() -> None:
    import importlib

    for verb, module in main.VERBS.items():
        mod = importlib.import_module(f"dockyard.runtime.cli.{module}")
        assert callable(getattr(mod, "run", None)), verb


@pytest.mark.parametrize(("text", "value"), [
    ("1024", 1024),
    ("0", 0),
    ("512m", 512 << 20),
    ("512M", 512 << 20),
    ("1G", 1 << 30),
    ("1g", 1 << 30),
    ("1.5g", 3 << 29),
    ("4k", 4096),
    ("4kb", 4096),
    ("4KiB", 4096),
    ("2t", 2 << 40),
    ("100b", 100),
    (" 8m ", 8 << 20),
    ("-1", -1),
])
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text, "--memory") == value


@pytest.mark.parametrize("text", ["abc", "-5", "", "m", "1x", "1mm", "-1m", "--1"])
def test_parse_bytes_errors(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_bytes(text, "--memory")
    assert info.value.op == "parse --memory"
    assert info.value.target == text


@pytest.mark.parametrize("text", ["inf", "nan", "infg"])
def test_parse_bytes_non_finite(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_bytes(text, "--memory")


@pytest.mark.parametrize("verb", [["state", "c1"], ["delete", "c1"], ["list"], ["kill", "c1", "KILL"]])
def test_a_root_the_system_refuses_is_a_clear_error(verb: list[str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--root below a regular file: exit 1 and one line naming the path and the errno, no traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main.main(["--root", str(blocker / "root"), *verb]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    assert str(blocker) in err and "ENOTDIR" in err, err


@pytest.fixture
def gc_off() -> Iterator[None]:
    """The collector as the launcher leaves it (off), restored afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("argv", [
    ["state", "no-such"],
    ["delete", "no-such"],
    ["kill", "no-such"],
    ["start", "no-such"],
    ["list"],
    ["events", "no-such"],
])
def test_short_calls_leave_the_collector_off(gc_off: None, tmp_path: Path, argv: list[str]) -> None:
    """The launcher runs the CLI without the cyclic GC (hack/install-launcher.sh);
    a call that does not wait on a container never turns it on."""
    main.main(["--root", str(tmp_path), *argv])
    assert gc.isenabled() is False


@pytest.mark.parametrize(("argv", "collects"), [
    (["events", "--stats", "c1"], False),            # one answer: how the shim asks for stats
    (["events", "--interval", "1ms", "c1"], True),   # loops until the container stops
])
def test_events_collects_only_when_it_loops(gc_off: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           argv: list[str], collects: bool) -> None:
    statuses = iter([Status.RUNNING, Status.RUNNING, Status.STOPPED])
    seen: list[bool] = []

    def stats() -> dict[str, object]:
        seen.append(gc.isenabled())
        return {}

    monkeypatch.setattr(container, "load", lambda _store, _id: SimpleNamespace(
        status=next(statuses), manager=SimpleNamespace(stats=stats)))
    assert main.main(["--root", str(tmp_path), *argv]) == 0
    assert seen
    assert all(on is collects for on in seen)
    assert gc.isenabled() is collects


@pytest.fixture
def faked_container_work(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """run and exec with the container work and the wait faked; records
    whether the collector was on during each."""
    seen: dict[str, bool] = {}

    def work(name: str, result: object) -> Callable[..., object]:
        def fake(*_args: object, **_kwargs: object) -> object:
            seen[name] = gc.isenabled()
            return result
        return fake

    monkeypatch.setattr(spawn, "exec_process", work("exec", 4242))
    monkeypatch.setattr(spawn, "create", work("create", SimpleNamespace(pid=4242)))
    monkeypatch.setattr(container, "start", work("start", None))
    monkeypatch.setattr(container, "delete", work("delete", None))
    monkeypatch.setattr(container, "wait_exit", work("wait", 0))
    monkeypatch.setattr(syscalls, "prctl", work("prctl", 0))  # not a subreaper: this is pytest's process
    return seen


@pytest.mark.parametrize(("argv", "waits", "work"), [
    (["exec", "--process", "{process}", "c1"], True, ("exec",)),
    (["exec", "--detach", "--process", "{process}", "c1"], False, ("exec",)),
    (["run", "--bundle", "/b", "c1"], True, ("create", "start")),
    (["run", "--detach", "--bundle", "/b", "c1"], False, ("create", "start")),
])
def test_run_and_exec_collect_only_while_they_wait(gc_off: None, faked_container_work: dict[str, bool],
                                                   tmp_path: Path, argv: list[str], waits: bool,
                                                   work: tuple[str, ...]) -> None:
    """In the foreground, run and exec wait as long as their process runs: the
    collector comes back on for the wait, never before it (the init is forked
    without it).  Detached (`exec --detach` is how containerd's shim runs every
    exec) they never turn it on."""
    process = tmp_path / "process.json"
    process.write_text('{"args": ["true"], "cwd": "/"}')
    argv = [arg.format(process=process) for arg in argv]
    assert main.main(["--root", str(tmp_path / "root"), *argv]) == 0
    assert {name: faked_container_work[name] for name in work} == dict.fromkeys(work, False)
    assert faked_container_work.get("wait") is (True if waits else None)
    assert gc.isenabled() is waits


def test_launcher_disables_the_collector_before_any_import(tmp_path: Path) -> None:
    """The generated dockyard-runc turns the GC off before it imports the runtime,
    so the imports and the init forked by create do not collect either."""
    repo = Path(__file__).resolve().parents[2]
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    subprocess.run(["bash", str(repo / "hack" / "install-launcher.sh"), str(venv)], check=True)
    lines = (venv / "bin" / "dockyard-runc").read_text().splitlines()
    assert lines.index("gc.disable()") < min(i for i, line in enumerate(lines) if "dockyard" in line)
    assert "gc.disable()" not in (venv / "bin" / "dockyard-shim").read_text()  # a daemon keeps its GC

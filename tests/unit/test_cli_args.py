"""The verbs' hand-written argument parser (runtime/cli/args.py): each form it
accepts, each error with the target it names, -h, and its import cost."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fresh_interpreter import run_fresh
from dockyard.runtime.cli.args import REMAINDER, Namespace, Parser, add_id
from dockyard.runtime.kernel.errors import InvalidArgument



def exec_like() -> Parser:
    """Every feature the verbs use, on one parser shaped like exec's."""
    p = Parser("exec")
    p.add_argument("--bundle", "-b", default=".")
    p.add_argument("--pid-file", default=None)
    p.add_argument("--env", "-e", action="append", default=[])
    p.add_argument("--tty", "-t", action="store_true")
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("--keep", action="store_true", help="do not delete")
    p.add_argument("--label", metavar="TEXT", default="")
    add_id(p)
    p.add_argument("command", nargs=REMAINDER)
    return p


def kill_like() -> Parser:
    p = Parser("kill")
    p.add_argument("--all", "-a", action="store_true")
    add_id(p)
    p.add_argument("signal", nargs="?", default="SIGTERM")
    return p


def ps_like() -> Parser:
    p = Parser("ps")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    add_id(p)
    p.add_argument("ps_args", nargs="*")
    return p


EXEC_DEFAULTS = {"bundle": ".", "pid_file": None, "env": [], "tty": False, "preserve_fds": 0,
                 "format": "table", "keep": False, "label": "", "id": "c1", "command": []}


@pytest.mark.parametrize(("argv", "changed"), [
    (["c1"], {}),
    # long, long=, short, Go-style single-dash long, double-dash short
    (["--bundle", "/b", "c1"], {"bundle": "/b"}),
    (["--bundle=/b", "c1"], {"bundle": "/b"}),
    (["-b", "/b", "c1"], {"bundle": "/b"}),
    (["-b=/b", "c1"], {"bundle": "/b"}),
    (["-bundle", "/b", "c1"], {"bundle": "/b"}),
    (["-pid-file", "/p", "c1"], {"pid_file": "/p"}),
    (["-pid-file=/p", "c1"], {"pid_file": "/p"}),
    (["--b", "/b", "c1"], {"bundle": "/b"}),
    (["--bundle=", "c1"], {"bundle": ""}),
    (["--label", "a=b", "c1"], {"label": "a=b"}),
    (["--label=a=b", "c1"], {"label": "a=b"}),
    # a value is the next token whatever it looks like (Go's rule)
    (["--pid-file", "-1", "c1"], {"pid_file": "-1"}),
    (["--pid-file", "--tty", "c1"], {"pid_file": "--tty"}),
    # the last of a repeated option wins
    (["-b", "/1", "-b", "/2", "c1"], {"bundle": "/2"}),
    # booleans
    (["--tty", "c1"], {"tty": True}),
    (["-t", "c1"], {"tty": True}),
    (["-tty", "c1"], {"tty": True}),
    (["--tty=true", "c1"], {"tty": True}),
    (["--tty=1", "c1"], {"tty": True}),
    (["--tty=false", "c1"], {"tty": False}),
    (["--tty", "--tty=False", "c1"], {"tty": False}),
    (["--keep", "c1"], {"keep": True}),
    # append
    (["-e", "A=1", "--env", "B=2", "--env=C=3", "c1"], {"env": ["A=1", "B=2", "C=3"]}),
    # type=int
    (["--preserve-fds", "3", "c1"], {"preserve_fds": 3}),
    (["--preserve-fds=0", "c1"], {"preserve_fds": 0}),
    # choices
    (["-f", "json", "c1"], {"format": "json"}),
    (["--format=table", "c1"], {"format": "table"}),
    # REMAINDER: everything after the id, dashes and all
    (["c1", "sh", "-c", "echo hi"], {"command": ["sh", "-c", "echo hi"]}),
    (["c1", "--tty", "ls"], {"command": ["--tty", "ls"]}),
    (["c1", "-h"], {"command": ["-h"]}),
    (["c1", "--", "ls"], {"command": ["--", "ls"]}),
    (["-t", "c1", "ls", "-l"], {"tty": True, "command": ["ls", "-l"]}),
    # -- ends the options
    (["--", "c1", "ls"], {"command": ["ls"]}),
    (["-t", "--", "-c1", "ls"], {"tty": True, "id": "-c1", "command": ["ls"]}),
    # a lone dash is an argument
    (["-", "x"], {"id": "-", "command": ["x"]}),
])
def test_exec_like(argv: list[str], changed: dict[str, object]) -> None:
    assert vars(exec_like().parse(argv)) == {**EXEC_DEFAULTS, **changed}


@pytest.mark.parametrize(("argv", "expected"), [
    (["c1"], {"all": False, "id": "c1", "signal": "SIGTERM"}),
    (["c1", "KILL"], {"all": False, "id": "c1", "signal": "KILL"}),
    # options intermixed with positionals, as argparse allowed
    (["c1", "--all", "9"], {"all": True, "id": "c1", "signal": "9"}),
    (["c1", "9", "-a"], {"all": True, "id": "c1", "signal": "9"}),
    (["-a", "c1"], {"all": True, "id": "c1", "signal": "SIGTERM"}),
    # a negative number is an argument, not an option (argparse's rule)
    (["c1", "-9"], {"all": False, "id": "c1", "signal": "-9"}),
])
def test_optional_positional(argv: list[str], expected: dict[str, object]) -> None:
    assert vars(kill_like().parse(argv)) == expected


@pytest.mark.parametrize(("argv", "expected"), [
    (["c1"], {"format": "table", "id": "c1", "ps_args": []}),
    (["c1", "aux"], {"format": "table", "id": "c1", "ps_args": ["aux"]}),
    (["c1", "a", "-f", "json", "b"], {"format": "json", "id": "c1", "ps_args": ["a", "b"]}),
    (["c1", "--", "-ef", "x"], {"format": "table", "id": "c1", "ps_args": ["-ef", "x"]}),
])
def test_star_positional(argv: list[str], expected: dict[str, object]) -> None:
    assert vars(ps_like().parse(argv)) == expected


def test_append_default_is_fresh_each_parse() -> None:
    p = exec_like()
    first = p.parse(["-e", "A=1", "c1"])
    second = p.parse(["c1"])
    assert first.env == ["A=1"]
    assert second.env == []
    second.env.append("B=2")
    assert p.parse(["c1"]).env == []


def test_star_default_is_fresh_each_parse() -> None:
    p = ps_like()
    p.parse(["c1"]).ps_args.append("x")
    assert p.parse(["c1"]).ps_args == []


def test_namespace() -> None:
    ns = Namespace(a=1, b="x")
    assert ns.a == 1 and ns.b == "x"
    assert ns == Namespace(a=1, b="x")
    assert ns != Namespace(a=1)
    assert repr(ns) == "Namespace(a=1, b='x')"
    with pytest.raises(AttributeError):
        ns.missing  # noqa: B018


def test_without_positionals() -> None:
    p = Parser("list")
    p.add_argument("--quiet", "-q", action="store_true")
    assert vars(p.parse([])) == {"quiet": False}
    assert vars(p.parse(["-q"])) == {"quiet": True}


@pytest.mark.parametrize(("parser", "argv", "target", "detail"), [
    (exec_like, ["--bogus", "c1"], "--bogus", "unknown option"),
    (exec_like, ["--bogus=1", "c1"], "--bogus", "unknown option"),
    (exec_like, ["-bogus", "c1"], "--bogus", "unknown option"),
    (exec_like, ["-x", "c1"], "-x", "unknown option"),
    (exec_like, ["-te", "c1"], "--te", "unknown option"),      # no clusters of short flags
    (exec_like, ["--bundle"], "--bundle", "needs a value"),
    (exec_like, ["-b"], "-b", "needs a value"),
    (exec_like, ["-pid-file"], "--pid-file", "needs a value"),
    (exec_like, [], "CONTAINER_ID", "missing argument"),
    (exec_like, ["-t"], "CONTAINER_ID", "missing argument"),
    (exec_like, ["--preserve-fds", "x", "c1"], "--preserve-fds", "must be an integer, not 'x'"),
    (exec_like, ["--preserve-fds=", "c1"], "--preserve-fds", "must be an integer, not ''"),
    (exec_like, ["--format", "xml", "c1"], "--format", "must be one of table, json, not 'xml'"),
    (exec_like, ["-f=xml", "c1"], "-f", "must be one of table, json, not 'xml'"),
    (exec_like, ["--tty=yes", "c1"], "--tty", "must be true or false, not 'yes'"),
    (kill_like, [], "CONTAINER_ID", "missing argument"),
    (kill_like, ["c1", "--bogus"], "--bogus", "unknown option"),
    (kill_like, ["c1", "-a=maybe"], "-a", "must be true or false, not 'maybe'"),
    (kill_like, ["c1", "9", "extra"], "extra", "unexpected argument"),
    (kill_like, ["c1", "9", "--", "-1"], "-1", "unexpected argument"),
    (ps_like, ["-f", "json"], "CONTAINER_ID", "missing argument"),
    (ps_like, ["c1", "-ef"], "--ef", "unknown option"),
])
def test_errors(parser: Callable[[], Parser], argv: list[str], target: str, detail: str) -> None:
    p = parser()
    with pytest.raises(InvalidArgument) as info:
        p.parse(argv)
    assert info.value.op == f"parse {p.prog} arguments"
    assert info.value.target == target
    assert info.value.detail == detail


def test_error_message() -> None:
    with pytest.raises(InvalidArgument) as info:
        kill_like().parse(["c1", "9", "x"])
    assert str(info.value) == "parse dockyard-runc kill arguments x: unexpected argument"


@pytest.mark.parametrize("flag", ["-h", "--help", "-help"])
def test_help(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        exec_like().parse(["-t", flag, "--bogus"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "usage: dockyard-runc exec [options] CONTAINER_ID [command ...]"
    for spelled in ("--bundle, -b BUNDLE", "--pid-file PID_FILE", "--env, -e ENV", "--tty, -t",
                    "--preserve-fds PRESERVE_FDS", "--format, -f FORMAT", "--label TEXT", "--help, -h"):
        assert any(line.strip().startswith(spelled) for line in lines), spelled
    assert "do not delete" in out
    assert "table, json" in out


def test_help_usage_override(capsys: pytest.CaptureFixture[str]) -> None:
    p = Parser("spec", usage="dockyard-runc spec [--bundle DIR]")
    with pytest.raises(SystemExit):
        p.parse(["--help"])
    assert capsys.readouterr().out.startswith("usage: dockyard-runc spec [--bundle DIR]\n")


def test_help_through_main(capsys: pytest.CaptureFixture[str]) -> None:
    """main lets the verb's SystemExit(0) through (it catches only Exception)."""
    from dockyard.runtime.cli import main

    with pytest.raises(SystemExit) as info:
        main.main(["kill", "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: dockyard-runc kill [options] CONTAINER_ID [signal]")


def test_bad_flag_through_main(capsys: pytest.CaptureFixture[str]) -> None:
    from dockyard.runtime.cli import main

    assert main.main(["--root", "/nonexistent", "kill", "--bogus", "c1"]) == 1
    assert capsys.readouterr().err == "dockyard-runc: parse dockyard-runc kill arguments --bogus: unknown option\n"


@pytest.mark.parametrize(("kwargs", "names"), [
    ({"action": "count"}, ("--v",)),
    ({"nargs": "+"}, ("files",)),
    ({"action": "store_true"}, ("flag",)),
    ({"nargs": "?"}, ("--opt",)),
])
def test_unsupported_declarations(kwargs: dict[str, str], names: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        Parser("x").add_argument(*names, **kwargs)  # type: ignore[arg-type]


def test_imports_nothing_but_errors() -> None:
    """The point of the module: importing it and parsing load nothing beyond
    what runtime/kernel/errors.py loads (no argparse, gettext, locale, shutil, re)."""
    out = run_fresh(
        "import dockyard.runtime.kernel.errors\n"
        "before = set(sys.modules)\n"
        "from dockyard.runtime.cli.args import Parser, add_id\n"
        "p = Parser('kill'); p.add_argument('--all', '-a', action='store_true'); add_id(p)\n"
        "p.parse(['-a', 'c1'])\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    ).split()
    assert set(out) <= {"dockyard.runtime.cli", "dockyard.runtime.cli.args"}, out


@pytest.mark.parametrize(("module", "absent"), [
    # exec has no rootfs to set up; only a process with a terminal needs the
    # pty code (termios is a shared object: loading it costs ~0.5 ms here)
    ("exec_", {"dockyard.runtime.rootfs.setup", "dockyard.runtime.console", "termios"}),
    ("create", {"dockyard.runtime.console", "termios"}),
    ("start", {"dockyard.runtime.spawn", "dockyard.runtime.init", "ctypes", "json", "re", "enum"}),
])
def test_subcommands_load_only_what_they_use(module: str, absent: set[str]) -> None:
    """Every dockyard-runc call pays its imports: the lazily loaded parts stay out."""
    loaded = set(run_fresh(f"import dockyard.runtime.cli.{module}\nprint(' '.join(sorted(sys.modules)))\n").split())
    assert f"dockyard.runtime.cli.{module}" in loaded
    assert not loaded & absent, loaded & absent

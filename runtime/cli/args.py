"""The verbs' argument parser: the part of argparse's API the verbs use,
parsed with runc's (Go flag's) conventions, errors raised as InvalidArgument.

Why not argparse: every container start runs the CLI three times, and
argparse with what it loads (re, gettext, and locale and shutil once it
parses) is among the costliest imports (runtime/kernel/lean/README.md).
This module imports nothing but the runtime's errors.

What it accepts:

* options by long or short name: ``--bundle x``, ``--bundle=x``, ``-b x``,
  and Go's single-dash long names (``-pid-file x``, ``--b x``) as runc's
  urfave/cli does; a value-taking option takes the next token whatever it
  is (Go's rule: ``--memory -1`` works); no ``-bx`` and no ``-td`` clusters;
* booleans as ``--detach`` or ``--detach=true|false`` (Go's spellings);
* options anywhere among the positionals, as argparse allowed, until ``--``
  or until a REMAINDER positional starts: that one takes every token from the
  first one after the positionals before it, verbatim (``exec ID sh -c x``);
* ``-h``/``--help`` (or ``-help``): a usage listing on stdout, then
  SystemExit(0), which main lets through as it did argparse's.

Errors name what was wrong as the target: the option (normalised to
``--long``/``-s``), the positional's metavar, or the unexpected argument.
"""

from __future__ import annotations

from ..kernel.errors import InvalidArgument

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

REMAINDER = "..."  # argparse's spelling of the same nargs value

_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


class Namespace:
    """The parsed values, one attribute per option and positional."""

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like argparse's

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"


class _Arg:
    __slots__ = ("action", "choices", "default", "dest", "help", "metavar", "names", "nargs", "type")

    def __init__(self, names: tuple[str, ...], dest: str, action: str, default: object,
                 type: Callable[[str], object] | None, choices: tuple[object, ...] | None,
                 help: str, metavar: str, nargs: str | None) -> None:
        self.names = names
        self.dest = dest
        self.action = action
        self.default = default
        self.type = type
        self.choices = choices
        self.help = help
        self.metavar = metavar
        self.nargs = nargs


def _flag(body: str) -> str:
    """The canonical spelling of an option named ``body`` (no dashes)."""
    return ("-" if len(body) == 1 else "--") + body


class Parser:
    def __init__(self, verb: str, usage: str = "") -> None:
        self.prog = f"dockyard-runc {verb}"
        self.usage = usage
        self._options: list[_Arg] = []
        self._by_name: dict[str, _Arg] = {}  # name without dashes -> option
        self._positionals: list[_Arg] = []

    def add_argument(self, *names: str, action: str = "store", default: object = None,
                     type: Callable[[str], object] | None = None, choices: tuple[object, ...] | None = None,
                     help: str = "", metavar: str | None = None, nargs: str | None = None,
                     dest: str | None = None) -> None:
        if action not in ("store", "store_true", "append"):
            raise ValueError(f"{self.prog}: unsupported action {action!r}")
        if not names[0].startswith("-"):
            if nargs not in (None, "?", "*", REMAINDER) or action != "store" or len(names) != 1:
                raise ValueError(f"{self.prog}: unsupported positional {names!r}")
            self._positionals.append(_Arg(names, dest or names[0], action, default, type, choices, help,
                                          metavar or names[0], nargs))
            return
        if nargs is not None:
            raise ValueError(f"{self.prog}: unsupported nargs for option {names!r}")
        longs = [n for n in names if n.startswith("--")]
        name = (longs[0] if longs else names[0]).lstrip("-")
        if action == "store_true" and default is None:
            default = False
        opt = _Arg(names, dest or name.replace("-", "_"), action, default, type, choices, help,
                   metavar or name.replace("-", "_").upper(), nargs)
        self._options.append(opt)
        for n in names:
            self._by_name[n.lstrip("-")] = opt

    def _fail(self, target: str, message: str) -> InvalidArgument:
        return InvalidArgument(f"parse {self.prog} arguments", target, message)

    def _convert(self, arg: _Arg, target: str, text: str) -> object:
        value: object = text
        if arg.type is not None:
            try:
                value = arg.type(text)
            except ValueError:
                kind = "an integer" if arg.type is int else f"a valid {getattr(arg.type, '__name__', 'value')}"
                raise self._fail(target, f"must be {kind}, not {text!r}") from None
        if arg.choices is not None and value not in arg.choices:
            raise self._fail(target, f"must be one of {', '.join(map(str, arg.choices))}, not {text!r}")
        return value

    def parse(self, argv: list[str]) -> Namespace:
        values: dict[str, object] = {}
        for opt in self._options:
            values[opt.dest] = _fresh(opt.default)
        given: dict[str, list[object]] = {}  # positional dest -> its values
        slots = self._positionals
        slot = 0
        options_end = False
        i = 0
        while i < len(argv):
            token = argv[i]
            i += 1
            if not options_end and token == "--":
                options_end = True
                continue
            if not options_end and token.startswith("-") and token != "-" and not _is_number(token):
                if token in ("-h", "--help", "-help", "--h"):
                    import sys

                    sys.stdout.write(self.format_help())
                    raise SystemExit(0)
                i = self._option(token, argv, i, values)
                continue
            if slot >= len(slots):
                raise self._fail(token, "unexpected argument")
            pos = slots[slot]
            if pos.nargs == REMAINDER:
                given[pos.dest] = [token, *argv[i:]]
                break
            given.setdefault(pos.dest, []).append(self._convert(pos, pos.metavar, token))
            if pos.nargs != "*":
                slot += 1
                if slot < len(slots) and slots[slot].nargs == REMAINDER:
                    given[slots[slot].dest] = list(argv[i:])
                    break
        for pos in slots:
            got = given.get(pos.dest)
            if pos.nargs in ("*", REMAINDER):
                values[pos.dest] = got if got is not None else [] if pos.default is None else _fresh(pos.default)
            elif got:
                values[pos.dest] = got[0]
            elif pos.nargs == "?":
                values[pos.dest] = pos.default
            else:
                raise self._fail(pos.metavar, "missing argument")
        return Namespace(**values)

    def _option(self, token: str, argv: list[str], i: int, values: dict[str, object]) -> int:
        """Apply the option in ``token`` (its value maybe in ``argv[i]``); returns the next index."""
        name, eq, text = token.partition("=")
        body = name[2:] if name.startswith("--") else name[1:]
        target = _flag(body)
        opt = self._by_name.get(body)
        if opt is None or not body:
            raise self._fail(target, "unknown option")
        if opt.action == "store_true":
            if not eq or text in _TRUE:
                values[opt.dest] = True
            elif text in _FALSE:
                values[opt.dest] = False
            else:
                raise self._fail(target, f"must be true or false, not {text!r}")
            return i
        if not eq:
            if i >= len(argv):
                raise self._fail(target, "needs a value")
            text = argv[i]
            i += 1
        value = self._convert(opt, target, text)
        if opt.action == "append":
            current = values[opt.dest]
            if isinstance(current, list):
                current.append(value)
            else:
                values[opt.dest] = [value]
        else:
            values[opt.dest] = value
        return i

    def format_help(self) -> str:
        if self.usage:
            head = self.usage
        else:
            parts = [self.prog, "[options]"]
            for pos in self._positionals:
                if pos.nargs is None:
                    parts.append(pos.metavar)
                elif pos.nargs == "?":
                    parts.append(f"[{pos.metavar}]")
                else:
                    parts.append(f"[{pos.metavar} ...]")
            head = " ".join(parts)
        rows = []
        for opt in self._options:
            spelled = ", ".join(opt.names)
            if opt.action != "store_true":
                spelled += " " + opt.metavar
            notes = [opt.help] if opt.help else []
            if opt.choices is not None:
                notes.append("one of " + ", ".join(map(str, opt.choices)))
            if opt.action == "append":
                notes.append("repeatable")
            elif opt.action == "store" and opt.default not in (None, ""):
                notes.append(f"default: {opt.default}")
            rows.append((spelled, "; ".join(notes)))
        rows.append(("--help, -h", "show this help"))
        width = max(len(s) for s, _ in rows) + 2
        lines = [f"usage: {head}", "", "options:"]
        lines += [f"   {s.ljust(width)}{n}".rstrip() for s, n in rows]
        return "\n".join(lines) + "\n"


def _is_number(token: str) -> bool:
    """``-1``, ``-9``, ``-0.5``: values, not options (argparse's rule for
    parsers that have no option that looks like a number)."""
    body = token[1:]
    return body.replace(".", "", 1).isdigit()


def _fresh(default: object) -> object:
    """A list default copied: append's ``default=[]`` must not be shared
    between parses (argparse's is, until the first append)."""
    return list(default) if isinstance(default, list) else default


def add_id(parser: Parser) -> None:
    parser.add_argument("id", metavar="CONTAINER_ID")

"""Where the runtime's warnings and debug lines go.

The CLI points this at ``--log`` in the chosen ``--log-format`` (containerd
reads the JSON form back when a call fails); until then they go to stderr.
A module of its own instead of ``logging``, whose import costs more than
this whole file on every container start.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable

_sink: Callable[[str, str], None] | None = None
_debug = False


def configure(sink: Callable[[str, str], None], debug: bool) -> None:
    global _sink, _debug
    _sink, _debug = sink, debug


def _emit(level: str, msg: str) -> None:
    if _sink is not None:
        _sink(level, msg)
    else:
        sys.stderr.write(f"dockyard-runc: {level}: {msg}\n")


def warn(msg: str) -> None:
    _emit("warning", msg)


def debug(msg: str) -> None:
    if _debug:
        _emit("debug", msg)

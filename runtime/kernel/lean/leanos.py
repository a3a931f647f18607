"""``os``, as far as the runtime uses it, without the cost of ``import os``.

Every create, start and delete is a fresh interpreter, and ``import os``
is a cost as large as start's own work (README.md here).  Most of it is
``_collections_abc``'s two dozen ABC classes, which os needs only for
``os.environ`` and ``os.PathLike``.  The functions and constants are the
builtin ``posix`` module's: the very objects os re-exports.  Runtime
modules import this module by its own name (``leanos.open``), and ``path``
is leanpath, posixpath's subset for str paths.

What is not here (``os.environ``, ``os.walk``, ``subprocess``) is not on a
container's create, start or delete path; code that needs it imports the
real ``os`` where it needs it.  tests/integration checks, with
``-X importtime``, that those verbs load no ``os``.
"""

from __future__ import annotations

import sys
from posix import *
from posix import _exit as _exit  # noqa: PLC0414 (a private name, not in the star; "as" re-exports it)

from . import leanpath

path = leanpath

# posix's environ is bytes: it is offered under os's name for the bytes
# mapping, environb (the shim hands it to posix_spawn), and getenv decodes
# one value; a bytes mapping named like os's str environ would only mislead.
environb: dict[bytes, bytes] = environ  # noqa: F821 (bound by the star import)
del environ  # noqa: F821

sep = "/"
devnull = "/dev/null"


def getenv(name: str, default: str = "") -> str:
    value = environb.get(name.encode())
    return default if value is None else value.decode(sys.getfilesystemencoding(), "surrogateescape")
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2


def fsencode(name: str | bytes) -> bytes:
    if isinstance(name, bytes):
        return name
    return name.encode(sys.getfilesystemencoding(), "surrogateescape")


def makedirs(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    """os.makedirs: the missing parents with the default mode, then ``name``
    with ``mode``; an existing directory is an error unless ``exist_ok``."""
    head, tail = path.split(name)
    if not tail:
        head, tail = path.split(head)
    if head and tail and not path.exists(head):
        try:
            makedirs(head, exist_ok=exist_ok)
        except FileExistsError:
            pass  # made meanwhile by someone else
    try:
        mkdir(name, mode)
    except OSError:
        if not exist_ok or not path.isdir(name):
            raise

"""The container's argv, environment and working directory.

Docker's rules, which containerd's CRI plugin copies: ``command`` replaces
the image's Entrypoint and ``args`` replaces its Cmd; but once ``command``
is given the image's Cmd is dropped too (it was written for the image's
Entrypoint, not for the new program).  An Entrypoint of exactly ``[""]``
means "no entrypoint".  Nothing to run at all is the caller's error.

The environment starts from a default PATH, then the image's variables,
then the extras the caller adds (HOSTNAME, TERM for a tty), then the
config's; a later value for a name replaces the earlier one in place, so
the order of first appearance is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import InvalidArgument


def process_args(command: Sequence[str], args: Sequence[str], entrypoint: Sequence[str],
                 cmd: Sequence[str], *, field: str = "config.command") -> list[str]:
    command = list(command)
    args = list(args)
    if not command:
        if not args:
            args = list(cmd)
        if list(entrypoint) != [""]:
            command = list(entrypoint)
    argv = command + args
    if not argv:
        raise InvalidArgument(f"{field}: no command given and the image has no Entrypoint or Cmd")
    if not argv[0]:
        raise InvalidArgument(f"{field}: the program to run is an empty string")
    return argv


def merge_env(*layers: Iterable[str]) -> list[str]:
    """``KEY=VALUE`` lists merged left to right (later wins, first position
    kept).  An entry without ``=`` (docker allows ``FOO`` in an image config
    to mean "unset") removes the name."""
    merged: dict[str, str] = {}
    for layer in layers:
        for item in layer:
            key, sep, value = item.partition("=")
            if not key:
                continue
            if not sep:
                merged.pop(key, None)
                continue
            merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def working_dir(config_dir: str, image_dir: str, *, field: str = "config.working_dir") -> str:
    cwd = config_dir or image_dir or "/"
    if not cwd.startswith("/"):
        if config_dir:
            raise InvalidArgument(f"{field}: {config_dir!r} must be an absolute path")
        cwd = "/" + cwd  # docker reads a relative image WorkingDir from /
    return cwd

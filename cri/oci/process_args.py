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


# What execve(2) can take, and what Dockyard takes for an exec.  The kernel
# refuses one string of MAX_ARG_STRLEN bytes or more (with its NUL) and an
# argv + envp larger than a quarter of the stack limit (2 MiB under the
# usual 8 MiB); a C string ends at its first NUL.  The count and total are
# Dockyard's own bounds, far above any probe or `kubectl exec` and low
# enough that one request cannot make the shim copy megabytes.
MAX_ARG_STRLEN = 32 * 4096
MAX_EXEC_ARGS = 4096
MAX_EXEC_BYTES = 1 << 20


def check_exec_strings(items: Sequence[str], field: str) -> int:
    """InvalidArgument naming ``field[i]`` for a string execve cannot pass;
    else the bytes they take (with their NULs)."""
    total = 0
    for i, item in enumerate(items):
        if "\0" in item:
            raise InvalidArgument(f"{field}[{i}]: contains a NUL byte")
        size = len(item.encode("utf-8", "surrogateescape"))
        if size >= MAX_ARG_STRLEN:
            raise InvalidArgument(f"{field}[{i}]: {size} bytes, longer than the {MAX_ARG_STRLEN - 1} execve(2) takes")
        total += size + 1
    return total


def check_exec_argv(argv: Sequence[str], field: str) -> None:
    """InvalidArgument naming ``field`` or ``field[i]`` unless an exec could run ``argv``."""
    if not argv:
        raise InvalidArgument(f"{field}: must not be empty")
    if not argv[0]:
        raise InvalidArgument(f"{field}[0]: the program to run is an empty string")
    if len(argv) > MAX_EXEC_ARGS:
        raise InvalidArgument(f"{field}: {len(argv)} arguments, more than the {MAX_EXEC_ARGS} allowed")
    total = check_exec_strings(argv, field)
    if total > MAX_EXEC_BYTES:
        raise InvalidArgument(f"{field}: {total} bytes in all, more than the {MAX_EXEC_BYTES} allowed")


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

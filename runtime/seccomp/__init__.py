"""OCI ``linux.seccomp`` for dockyard-runc.

Split of work between the two processes of a container start::

    parent (CLI)                                  container init
    ------------                                  --------------
    validate(spec["linux"]["seccomp"])
    compile_filter(...) -> CompiledFilter  ──────►  ... every other step ...
                           (program bytes, flags)   syscalls.seccomp_set_filter(program, flags)
                                                    execve

The init never maps libseccomp: it receives finished classic-BPF bytes, so
the filter is the last thing installed and nothing but execve runs under it.

This module is imported on every CLI start, so even the name tables (and
their records) are imported only when a spec is validated; libseccomp
only when a filter is compiled or the features are listed.
"""

from __future__ import annotations

from ..kernel.errors import Unsupported
from ..kernel.lean.records import Record

__all__ = ["CompiledFilter", "compile_filter", "validate", "features"]
class CompiledFilter(Record):
    """``program`` is an array of 8-byte ``struct sock_filter``; ``flags`` are
    the SECCOMP_FILTER_FLAG_* bits to pass to seccomp(SECCOMP_SET_MODE_FILTER)."""

    program: bytes
    flags: int


def validate(seccomp: dict[str, object]) -> None:
    """Check ``linux.seccomp`` without loading anything.

    Raises InvalidSpec naming the field, or Unsupported (SCMP_ACT_NOTIFY)."""
    from ..kernel import seccomp_profile as profile

    profile.parse(seccomp)


def compile_filter(seccomp: dict[str, object]) -> CompiledFilter:
    """Validate ``linux.seccomp`` and compile it to BPF with libseccomp.

    Changes no kernel state; the caller's process is not filtered."""
    from ..kernel import seccomp_profile as profile
    from .compiler import compile_profile  # loads libseccomp

    parsed = profile.parse(seccomp)
    return CompiledFilter(program=compile_profile(parsed), flags=parsed.flags)


def features() -> dict[str, object]:
    """``linux.seccomp`` of ``dockyard-runc features``."""
    from ..kernel import seccomp_profile as _profile
    from . import libseccomp

    try:
        archs = sorted(name for name, lib_name in _profile.ARCHES.items() if libseccomp.arch_token(lib_name))
    except Unsupported:
        return {"enabled": False}
    known_flags = list(_profile.FLAGS)
    return {
        "enabled": True,
        "actions": sorted(set(_profile.ACTIONS) - _profile.UNSUPPORTED_ACTIONS),
        "operators": sorted(_profile.OPERATORS),
        "archs": archs,
        "knownFlags": known_flags,
        # Every flag but WAIT_KILLABLE_RECV (which needs NOTIFY) is in the
        # kernel since 4.17, older than anything else this runtime needs.
        "supportedFlags": [f for f in known_flags if f not in _profile.UNSUPPORTED_FLAGS],
    }

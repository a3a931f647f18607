"""A validated :class:`Profile` → a classic-BPF seccomp program, via libseccomp.

This runs in the runtime's parent process, before the container's init is
forked, so the init only has to hand ready bytes to seccomp(2) as its last
step before execve.  Behaviour follows runc:

* a syscall name no architecture knows is skipped: profiles list syscalls
  newer than the library, and the default action covers them;
* a rule whose action equals the default action is skipped (libseccomp
  rejects it, and it changes nothing);
* when two conditions of a rule test the same argument, libseccomp cannot
  express both in one rule, so each becomes its own rule (they then match
  when *either* holds, as with runc).
"""

from __future__ import annotations

import errno as _errno

from ..kernel.errors import InvalidSpec, SyscallError, Unsupported
from ..kernel.seccomp_profile import ARCHES, ROOT, Profile, Rule
from .libseccomp import (
    ATTR_CTL_NNP,
    ATTR_CTL_OPTIMIZE,
    ATTR_CTL_TSYNC,
    NR_SCMP_ERROR,
    ArgCmp,
    Filter,
    arch_token,
    syscall_number,
)

# The kernel refuses a classic-BPF program longer than BPF_MAXINSNS.
BPF_MAXINSNS = 4096
_SOCK_FILTER_SIZE = 8

# libseccomp's binary-tree layout pays off only on long rule sets, and
# libseccomp <= 2.5.4 misbehaves with it when there are no rules at all.
_OPTIMIZE_ABOVE_RULES = 32


def _condition_groups(rule: Rule) -> list[list[ArgCmp]]:
    conditions = [ArgCmp(a.index, a.op, a.value, a.value_two) for a in rule.args]
    indexes = [a.index for a in rule.args]
    if len(set(indexes)) == len(indexes):
        return [conditions]
    return [[c] for c in conditions]


def _add_arches(flt: Filter, profile: Profile) -> None:
    for i, oci_name in enumerate(profile.architectures):
        token = arch_token(ARCHES[oci_name])
        field = f"{ROOT}.architectures[{i}]"
        if token == 0:
            raise Unsupported("seccomp architecture", field, f"the installed libseccomp does not know {oci_name}")
        try:
            flt.add_arch(token, oci_name)
        except SyscallError as err:
            if err.errno == _errno.EDOM:
                # libseccomp cannot mix byte orders in one filter; such an
                # architecture could not run on this kernel anyway.
                raise InvalidSpec(field, f"{oci_name} has a different byte order than the native architecture, "
                                         "and one filter cannot hold both") from err
            raise InvalidSpec(field, f"libseccomp cannot add {oci_name}: {err}") from err


def _add_rules(flt: Filter, profile: Profile) -> None:
    for rule in profile.rules:
        if rule.action == profile.default_action:
            continue
        groups = _condition_groups(rule)
        for j, name in enumerate(rule.names):
            nr = syscall_number(name)
            if nr == NR_SCMP_ERROR:
                continue
            for conditions in groups:
                try:
                    flt.add_rule(rule.action, nr, conditions, name)
                except SyscallError as err:
                    raise InvalidSpec(f"{rule.field}.names[{j}]", f"libseccomp rejected the rule for {name}: {err}") from err


def compile_profile(profile: Profile) -> bytes:
    """The BPF program (an array of 8-byte ``struct sock_filter``)."""
    with Filter(profile.default_action) as flt:
        # The runtime sets no_new_privs itself, from process.noNewPrivileges;
        # the filter flags (TSYNC, ...) are returned to the caller and passed
        # to seccomp(2) by the init.  These attributes matter only to
        # seccomp_load, which is never called; they are cleared so that the
        # context states no more than the spec asks for.
        flt.set_attr(ATTR_CTL_NNP, 0)
        flt.set_attr(ATTR_CTL_TSYNC, 0)
        if len(profile.rules) > _OPTIMIZE_ABOVE_RULES:
            flt.set_attr(ATTR_CTL_OPTIMIZE, 2)
        _add_arches(flt, profile)
        _add_rules(flt, profile)
        program = flt.export_bpf()
    if len(program) % _SOCK_FILTER_SIZE:
        raise SyscallError("seccomp_export_bpf", "memfd", detail=f"{len(program)} bytes is not a whole program")
    if len(program) // _SOCK_FILTER_SIZE > BPF_MAXINSNS:
        raise InvalidSpec(f"{ROOT}.syscalls",
                          f"the filter compiles to {len(program) // _SOCK_FILTER_SIZE} BPF instructions; "
                          f"the kernel accepts at most {BPF_MAXINSNS}")
    return program

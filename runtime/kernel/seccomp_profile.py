"""OCI ``linux.seccomp`` → a validated, normalised profile.  No I/O, no ctypes.

Every mistake is reported as :class:`InvalidSpec` naming the exact field
(``linux.seccomp.syscalls[3].args[0].op``), and what this runtime knows but
cannot do is :class:`Unsupported`.  The name tables here are also what
``dockyard-runc features`` reports.

Facts the encoding below depends on (``seccomp.h`` of libseccomp and
``linux/seccomp.h``; they are kernel ABI and never change):

* An action is a 32-bit ``SECCOMP_RET_*`` value: the high 16 bits say what to
  do, the low 16 bits (``SECCOMP_RET_DATA``) carry the errno for ERRNO and the
  message for the tracer for TRACE.  So a TRACE message above 0xffff cannot
  be expressed.  An ERRNO value must also be a real errno: a syscall returns
  -1..-4095 for errors, and libseccomp refuses anything from MAX_ERRNO (4095)
  up.  Both are rejected here, naming the field, rather than failing later.
* ``SCMP_ACT_KILL`` is the historical name of ``SCMP_ACT_KILL_THREAD`` (value
  0): only the offending thread dies.  ``KILL_PROCESS`` needs Linux 4.14.
* For ``SCMP_CMP_MASKED_EQ`` the OCI ``value`` is the mask and ``valueTwo`` the
  datum the masked argument must equal; for the other operators ``valueTwo``
  is ignored.  The fields map one to one onto libseccomp's ``datum_a`` and
  ``datum_b``.
* The ``flags`` are the ``SECCOMP_FILTER_FLAG_*`` bits of seccomp(2), handed
  to the kernel unchanged when the init loads the program.
"""

from __future__ import annotations

import errno as _errno

from .errors import InvalidSpec, Unsupported
from .lean.records import Record

ROOT = "linux.seccomp"

# --- actions -----------------------------------------------------------------

ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
RET_DATA_MASK = 0x0000FFFF
# libseccomp's db_action_valid() refuses SCMP_ACT_ERRNO(x) for x >= MAX_ERRNO.
ERRNO_RET_MAX = 4094

#: OCI action name -> SECCOMP_RET_* base value (data bits still zero).
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}

#: The actions whose low 16 bits carry ``errnoRet``.
ACTIONS_WITH_ERRNO = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})

#: NOTIFY needs a listener fd handed to a seccomp agent at listenerPath; this
#: runtime does not implement that hand-off.
UNSUPPORTED_ACTIONS = frozenset({"SCMP_ACT_NOTIFY"})

# --- operators ---------------------------------------------------------------

#: OCI operator name -> libseccomp ``enum scmp_compare``.
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# Linux system calls take at most six arguments (seccomp_data.args[6]).
MAX_ARGS = 6

# --- architectures -----------------------------------------------------------

#: OCI architecture name -> the name libseccomp's seccomp_arch_resolve_name()
#: understands.  Whether the installed libseccomp knows it is checked when the
#: filter is compiled.
ARCHES: dict[str, str] = {
    "SCMP_ARCH_X86": "x86",
    "SCMP_ARCH_X86_64": "x86_64",
    "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm",
    "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips",
    "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32",
    "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64",
    "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc",
    "SCMP_ARCH_PPC64": "ppc64",
    "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390",
    "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc",
    "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
    "SCMP_ARCH_LOONGARCH64": "loongarch64",
}

# --- flags -------------------------------------------------------------------

#: OCI flag name -> SECCOMP_FILTER_FLAG_* bit.
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}

#: WAIT_KILLABLE_RECV only means something together with NEW_LISTENER, i.e.
#: with SCMP_ACT_NOTIFY, and the kernel rejects it otherwise (EINVAL).
UNSUPPORTED_FLAGS = frozenset({"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"})

_U64_MAX = (1 << 64) - 1


# --- the normalised profile --------------------------------------------------
class ArgCondition(Record):
    """One ``scmp_arg_cmp``: compare syscall argument ``index`` with ``op``."""

    index: int
    op: int
    value: int
    value_two: int
class Rule(Record):
    """One entry of ``linux.seccomp.syscalls``; ``field`` is its path, kept for
    error messages raised later by the compiler."""

    field: str
    names: tuple[str, ...]
    action: int
    args: tuple[ArgCondition, ...]
class Profile(Record):
    default_action: int
    architectures: tuple[str, ...]  # OCI names, in spec order
    flags: int
    rules: tuple[Rule, ...]


def encode_action(name: str, errno_ret: int | None) -> int:
    """The 32-bit SECCOMP_RET_* value for an OCI action (EPERM when an errno
    carrying action has no errnoRet, as runc does)."""
    base = ACTIONS[name]
    if name in ACTIONS_WITH_ERRNO:
        return base | ((_errno.EPERM if errno_ret is None else errno_ret) & RET_DATA_MASK)
    return base


# --- validation --------------------------------------------------------------

def _is_int(value: object) -> bool:
    # bool is an int subclass; JSON true is never a number.
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_list(spec: dict[str, object], key: str, field: str) -> list[object]:
    value = spec.get(key)
    if value is None:  # absent or JSON null (Go marshals a nil slice as null)
        return []
    if not isinstance(value, list):
        raise InvalidSpec(field, f"must be an array, got {type(value).__name__}")
    return value


def _action(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidSpec(field, "must be a string naming an SCMP_ACT_* action")
    if value not in ACTIONS:
        raise InvalidSpec(field, f"unknown seccomp action {value!r}")
    return value


def _errno_ret(value: object, action: str, field: str) -> int | None:
    if value is None:
        return None
    if not _is_int(value):
        raise InvalidSpec(field, f"must be an unsigned integer, got {value!r}")
    assert isinstance(value, int)
    if action not in ACTIONS_WITH_ERRNO:
        # runtime-spec: when the action does not support an errno the runtime
        # MUST fail.
        raise InvalidSpec(field, f"is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}")
    limit = ERRNO_RET_MAX if action == "SCMP_ACT_ERRNO" else RET_DATA_MASK
    if not 0 <= value <= limit:
        raise InvalidSpec(field, f"{value} is out of range for {action} (0 to {limit})")
    return value


def _u64(value: object, field: str) -> int:
    if not _is_int(value):
        raise InvalidSpec(field, f"must be an unsigned 64-bit integer, got {value!r}")
    assert isinstance(value, int)
    if not 0 <= value <= _U64_MAX:
        raise InvalidSpec(field, f"{value} is out of the unsigned 64-bit range")
    return value


def _arg(raw: object, field: str) -> ArgCondition:
    if not isinstance(raw, dict):
        raise InvalidSpec(field, "must be an object")
    if "index" not in raw:
        raise InvalidSpec(f"{field}.index", "is required")
    index = raw["index"]
    if not _is_int(index) or not 0 <= index < MAX_ARGS:
        raise InvalidSpec(f"{field}.index", f"must be an integer from 0 to {MAX_ARGS - 1}, got {index!r}")
    if "value" not in raw:
        raise InvalidSpec(f"{field}.value", "is required")
    value = _u64(raw["value"], f"{field}.value")
    value_two = 0 if raw.get("valueTwo") is None else _u64(raw["valueTwo"], f"{field}.valueTwo")
    op = raw.get("op")
    if op is None:
        raise InvalidSpec(f"{field}.op", "is required")
    if not isinstance(op, str) or op not in OPERATORS:
        raise InvalidSpec(f"{field}.op", f"unknown seccomp operator {op!r}")
    return ArgCondition(index=index, op=OPERATORS[op], value=value, value_two=value_two)


def _names(raw: dict[str, object], field: str) -> tuple[str, ...]:
    names = raw.get("names")
    if names is None:
        raise InvalidSpec(f"{field}.names", "is required")
    if not isinstance(names, list):
        raise InvalidSpec(f"{field}.names", "must be an array of syscall names")
    if not names:
        raise InvalidSpec(f"{field}.names", "must name at least one syscall")
    for j, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise InvalidSpec(f"{field}.names[{j}]", f"must be a non-empty string, got {name!r}")
    return tuple(names)


def _rule(raw: object, field: str) -> tuple[Rule, str]:
    if not isinstance(raw, dict):
        raise InvalidSpec(field, "must be an object")
    names = _names(raw, field)
    action = _action(raw.get("action"), f"{field}.action")
    errno_ret = _errno_ret(raw.get("errnoRet"), action, f"{field}.errnoRet")
    args = tuple(_arg(a, f"{field}.args[{k}]") for k, a in enumerate(_optional_list(raw, "args", f"{field}.args")))
    return Rule(field=field, names=names, action=encode_action(action, errno_ret), args=args), action


def parse(seccomp: object) -> Profile:
    """Validate ``linux.seccomp`` and return it normalised.

    Raises :class:`InvalidSpec` naming the faulty field, or
    :class:`Unsupported` for SCMP_ACT_NOTIFY and flags that need it."""
    if not isinstance(seccomp, dict):
        raise InvalidSpec(ROOT, "must be an object")

    default_name = _action(seccomp.get("defaultAction"), f"{ROOT}.defaultAction")
    if default_name == "SCMP_ACT_NOTIFY":
        # Every syscall, including the write that would hand the listener fd
        # out, would wait for an agent that has not got it yet.
        raise InvalidSpec(f"{ROOT}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    default_errno = _errno_ret(seccomp.get("defaultErrnoRet"), default_name, f"{ROOT}.defaultErrnoRet")

    arches: list[str] = []
    for i, arch in enumerate(_optional_list(seccomp, "architectures", f"{ROOT}.architectures")):
        if not isinstance(arch, str) or arch not in ARCHES:
            raise InvalidSpec(f"{ROOT}.architectures[{i}]", f"unknown seccomp architecture {arch!r}")
        arches.append(arch)

    flags = 0
    for i, flag in enumerate(_optional_list(seccomp, "flags", f"{ROOT}.flags")):
        if not isinstance(flag, str) or flag not in FLAGS:
            raise InvalidSpec(f"{ROOT}.flags[{i}]", f"unknown seccomp flag {flag!r}")
        if flag in UNSUPPORTED_FLAGS:
            raise Unsupported("seccomp flag", f"{ROOT}.flags[{i}]", f"{flag} needs SCMP_ACT_NOTIFY, which is not supported")
        flags |= FLAGS[flag]

    for key in ("listenerPath", "listenerMetadata"):
        value = seccomp.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidSpec(f"{ROOT}.{key}", "must be a string")

    rules: list[Rule] = []
    for i, raw in enumerate(_optional_list(seccomp, "syscalls", f"{ROOT}.syscalls")):
        rule, action_name = _rule(raw, f"{ROOT}.syscalls[{i}]")
        if action_name in UNSUPPORTED_ACTIONS:
            raise Unsupported(
                "seccomp notify", f"{ROOT}.listenerPath",
                f"{rule.field}.action is {action_name}; handing a listener fd to a seccomp agent is not implemented")
        rules.append(rule)

    return Profile(
        default_action=encode_action(default_name, default_errno),
        architectures=tuple(arches),
        flags=flags,
        rules=tuple(rules),
    )

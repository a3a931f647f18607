"""linux.seccomp validation: every field, accepted and rejected, and the error
names the exact field (no libseccomp, no kernel)."""

from __future__ import annotations

import copy
import errno
from typing import Any, Callable

import pytest

from dockyard.runtime.kernel.errors import InvalidSpec, Unsupported
from dockyard.runtime.kernel.seccomp_profile import (
    ACT_ALLOW, ACT_ERRNO, ACT_KILL_PROCESS, ACT_KILL_THREAD, ACT_LOG, ACT_TRACE, ACT_TRAP,
    ArgCondition, Profile, parse,
)
from dockyard.runtime.seccomp import validate

Spec = dict[str, Any]


def base() -> Spec:
    """A valid profile with four rules, so that index 3 exists."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
        ],
    }


def setter(path: tuple[Any, ...], value: Any) -> Callable[[Spec], Any]:
    def mutate(spec: Spec) -> Spec:
        node: Any = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return spec
    return mutate


def deleter(path: tuple[Any, ...]) -> Callable[[Spec], Any]:
    def mutate(spec: Spec) -> Spec:
        node: Any = spec
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return spec
    return mutate


def replace(value: Any) -> Callable[[Spec], Any]:
    return lambda _spec: value


S = "linux.seccomp"
A = ("syscalls", 1, "args", 0)

BAD: list[tuple[str, Callable[[Spec], Any], type[Exception], str]] = [
    ("not-an-object", replace([]), InvalidSpec, S),
    ("null", replace(None), InvalidSpec, S),
    ("default-missing", deleter(("defaultAction",)), InvalidSpec, f"{S}.defaultAction"),
    ("default-not-string", setter(("defaultAction",), 5), InvalidSpec, f"{S}.defaultAction"),
    ("default-unknown", setter(("defaultAction",), "SCMP_ACT_BOGUS"), InvalidSpec, f"{S}.defaultAction"),
    ("default-lowercase", setter(("defaultAction",), "scmp_act_allow"), InvalidSpec, f"{S}.defaultAction"),
    ("default-notify", setter(("defaultAction",), "SCMP_ACT_NOTIFY"), InvalidSpec, f"{S}.defaultAction"),
    ("default-errno-string", setter(("defaultErrnoRet",), "1"), InvalidSpec, f"{S}.defaultErrnoRet"),
    ("default-errno-negative", setter(("defaultErrnoRet",), -1), InvalidSpec, f"{S}.defaultErrnoRet"),
    ("default-errno-too-big", setter(("defaultErrnoRet",), 4095), InvalidSpec, f"{S}.defaultErrnoRet"),
    ("default-trace-too-big", lambda s: {**s, "defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 0x10000},
     InvalidSpec, f"{S}.defaultErrnoRet"),
    ("default-errno-bool", setter(("defaultErrnoRet",), True), InvalidSpec, f"{S}.defaultErrnoRet"),
    ("default-errno-with-allow",
     lambda s: {**s, "defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, InvalidSpec, f"{S}.defaultErrnoRet"),
    ("default-errno-with-kill",
     lambda s: {**s, "defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1}, InvalidSpec, f"{S}.defaultErrnoRet"),
    ("arches-not-list", setter(("architectures",), "SCMP_ARCH_X86"), InvalidSpec, f"{S}.architectures"),
    ("arch-unknown", setter(("architectures", 0), "SCMP_ARCH_VAX"), InvalidSpec, f"{S}.architectures[0]"),
    ("arch-libseccomp-spelling", setter(("architectures", 1), "x86"), InvalidSpec, f"{S}.architectures[1]"),
    ("arch-not-string", setter(("architectures", 1), 3), InvalidSpec, f"{S}.architectures[1]"),
    ("flags-not-list", setter(("flags",), "SECCOMP_FILTER_FLAG_LOG"), InvalidSpec, f"{S}.flags"),
    ("flag-unknown", setter(("flags", 0), "SECCOMP_FILTER_FLAG_BOGUS"), InvalidSpec, f"{S}.flags[0]"),
    ("flag-not-string", setter(("flags", 0), 2), InvalidSpec, f"{S}.flags[0]"),
    ("flag-wait-killable", setter(("flags", 0), "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"), Unsupported, f"{S}.flags[0]"),
    ("listener-path-not-string", setter(("listenerPath",), 3), InvalidSpec, f"{S}.listenerPath"),
    ("listener-metadata-not-string", setter(("listenerMetadata",), []), InvalidSpec, f"{S}.listenerMetadata"),
    ("syscalls-not-list", setter(("syscalls",), {}), InvalidSpec, f"{S}.syscalls"),
    ("syscall-not-object", setter(("syscalls", 2), "mkdir"), InvalidSpec, f"{S}.syscalls[2]"),
    ("names-missing", deleter(("syscalls", 1, "names")), InvalidSpec, f"{S}.syscalls[1].names"),
    ("names-empty", setter(("syscalls", 1, "names"), []), InvalidSpec, f"{S}.syscalls[1].names"),
    ("names-string", setter(("syscalls", 1, "names"), "read"), InvalidSpec, f"{S}.syscalls[1].names"),
    ("name-empty", setter(("syscalls", 0, "names", 1), ""), InvalidSpec, f"{S}.syscalls[0].names[1]"),
    ("name-not-string", setter(("syscalls", 0, "names", 0), 0), InvalidSpec, f"{S}.syscalls[0].names[0]"),
    ("action-missing", deleter(("syscalls", 3, "action")), InvalidSpec, f"{S}.syscalls[3].action"),
    ("action-unknown", setter(("syscalls", 3, "action"), "SCMP_ACT_DENY"), InvalidSpec, f"{S}.syscalls[3].action"),
    ("action-not-string", setter(("syscalls", 3, "action"), None), InvalidSpec, f"{S}.syscalls[3].action"),
    ("action-notify", setter(("syscalls", 3, "action"), "SCMP_ACT_NOTIFY"), Unsupported, f"{S}.listenerPath"),
    ("errno-with-allow", setter(("syscalls", 3, "errnoRet"), 1), InvalidSpec, f"{S}.syscalls[3].errnoRet"),
    ("errno-with-log",
     lambda s: setter(("syscalls", 2, "action"), "SCMP_ACT_LOG")(s), InvalidSpec, f"{S}.syscalls[2].errnoRet"),
    ("errno-negative", setter(("syscalls", 2, "errnoRet"), -1), InvalidSpec, f"{S}.syscalls[2].errnoRet"),
    ("errno-too-big", setter(("syscalls", 2, "errnoRet"), 4095), InvalidSpec, f"{S}.syscalls[2].errnoRet"),
    ("errno-string", setter(("syscalls", 2, "errnoRet"), "EPERM"), InvalidSpec, f"{S}.syscalls[2].errnoRet"),
    ("errno-float", setter(("syscalls", 2, "errnoRet"), 1.0), InvalidSpec, f"{S}.syscalls[2].errnoRet"),
    ("args-not-list", setter(("syscalls", 1, "args"), {"index": 0}), InvalidSpec, f"{S}.syscalls[1].args"),
    ("arg-not-object", setter(A, 0), InvalidSpec, f"{S}.syscalls[1].args[0]"),
    ("arg-index-missing", deleter((*A, "index")), InvalidSpec, f"{S}.syscalls[1].args[0].index"),
    ("arg-index-too-big", setter((*A, "index"), 6), InvalidSpec, f"{S}.syscalls[1].args[0].index"),
    ("arg-index-negative", setter((*A, "index"), -1), InvalidSpec, f"{S}.syscalls[1].args[0].index"),
    ("arg-index-string", setter((*A, "index"), "0"), InvalidSpec, f"{S}.syscalls[1].args[0].index"),
    ("arg-index-bool", setter((*A, "index"), False), InvalidSpec, f"{S}.syscalls[1].args[0].index"),
    ("arg-value-missing", deleter((*A, "value")), InvalidSpec, f"{S}.syscalls[1].args[0].value"),
    ("arg-value-negative", setter((*A, "value"), -1), InvalidSpec, f"{S}.syscalls[1].args[0].value"),
    ("arg-value-too-big", setter((*A, "value"), 1 << 64), InvalidSpec, f"{S}.syscalls[1].args[0].value"),
    ("arg-value-float", setter((*A, "value"), 1.5), InvalidSpec, f"{S}.syscalls[1].args[0].value"),
    ("arg-value-two-negative", setter((*A, "valueTwo"), -2), InvalidSpec, f"{S}.syscalls[1].args[0].valueTwo"),
    ("arg-value-two-string", setter((*A, "valueTwo"), "1"), InvalidSpec, f"{S}.syscalls[1].args[0].valueTwo"),
    ("arg-op-missing", deleter((*A, "op")), InvalidSpec, f"{S}.syscalls[1].args[0].op"),
    ("arg-op-unknown", setter((*A, "op"), "SCMP_CMP_MATCH"), InvalidSpec, f"{S}.syscalls[1].args[0].op"),
    ("arg-op-number", setter((*A, "op"), 4), InvalidSpec, f"{S}.syscalls[1].args[0].op"),
]


@pytest.mark.parametrize("mutate,exc,field", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_rejected_field_is_named(mutate: Callable[[Spec], Any], exc: type[Exception], field: str) -> None:
    spec = mutate(copy.deepcopy(base()))
    with pytest.raises(exc) as info:
        validate(spec)
    assert type(info.value) is exc
    assert getattr(info.value, "target") == field
    assert field in str(info.value)


def test_base_is_valid() -> None:
    validate(base())


E = ACT_ERRNO
GOOD: list[tuple[str, Spec, Callable[[Profile], object], object]] = [
    ("minimal", {"defaultAction": "SCMP_ACT_ALLOW"},
     lambda p: (p.default_action, p.architectures, p.flags, p.rules), (ACT_ALLOW, (), 0, ())),
    ("nulls-are-absent", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": None, "flags": None,
                          "syscalls": None, "defaultErrnoRet": None, "listenerPath": None},
     lambda p: (p.architectures, p.flags, p.rules), ((), 0, ())),
    ("errno-default-eperm", {"defaultAction": "SCMP_ACT_ERRNO"}, lambda p: p.default_action, E | errno.EPERM),
    ("errno-default-ret", {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38},
     lambda p: p.default_action, E | 38),
    ("errno-zero", {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 0}, lambda p: p.default_action, E),
    ("errno-max", {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 4094},
     lambda p: p.default_action, E | 4094),
    ("trace-max", {"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 0xFFFF},
     lambda p: p.default_action, ACT_TRACE | 0xFFFF),
    ("trace-default-eperm", {"defaultAction": "SCMP_ACT_TRACE"}, lambda p: p.default_action, ACT_TRACE | 1),
    ("trace-ret", {"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 7},
     lambda p: p.default_action, ACT_TRACE | 7),
    ("kill", {"defaultAction": "SCMP_ACT_KILL"}, lambda p: p.default_action, ACT_KILL_THREAD),
    ("kill-thread", {"defaultAction": "SCMP_ACT_KILL_THREAD"}, lambda p: p.default_action, ACT_KILL_THREAD),
    ("kill-process", {"defaultAction": "SCMP_ACT_KILL_PROCESS"}, lambda p: p.default_action, ACT_KILL_PROCESS),
    ("trap", {"defaultAction": "SCMP_ACT_TRAP"}, lambda p: p.default_action, ACT_TRAP),
    ("log", {"defaultAction": "SCMP_ACT_LOG"}, lambda p: p.default_action, ACT_LOG),
    ("arches-kept-in-order", {"defaultAction": "SCMP_ACT_ALLOW",
                              "architectures": ["SCMP_ARCH_X32", "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]},
     lambda p: p.architectures, ("SCMP_ARCH_X32", "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64")),
    ("flags-or", {"defaultAction": "SCMP_ACT_ALLOW", "flags": [
        "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]},
     lambda p: p.flags, 7),
    ("flag-spec-allow", {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]},
     lambda p: p.flags, 4),
    ("rule-errno-default", {"defaultAction": "SCMP_ACT_ALLOW",
                            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]},
     lambda p: (p.rules[0].names, p.rules[0].action, p.rules[0].args), (("mkdir",), E | errno.EPERM, ())),
    ("rule-errno-ret", {"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]},
     lambda p: p.rules[0].action, E | 13),
    ("rule-field-recorded", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["a"], "action": "SCMP_ACT_LOG"}, {"names": ["b"], "action": "SCMP_ACT_TRAP"}]},
     lambda p: [r.field for r in p.rules], ["linux.seccomp.syscalls[0]", "linux.seccomp.syscalls[1]"]),
    ("unknown-syscall-name-is-valid", {"defaultAction": "SCMP_ACT_ALLOW",
                                       "syscalls": [{"names": ["no_such_syscall"], "action": "SCMP_ACT_KILL"}]},
     lambda p: p.rules[0].names, ("no_such_syscall",)),
    ("arg-full", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 5, "value": (1 << 64) - 1, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]}]},
     lambda p: p.rules[0].args, (ArgCondition(5, 7, (1 << 64) - 1, 3),)),
    ("arg-value-two-defaults-zero", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 9, "op": "SCMP_CMP_GT"}]}]},
     lambda p: p.rules[0].args, (ArgCondition(0, 6, 9, 0),)),
    ("arg-args-null", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO", "args": None, "errnoRet": None}]},
     lambda p: (p.rules[0].args, p.rules[0].action), ((), E | errno.EPERM)),
    ("unknown-keys-ignored", {"defaultAction": "SCMP_ACT_ALLOW", "comment": "x",
                              "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_LOG", "comment": "y",
                                            "includes": {}, "excludes": {}}]},
     lambda p: p.rules[0].action, ACT_LOG),
    ("listener-path-without-notify", {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                                      "listenerMetadata": "m"},
     lambda p: p.rules, ()),
]

OPS = [("SCMP_CMP_NE", 1), ("SCMP_CMP_LT", 2), ("SCMP_CMP_LE", 3), ("SCMP_CMP_EQ", 4),
       ("SCMP_CMP_GE", 5), ("SCMP_CMP_GT", 6), ("SCMP_CMP_MASKED_EQ", 7)]


@pytest.mark.parametrize("spec,get,want", [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_accepted_and_normalised(spec: Spec, get: Callable[[Profile], object], want: object) -> None:
    assert get(parse(spec)) == want


@pytest.mark.parametrize("name,code", OPS)
def test_operator_maps_to_libseccomp_enum(name: str, code: int) -> None:
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_KILL", "args": [{"index": 2, "value": 1, "op": name}]}]}
    assert parse(spec).rules[0].args[0].op == code

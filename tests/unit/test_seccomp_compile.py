"""linux.seccomp → BPF through libseccomp, checked by running the program.

libseccomp only builds the program in memory (no kernel state changes), and a
small classic-BPF interpreter below runs it against ``struct seccomp_data``
the way the kernel would, so each rule's effect is checked per architecture,
syscall number and argument value."""

from __future__ import annotations

import ctypes.util
import errno
import struct
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime.kernel.errors import InvalidSpec, SyscallError, Unsupported
from dockyard.runtime.seccomp import CompiledFilter, compile_filter, features
from dockyard.runtime.seccomp import compiler
from dockyard.runtime.kernel.seccomp_profile import (
    ACT_ALLOW, ACT_ERRNO, ACT_KILL_PROCESS, ACT_KILL_THREAD, ACT_LOG, ACT_TRACE, ACT_TRAP,
)

pytestmark = pytest.mark.skipif(ctypes.util.find_library("seccomp") is None,
                                reason="libseccomp is not installed (Debian: libseccomp2)")

AUDIT_X86_64 = 0xC000003E
AUDIT_I386 = 0x40000003
AUDIT_AARCH64 = 0xC00000B7
X32_BIT = 0x40000000

# x86_64 and i386 syscall numbers used below.
NR64 = {"getpid": 39, "mkdir": 83, "personality": 135, "setpriority": 141, "getpriority": 140,
        "mkdirat": 258, "read": 0, "write": 1}
NR32 = {"mkdir": 39, "socketcall": 102, "personality": 136}
UNISTD_64 = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")  # linux-libc-dev, pulled in by libseccomp-dev


def run_bpf(program: bytes, nr: int, arch: int = AUDIT_X86_64, args: tuple[int, ...] = ()) -> int:
    """Evaluate a seccomp classic-BPF program on one seccomp_data."""
    full = tuple(args) + (0,) * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0x401000, *full)
    insns = [struct.unpack_from("<HBBI", program, off) for off in range(0, len(program), 8)]
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if code == 0x20:  # LD W ABS
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x00:  # LD IMM
            a = k
        elif code == 0x60:  # LD MEM
            a = mem[k]
        elif code == 0x01:  # LDX IMM
            x = k
        elif code == 0x61:  # LDX MEM
            x = mem[k]
        elif code == 0x02:  # ST
            mem[k] = a
        elif code == 0x03:  # STX
            mem[k] = x
        elif cls == 0x04:  # ALU
            operand = x if code & 0x08 else k
            op = code & 0xF0
            alu = {0x00: a + operand, 0x10: a - operand, 0x40: a | operand, 0x50: a & operand,
                   0x60: a << operand, 0x70: a >> operand, 0xA0: a ^ operand}
            if op not in alu:
                raise AssertionError(f"unhandled ALU opcode {code:#x}")
            a = alu[op] & 0xFFFFFFFF
        elif code == 0x05:  # JA
            pc += k
        elif cls == 0x05:
            operand = x if code & 0x08 else k
            op = code & 0xF0
            taken = {0x10: a == operand, 0x20: a > operand, 0x30: a >= operand, 0x40: bool(a & operand)}
            if op not in taken:
                raise AssertionError(f"unhandled JMP opcode {code:#x}")
            pc += jt if taken[op] else jf
        elif code == 0x06:  # RET K
            return int(k)
        elif code == 0x16:  # RET A
            return a
        else:
            raise AssertionError(f"unhandled BPF opcode {code:#x} at {pc - 1}")


def allow_with(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": list(rules), **extra}


MKDIR_EPERM = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}


def test_program_is_whole_sock_filters() -> None:
    out = compile_filter(allow_with(MKDIR_EPERM))
    assert isinstance(out, CompiledFilter)
    assert out.program and len(out.program) % 8 == 0
    assert out.flags == 0


@pytest.mark.parametrize("nr,arch,want", [
    (NR64["mkdir"], AUDIT_X86_64, ACT_ERRNO | 1),
    (NR64["mkdirat"], AUDIT_X86_64, ACT_ERRNO | 1),
    (NR64["getpid"], AUDIT_X86_64, ACT_ALLOW),
    (NR64["mkdir"] | X32_BIT, AUDIT_X86_64, ACT_KILL_THREAD),  # x32 not listed: bad arch
    (NR64["mkdir"], AUDIT_AARCH64, ACT_KILL_THREAD),  # arch not in filter
])
def test_rule_blocks_named_syscalls_only(nr: int, arch: int, want: int) -> None:
    program = compile_filter(allow_with(MKDIR_EPERM)).program
    assert run_bpf(program, nr, arch) == want


@pytest.mark.parametrize("nr,arch,want", [
    (NR64["mkdir"], AUDIT_X86_64, ACT_ERRNO | 1),
    (NR32["mkdir"], AUDIT_I386, ACT_ERRNO | 1),
    (NR64["mkdir"] | X32_BIT, AUDIT_X86_64, ACT_ERRNO | 1),
    (NR32["personality"], AUDIT_I386, ACT_ALLOW),
    (NR64["mkdir"], AUDIT_AARCH64, ACT_KILL_THREAD),
])
def test_architectures_each_get_the_rule(nr: int, arch: int, want: int) -> None:
    spec = allow_with(MKDIR_EPERM, architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    assert run_bpf(compile_filter(spec).program, nr, arch) == want


def test_syscall_of_another_arch_only_applies_there() -> None:
    """socketcall exists on i386 only; libseccomp resolves it to a pseudo number."""
    spec = allow_with({"names": ["socketcall"], "action": "SCMP_ACT_ERRNO"},
                      architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
    program = compile_filter(spec).program
    assert run_bpf(program, NR32["socketcall"], AUDIT_I386) == ACT_ERRNO | errno.EPERM
    assert run_bpf(program, 102, AUDIT_X86_64) == ACT_ALLOW  # 102 is getuid on x86_64


def test_unknown_syscall_is_skipped() -> None:
    with_unknown = compile_filter(allow_with({**MKDIR_EPERM, "names": ["mkdir", "no_such_syscall", "mkdirat"]}))
    without = compile_filter(allow_with(MKDIR_EPERM))
    assert with_unknown.program == without.program


def test_rule_only_of_unknown_syscalls_leaves_default_program() -> None:
    only_unknown = compile_filter(allow_with({"names": ["no_such_syscall"], "action": "SCMP_ACT_KILL"}))
    assert only_unknown.program == compile_filter(allow_with()).program


def test_rule_equal_to_default_is_skipped() -> None:
    rule: dict[str, Any] = {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    spec = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [rule]}
    assert compile_filter(spec).program == compile_filter({**spec, "syscalls": []}).program
    # the same action with another errno is a different action and is kept
    rule["errnoRet"] = 1
    assert run_bpf(compile_filter(spec).program, NR64["mkdir"]) == ACT_ERRNO | 1


@pytest.mark.parametrize("default,errno_ret,want", [
    ("SCMP_ACT_ERRNO", None, ACT_ERRNO | errno.EPERM),
    ("SCMP_ACT_ERRNO", 38, ACT_ERRNO | 38),
    ("SCMP_ACT_KILL", None, ACT_KILL_THREAD),
    ("SCMP_ACT_KILL_PROCESS", None, ACT_KILL_PROCESS),
    ("SCMP_ACT_TRAP", None, ACT_TRAP),
    ("SCMP_ACT_LOG", None, ACT_LOG),
    ("SCMP_ACT_TRACE", 5, ACT_TRACE | 5),
])
def test_default_action_applies_to_unlisted_syscalls(default: str, errno_ret: int | None, want: int) -> None:
    spec: dict[str, Any] = {"defaultAction": default,
                            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}
    if errno_ret is not None:
        spec["defaultErrnoRet"] = errno_ret
    program = compile_filter(spec).program
    assert run_bpf(program, NR64["mkdir"]) == want
    assert run_bpf(program, NR64["getpid"]) == ACT_ALLOW


@pytest.mark.parametrize("action,errno_ret,want", [
    ("SCMP_ACT_KILL", None, ACT_KILL_THREAD),
    ("SCMP_ACT_KILL_THREAD", None, ACT_KILL_THREAD),
    ("SCMP_ACT_KILL_PROCESS", None, ACT_KILL_PROCESS),
    ("SCMP_ACT_TRAP", None, ACT_TRAP),
    ("SCMP_ACT_ERRNO", None, ACT_ERRNO | errno.EPERM),
    ("SCMP_ACT_ERRNO", 0, ACT_ERRNO),
    ("SCMP_ACT_ERRNO", 4094, ACT_ERRNO | 4094),
    ("SCMP_ACT_TRACE", 0xFFFF, ACT_TRACE | 0xFFFF),
    ("SCMP_ACT_TRACE", None, ACT_TRACE | errno.EPERM),
    ("SCMP_ACT_TRACE", 77, ACT_TRACE | 77),
    ("SCMP_ACT_LOG", None, ACT_LOG),
])
def test_rule_action_is_returned(action: str, errno_ret: int | None, want: int) -> None:
    rule: dict[str, Any] = {"names": ["mkdir"], "action": action}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    assert run_bpf(compile_filter(allow_with(rule)).program, NR64["mkdir"]) == want


HI = 0x1_0000_0000
OP_CASES = [
    # op, value, valueTwo, arg0, matches
    ("SCMP_CMP_EQ", 0xFFFFFFFF, 0, 0xFFFFFFFF, True),
    ("SCMP_CMP_EQ", 0xFFFFFFFF, 0, 0, False),
    ("SCMP_CMP_EQ", 0xFFFFFFFF, 0, HI | 0xFFFFFFFF, False),  # high word is compared too
    ("SCMP_CMP_NE", 5, 0, 5, False),
    ("SCMP_CMP_NE", 5, 0, 6, True),
    ("SCMP_CMP_NE", 5, 0, HI | 5, True),
    ("SCMP_CMP_LT", 10, 0, 9, True),
    ("SCMP_CMP_LT", 10, 0, 10, False),
    ("SCMP_CMP_LE", 10, 0, 10, True),
    ("SCMP_CMP_LE", 10, 0, 11, False),
    ("SCMP_CMP_GT", 10, 0, 11, True),
    ("SCMP_CMP_GT", 10, 0, 10, False),
    ("SCMP_CMP_GT", 10, 0, HI, True),
    ("SCMP_CMP_GE", 10, 0, 10, True),
    ("SCMP_CMP_GE", 10, 0, 9, False),
    ("SCMP_CMP_GE", HI, 0, HI - 1, False),
    ("SCMP_CMP_MASKED_EQ", 0xF0, 0x10, 0x1F, True),
    ("SCMP_CMP_MASKED_EQ", 0xF0, 0x10, 0x2F, False),
    ("SCMP_CMP_MASKED_EQ", 0x7E020000, 0, 0x00010011, True),  # clone without namespace flags
    ("SCMP_CMP_MASKED_EQ", 0x7E020000, 0, 0x20000011, False),
]


@pytest.mark.parametrize("op,value,value_two,arg,matches", OP_CASES)
def test_argument_operators(op: str, value: int, value_two: int, arg: int, matches: bool) -> None:
    rule = {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EDOM,
            "args": [{"index": 0, "value": value, "valueTwo": value_two, "op": op}]}
    got = run_bpf(compile_filter(allow_with(rule)).program, NR64["personality"], args=(arg,))
    assert got == (ACT_ERRNO | errno.EDOM if matches else ACT_ALLOW)


def test_conditions_on_different_args_must_all_hold() -> None:
    rule = {"names": ["setpriority"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 2, "value": 10, "op": "SCMP_CMP_LT"}]}
    program = compile_filter(allow_with(rule)).program
    assert run_bpf(program, NR64["setpriority"], args=(1, 0, 5)) == ACT_ERRNO | errno.EPERM
    assert run_bpf(program, NR64["setpriority"], args=(0, 0, 5)) == ACT_ALLOW
    assert run_bpf(program, NR64["setpriority"], args=(1, 0, 11)) == ACT_ALLOW


def test_conditions_on_the_same_arg_become_separate_rules() -> None:
    """As in runc: libseccomp cannot hold two tests of one argument in a rule,
    so each becomes its own rule and either one matching is enough."""
    rule = {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}
    program = compile_filter(allow_with(rule)).program
    assert run_bpf(program, NR64["personality"], args=(1,)) == ACT_ERRNO | errno.EPERM
    assert run_bpf(program, NR64["personality"], args=(2,)) == ACT_ERRNO | errno.EPERM
    assert run_bpf(program, NR64["personality"], args=(3,)) == ACT_ALLOW


def test_flags_are_returned_not_compiled_in() -> None:
    base = compile_filter(allow_with(MKDIR_EPERM))
    flagged = compile_filter(allow_with(MKDIR_EPERM, flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"]))
    assert flagged.flags == 3
    assert flagged.program == base.program


def _docker_like_allowlist() -> dict[str, Any]:
    """An allow-list of 60 single-syscall rules (more than 32, so libseccomp's
    binary-tree layout is used) over the x86 family."""
    names = [
        "read", "write", "open", "close", "stat", "fstat", "lstat", "poll", "lseek", "mmap", "mprotect",
        "munmap", "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl", "pread64", "pwrite64",
        "readv", "writev", "access", "pipe", "select", "sched_yield", "mremap", "msync", "mincore",
        "madvise", "dup", "dup2", "pause", "nanosleep", "getitimer", "alarm", "setitimer", "getpid",
        "sendfile", "socket", "connect", "accept", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown",
        "bind", "listen", "getsockname", "getpeername", "socketpair", "setsockopt", "getsockopt", "clone",
        "fork", "vfork", "execve", "exit", "wait4", "kill", "exit_group", "no_such_call_either"]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": [n], "action": "SCMP_ACT_ALLOW"} for n in names]}


@pytest.mark.parametrize("nr,arch,want", [
    (0, AUDIT_X86_64, ACT_ALLOW),  # read
    (231, AUDIT_X86_64, ACT_ALLOW),  # exit_group
    (39, AUDIT_X86_64, ACT_ALLOW),  # getpid
    (83, AUDIT_X86_64, ACT_ERRNO | errno.ENOSYS),  # mkdir
    (450, AUDIT_X86_64, ACT_ERRNO | errno.ENOSYS),  # newer than the list
    (252, AUDIT_I386, ACT_ALLOW),  # exit_group on i386
    (39, AUDIT_I386, ACT_ERRNO | errno.ENOSYS),  # mkdir on i386
    (1 | X32_BIT, AUDIT_X86_64, ACT_ALLOW),  # x32 write
])
def test_long_profile_uses_tree_layout_correctly(nr: int, arch: int, want: int) -> None:
    assert run_bpf(compile_filter(_docker_like_allowlist()).program, nr, arch) == want


@pytest.mark.skipif(not UNISTD_64.exists(), reason="needs the x86_64 syscall table from linux-libc-dev")
def test_program_over_kernel_limit_is_refused() -> None:
    """BPF_MAXINSNS is 4096; the kernel would refuse a longer program at load."""
    names = [line.split()[0] for line in UNISTD_64.read_text().split("#define __NR_")[1:]]
    # 270 syscalls, each tested on four 64-bit arguments with values no other
    # rule shares (libseccomp merges shared tests): about 4700 instructions.
    rules = [{"names": [n], "action": "SCMP_ACT_ERRNO",
              "args": [{"index": a, "value": ((i + 1) << 33) + (i << 12) + a, "op": "SCMP_CMP_EQ"} for a in range(4)]}
             for i, n in enumerate(names[:270])]
    with pytest.raises(InvalidSpec) as info:
        compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
    assert info.value.field == "linux.seccomp.syscalls"
    assert "4096" in info.value.detail


@pytest.mark.parametrize("arch", ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",
                                  "SCMP_ARCH_RISCV64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_MIPSEL64"])
def test_little_endian_arch_joins_native_filter(arch: str) -> None:
    program = compile_filter(allow_with(MKDIR_EPERM, architectures=["SCMP_ARCH_X86_64", arch])).program
    assert run_bpf(program, NR64["mkdir"]) == ACT_ERRNO | 1


@pytest.mark.parametrize("arch", ["SCMP_ARCH_S390X", "SCMP_ARCH_PPC64", "SCMP_ARCH_MIPS"])
def test_arch_of_other_byte_order_names_the_field(arch: str) -> None:
    """libseccomp cannot put big-endian architectures in an x86_64 filter."""
    with pytest.raises(InvalidSpec) as info:
        compile_filter(allow_with(architectures=["SCMP_ARCH_X86_64", arch]))
    assert info.value.field == "linux.seccomp.architectures[1]"


def test_arch_unknown_to_libseccomp_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "arch_token", lambda name: 0)
    with pytest.raises(Unsupported) as info:
        compile_filter(allow_with(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_LOONGARCH64"]))
    assert info.value.target == "linux.seccomp.architectures[0]"


def test_rule_rejected_by_libseccomp_names_the_syscall(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object, action: int, nr: int, conditions: object, name: str) -> None:
        raise SyscallError("seccomp_rule_add", name, errno.EINVAL)

    monkeypatch.setattr(compiler.Filter, "add_rule", refuse)
    with pytest.raises(InvalidSpec) as info:
        compile_filter(allow_with({"names": ["no_such", "mkdir"], "action": "SCMP_ACT_KILL"}))
    assert info.value.field == "linux.seccomp.syscalls[0].names[1]"
    assert isinstance(info.value.__cause__, SyscallError)


def test_invalid_spec_is_rejected_before_libseccomp(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidSpec) as info:
        compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "NOPE"}]})
    assert info.value.field == "linux.seccomp.syscalls[0].action"


def test_features_lists_what_compile_accepts() -> None:
    feats = features()
    assert feats["enabled"] is True
    assert "SCMP_ACT_NOTIFY" not in feats["actions"]
    assert "SCMP_ACT_KILL_PROCESS" in feats["actions"]
    assert feats["operators"] == sorted(feats["operators"]) and len(feats["operators"]) == 7
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"} <= set(feats["archs"])
    assert feats["supportedFlags"] == ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                       "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    assert set(feats["supportedFlags"]) < set(feats["knownFlags"])
    for action in feats["actions"]:
        if action != "SCMP_ACT_ALLOW":
            compile_filter(allow_with({"names": ["mkdir"], "action": action}))

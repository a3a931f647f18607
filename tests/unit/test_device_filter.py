"""The cgroup v2 device program: rules in, BPF instructions out, run here by a small interpreter.

The interpreter below executes exactly the instructions device_filter emits
(and fails on any other), with the verifier's rules that matter for them:
forward jumps inside the program, no unreachable instruction, r0 set at
exit. Each case is checked against the rule semantics written out plainly
in `expected` (per access bit, the last matching rule naming it decides;
no rule: allowed), over a grid of devices and accesses. The real kernel
runs the same bytes in the guest suite (tests/guest/test_devices_v2.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.runtime.cgroups.device_rules import RUNC_DEFAULT_RULES, DeviceRule, parse
from dockyard.runtime.cgroups.v2 import device_filter as df

BLOCK, CHAR = df.DEV_BLOCK, df.DEV_CHAR
M, R, W = 1, 2, 4


def run(code: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    """Execute the program on one bpf_cgroup_dev_ctx; return r0."""
    assert len(code) % 8 == 0 and code, "a program is whole instructions"
    insns = [(code[i], code[i + 1] & 0xF, code[i + 1] >> 4,
              int.from_bytes(code[i + 2:i + 4], "little", signed=True),
              int.from_bytes(code[i + 4:i + 8], "little", signed=True)) for i in range(0, len(code), 8)]
    ctx = (access << 16 | dev_type).to_bytes(4, "little") + major.to_bytes(4, "little") + minor.to_bytes(4, "little")
    regs: dict[int, int] = {1: -1}  # r1: the context pointer
    pc = 0
    mask = (1 << 64) - 1
    while True:
        code_, dst, src, off, imm = insns[pc]
        pc += 1
        if code_ == df.LDX_MEM_W:
            assert src == 1 and regs[1] == -1, "reads only through the context pointer"
            regs[dst] = int.from_bytes(ctx[off:off + 4], "little")
        elif code_ == df.ALU64_AND_K:
            regs[dst] = regs[dst] & (imm & mask)
        elif code_ == df.ALU64_RSH_K:
            regs[dst] = regs[dst] >> imm
        elif code_ == df.ALU64_MOV_K:
            regs[dst] = imm & mask
        elif code_ == df.ALU64_MOV_X:
            regs[dst] = regs[src]
        elif code_ in (df.JMP_JEQ_K, df.JMP_JNE_K, df.JMP_JA):
            assert off >= 0 and pc + off <= len(insns), "jumps go forward, inside the program"
            if code_ == df.JMP_JA or (regs[dst] == imm & mask) == (code_ == df.JMP_JEQ_K):
                pc += off
        elif code_ == df.JMP_EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code_:#x}")


def reachable(code: bytes) -> set[int]:
    """Instruction indexes reachable from the start (the verifier refuses any other)."""
    n = len(code) // 8
    seen: set[int] = set()
    todo = [0]
    while todo:
        pc = todo.pop()
        if pc in seen or pc >= n:
            continue
        seen.add(pc)
        op, off = code[pc * 8], int.from_bytes(code[pc * 8 + 2:pc * 8 + 4], "little", signed=True)
        if op == df.JMP_EXIT:
            continue
        if op == df.JMP_JA:
            todo.append(pc + 1 + off)
        elif op in (df.JMP_JEQ_K, df.JMP_JNE_K):
            todo += [pc + 1, pc + 1 + off]
        else:
            todo.append(pc + 1)
    return seen


def expected(rules: list[DeviceRule], dev_type: int, major: int, minor: int, access: int) -> int:
    """The rule semantics, plainly: each requested bit is decided by the last matching rule naming it."""
    for letter, bit in df.ACCESS_BITS:
        if not access & bit:
            continue
        decision = True
        for rule in rules:
            type_ok = rule.type == "a" or {"b": BLOCK, "c": CHAR}[rule.type] == dev_type
            if (letter in rule.access and type_ok and rule.major in (None, major)
                    and rule.minor in (None, minor)):
                decision = rule.allow
        if not decision:
            return 0
    return 1


DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}
NULL = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}

CASES: list[tuple[str, list[dict[str, Any]]]] = [
    ("no rules", []),
    ("deny all", [DENY_ALL]),
    ("allow all", [ALLOW_ALL]),
    ("deny all, allow null", [DENY_ALL, NULL]),
    ("runc's defaults after deny all", [DENY_ALL, *RUNC_DEFAULT_RULES]),
    ("allow all, deny block 8:*", [ALLOW_ALL, {"allow": False, "type": "b", "major": 8, "access": "rwm"}]),
    ("deny all, then allow all again", [DENY_ALL, ALLOW_ALL]),
    ("read-only null", [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}]),
    ("read and write granted by two rules", [
        DENY_ALL,
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"},
    ]),
    ("write denied after allow all", [ALLOW_ALL, {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"}]),
    ("later deny overrides earlier allow", [DENY_ALL, NULL, {"allow": False, "type": "c", "major": 1, "access": "rw"}]),
    ("any-type minor rule", [DENY_ALL, {"allow": True, "type": "a", "minor": 5, "access": "rw"}]),
    ("mknod only", [DENY_ALL, {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"}]),
    ("a huge major matches nothing", [ALLOW_ALL, {"allow": False, "type": "c", "major": 4294967295, "access": "rwm"}]),
]

DEVICES = [(t, major, minor) for t in (BLOCK, CHAR) for major, minor in ((1, 3), (1, 5), (1, 9), (8, 0), (136, 2), (5, 5))]
ACCESSES = [M, R, W, R | W, M | R | W]


@pytest.mark.parametrize(("name", "raw"), CASES, ids=[c[0] for c in CASES])
def test_program_decides_as_the_rules_say(name: str, raw: list[dict[str, Any]]) -> None:
    """For every device and access in the grid, the program answers what the rules say, and the verifier would take it."""
    rules = parse({"devices": raw})
    code = df.compile_rules(rules)
    assert reachable(code) == set(range(len(code) // 8)), "an unreachable instruction (the verifier refuses it)"
    for dev_type, major, minor in DEVICES:
        for access in ACCESSES:
            assert run(code, dev_type, major, minor, access) == expected(rules, dev_type, major, minor, access), (
                name, dev_type, major, minor, access)


def test_shadowed_rules_are_not_emitted() -> None:
    """Rules before a deny-all can never decide anything, so runc's usual list compiles to the rules after it."""
    long_prefix = [{"allow": True, "type": "c", "major": n, "access": "rwm"} for n in range(50)]
    short = df.program(parse({"devices": [DENY_ALL, NULL]}))
    long = df.program(parse({"devices": [*long_prefix, DENY_ALL, NULL]}))
    assert [(i.code, i.off, i.imm) for i in long] == [(i.code, i.off, i.imm) for i in short]


def test_allow_only_lists_compile_to_allow() -> None:
    """With nothing that can deny, the program is the prologue and `return 1`."""
    for raw in ([], [ALLOW_ALL], [NULL]):
        insns = df.program(parse({"devices": raw}))
        assert [i.code for i in insns[-2:]] == [df.ALU64_MOV_K, df.JMP_EXIT] and insns[-2].imm == 1
        assert len(insns) == 8


def test_instruction_encoding() -> None:
    """struct bpf_insn: code, dst | src << 4, s16 off, s32 imm, little-endian."""
    insn = df.Insn(df.JMP_JNE_K, dst=4, src=0, off=3, imm=-2)
    assert df.assemble([insn]) == bytes([0x55, 0x04, 0x03, 0x00, 0xFE, 0xFF, 0xFF, 0xFF])
    assert df.assemble([df.Insn(df.LDX_MEM_W, 2, 1, 8)]) == bytes([0x61, 0x12, 0x08, 0, 0, 0, 0, 0])

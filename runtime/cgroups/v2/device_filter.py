"""linux.resources.devices -> a BPF_PROG_TYPE_CGROUP_DEVICE program (pure: rules in, bytes out).

cgroup v2 has no devices.allow/deny files: the kernel runs the eBPF programs
attached to the cgroup (type BPF_PROG_TYPE_CGROUP_DEVICE) on every mknod and
on every open of a device node, and refuses the access (EPERM) when one of
them returns 0.  Facts about that interface this compiler relies on:

* The program's one argument (r1) points at ``struct bpf_cgroup_dev_ctx``:
  ``u32 access_type`` at offset 0, ``u32 major`` at 4, ``u32 minor`` at 8.
  ``access_type`` is ``(access << 16) | type``: type 1 is a block device,
  2 a char device; access is a mask of MKNOD 1, READ 2, WRITE 4.  One call
  may ask for several access bits at once (an O_RDWR open asks READ|WRITE).
* The verifier refuses backward jumps (here), unreachable instructions and
  reads of registers never written, and wants r0 set at every ``exit``.

The rule semantics (as v1's devices controller applies writes in order,
runc's emulator, and ``honoured_without_bpf`` in devices.py): rules apply in
order, a later rule overriding an earlier one, and where no rule speaks the
access is allowed (v2 without a program allows everything).  Overriding is
per access bit: the answer for READ comes from the last rule that names READ
and matches the device, so ``allow c 1:3 r`` then ``allow c 1:3 w`` allows
an O_RDWR open, and ``deny c 1:3 w`` after ``a *:* rwm`` refuses it.  The
request is allowed when each bit it asks for is.  (runc's filter matches a
rule only when it holds *every* requested bit, so there a deny of ``w``
alone does not refuse an O_RDWR open; this is stricter.)

The program, for each access bit the rules name (MKNOD, READ, WRITE)::

    if the request lacks the bit: go to the next bit
    for each rule naming the bit, last first:
        if type, major or minor differ: try the next rule
        allow: go to the next bit;  deny: return 0
    (no rule matched: the bit is allowed) go to the next bit
    ...
    return 1

A rule that matches every device (type ``a``, any major and minor) ends its
bit's chain: the rules before it can never decide that bit and are not
emitted (so the usual "deny all, then allow a few" list stays short).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from ..device_rules import DeviceRule

# struct bpf_cgroup_dev_ctx
CTX_ACCESS_TYPE = 0
CTX_MAJOR = 4
CTX_MINOR = 8
DEV_BLOCK = 1
DEV_CHAR = 2
ACCESS_BITS = (("m", 1), ("r", 2), ("w", 4))  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

# Opcodes (linux/bpf_common.h, linux/bpf.h): class | operation | source.
LDX_MEM_W = 0x61     # BPF_LDX | BPF_MEM | BPF_W:  dst = *(u32 *)(src + off)
ALU64_AND_K = 0x57   # BPF_ALU64 | BPF_AND | BPF_K
ALU64_RSH_K = 0x77   # BPF_ALU64 | BPF_RSH | BPF_K
ALU64_MOV_K = 0xB7   # BPF_ALU64 | BPF_MOV | BPF_K
ALU64_MOV_X = 0xBF   # BPF_ALU64 | BPF_MOV | BPF_X
JMP_JA = 0x05        # BPF_JMP | BPF_JA
JMP_JEQ_K = 0x15     # BPF_JMP | BPF_JEQ | BPF_K
JMP_JNE_K = 0x55     # BPF_JMP | BPF_JNE | BPF_K
JMP_EXIT = 0x95      # BPF_JMP | BPF_EXIT

# Registers: r0 the answer, r1 the context (then scratch), r2 the device
# type, r3 the requested access, r4 the major, r5 the minor.
R0, R1, R2, R3, R4, R5 = range(6)

INSN_SIZE = 8
LICENSE = "Apache"  # no GPL-only helper is called; the kernel only records it


class Insn:
    """One instruction; a jump's target is a label until ``assemble`` resolves it."""

    __slots__ = ("code", "dst", "src", "off", "imm", "target")

    def __init__(self, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0,
                 target: str | None = None) -> None:
        self.code, self.dst, self.src, self.off, self.imm, self.target = code, dst, src, off, imm, target

    def __repr__(self) -> str:
        return f"Insn({self.code:#04x}, r{self.dst}, r{self.src}, off={self.off}, imm={self.imm}, target={self.target})"


def _imm32(value: int) -> int:
    """A u32 as the instruction's signed 32-bit immediate.  Compared with a
    zero-extended u32 register, an immediate at or above 2**31 sign-extends
    and never matches; no device number reaches that (majors have 12 bits,
    minors 20), so such a rule matches nothing, which is what it means."""
    return value - (1 << 32) if value >= (1 << 31) else value


def _type_code(rule_type: str) -> int | None:
    return {"a": None, "b": DEV_BLOCK, "c": DEV_CHAR}[rule_type]


def _matches_everything(rule: DeviceRule) -> bool:
    return rule.type == "a" and rule.major is None and rule.minor is None


def deciding_rules(rules: list[DeviceRule], letter: str) -> list[DeviceRule]:
    """The rules that can decide access bit ``letter``, in the order the
    program tries them: last first, ending at the first one that matches
    every device (the earlier ones are shadowed)."""
    chain: list[DeviceRule] = []
    for rule in reversed(rules):
        if letter not in rule.access:
            continue
        chain.append(rule)
        if _matches_everything(rule):
            break
    return chain


def program(rules: list[DeviceRule]) -> list[Insn]:
    """The program for ``rules`` (validated DeviceRule records, in spec order), jumps still labelled."""
    out = [
        Insn(LDX_MEM_W, R2, R1, CTX_ACCESS_TYPE),
        Insn(ALU64_AND_K, R2, imm=0xFFFF),
        Insn(LDX_MEM_W, R3, R1, CTX_ACCESS_TYPE),
        Insn(ALU64_RSH_K, R3, imm=16),
        Insn(LDX_MEM_W, R4, R1, CTX_MAJOR),
        Insn(LDX_MEM_W, R5, R1, CTX_MINOR),
    ]
    labels: dict[str, int] = {}
    for letter, bit in ACCESS_BITS:
        chain = deciding_rules(rules, letter)
        if not chain or all(r.allow for r in chain):
            continue  # nothing can deny this bit
        done = f"bit-{letter}"
        out += [Insn(ALU64_MOV_X, R1, R3), Insn(ALU64_AND_K, R1, imm=bit), Insn(JMP_JEQ_K, R1, imm=0, target=done)]
        for i, rule in enumerate(chain):
            next_rule = f"rule-{letter}-{i}"
            dtype = _type_code(rule.type)
            if dtype is not None:
                out.append(Insn(JMP_JNE_K, R2, imm=dtype, target=next_rule))
            if rule.major is not None:
                out.append(Insn(JMP_JNE_K, R4, imm=_imm32(rule.major), target=next_rule))
            if rule.minor is not None:
                out.append(Insn(JMP_JNE_K, R5, imm=_imm32(rule.minor), target=next_rule))
            if rule.allow:
                out.append(Insn(JMP_JA, target=done))
            else:
                out += [Insn(ALU64_MOV_K, R0, imm=0), Insn(JMP_EXIT)]
            labels[next_rule] = len(out)
        labels[done] = len(out)
    out += [Insn(ALU64_MOV_K, R0, imm=1), Insn(JMP_EXIT)]
    for index, insn in enumerate(out):
        if insn.target is not None:
            insn.off = labels[insn.target] - (index + 1)
    return out


def assemble(insns: list[Insn]) -> bytes:
    """struct bpf_insn, little-endian: u8 code, u8 dst:4 | src:4 << 4, s16 off, s32 imm."""
    buf = bytearray()
    for insn in insns:
        buf.append(insn.code)
        buf.append(insn.dst | (insn.src << 4))
        buf += insn.off.to_bytes(2, "little", signed=True)
        buf += insn.imm.to_bytes(4, "little", signed=True)
    return bytes(buf)


def compile_rules(rules: list[DeviceRule]) -> bytes:
    """The program's bytes, for BPF_PROG_LOAD."""
    return assemble(program(rules))

"""Linux capability names <-> bit numbers.

Facts: capability sets are 64-bit masks (two 32-bit words in capset(2)), the
kernel's highest known capability is in /proc/sys/kernel/cap_last_cap, and
asking for a bit the kernel does not know makes capset(2) and
PR_CAPBSET_DROP fail with EINVAL.  So a name this module knows but the
running kernel does not (CAP_CHECKPOINT_RESTORE on a kernel before 5.9) is
dropped from the mask rather than failing the container, the same choice runc
makes; a name nobody knows is a config error.
"""

from __future__ import annotations

from .errors import InvalidSpec, SyscallError

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Sequence

CAPABILITIES: dict[str, int] = {
    name: bit for bit, name in enumerate((
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
        "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
        "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
        "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ))
}

_NAMES: dict[int, str] = {bit: name for name, bit in CAPABILITIES.items()}


def last_cap(path: str = "/proc/sys/kernel/cap_last_cap") -> int:
    """The highest capability number the running kernel knows."""
    try:
        # bytes: int() takes them, and a text read in "ascii" would import
        # that codec on every create
        with open(path, "rb") as f:
            return int(f.read())
    except OSError as err:
        raise SyscallError("read", path, err.errno or 0) from err
    except ValueError as err:
        raise SyscallError("parse", path, detail="not an integer") from err


def to_mask(names: Sequence[str], field: str, last: int) -> int:
    """The mask of ``names`` (the list at config field ``field``).

    An unknown name raises :class:`InvalidSpec` naming ``field[i]``; a known
    name whose bit is above ``last`` (see :func:`last_cap`) is silently left
    out, because the kernel would reject the whole set for it.
    """
    mask = 0
    for i, name in enumerate(names):
        bit = CAPABILITIES.get(name) if isinstance(name, str) else None
        if bit is None:
            raise InvalidSpec(f"{field}[{i}]", f"unknown capability {name!r}")
        if bit <= last:
            mask |= 1 << bit
    return mask


def to_names(mask: int) -> list[str]:
    """Names of the bits set in ``mask``, lowest first; bits with no known
    name (a kernel newer than this table) are left out."""
    return [_NAMES[bit] for bit in range(mask.bit_length()) if mask >> bit & 1 and bit in _NAMES]

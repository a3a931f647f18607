"""Load a cgroup's device program and attach it in place of the ones it had (the I/O edge of device_filter).

Facts about the kernel this relies on:

* An attached cgroup program holds its own reference: it stays in force
  after this process closes its fds and exits, until it is detached or the
  cgroup is removed.  Nothing needs pinning in bpffs.
* With ``BPF_F_ALLOW_MULTI`` a cgroup can hold several device programs, and
  an access passes only if every one of them (and every ancestor's) allows
  it.  Replacing therefore attaches the new program *before* detaching the
  old ones: in between, both apply, which is stricter than either, never
  looser.  (runc does the same; ``BPF_F_REPLACE`` would save a step but
  needs exactly one old program.)
* ``BPF_PROG_QUERY`` without ``BPF_F_QUERY_EFFECTIVE`` lists the programs
  attached to this cgroup itself, not those inherited from its ancestors,
  so only the container's own programs are replaced.
* Loading needs CAP_BPF or CAP_SYS_ADMIN in the initial user namespace:
  a runtime in a user namespace gets EPERM (devices.py decides what then).
"""

from __future__ import annotations

import errno

from ...kernel import syscalls
from ...kernel.errors import SyscallError
from ...kernel.lean import leanos
from .device_filter import LICENSE, compile_rules

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from ..device_rules import DeviceRule

VERIFIER_LOG_SIZE = 1 << 16


def load(rules: list[DeviceRule]) -> int:
    """The compiled program, loaded; returns its fd.  A refusal by the
    verifier (a bug here, not bad input) carries the verifier's log."""
    code = compile_rules(rules)
    try:
        fd, _ = syscalls.bpf_prog_load(syscalls.BPF_PROG_TYPE_CGROUP_DEVICE, code, LICENSE)
    except SyscallError as err:
        if err.errno in (errno.EPERM, errno.ENOSYS):
            raise
        # Load again only to get the verifier's reasons into the error.
        fd, _ = syscalls.bpf_prog_load(syscalls.BPF_PROG_TYPE_CGROUP_DEVICE, code, LICENSE, VERIFIER_LOG_SIZE)
    return fd


def replace(cgroup_dir: str, rules: list[DeviceRule]) -> None:
    """Make ``rules`` the device policy of ``cgroup_dir``: attach their
    program, then detach every program the cgroup had before."""
    prog = load(rules)
    try:
        try:
            cgroup = leanos.open(cgroup_dir, leanos.O_RDONLY | leanos.O_DIRECTORY | leanos.O_CLOEXEC)
        except OSError as err:
            raise SyscallError("open cgroup", cgroup_dir, err.errno or 0) from err
        try:
            old = syscalls.bpf_prog_query(cgroup, syscalls.BPF_CGROUP_DEVICE, cgroup_dir)
            syscalls.bpf_prog_attach(cgroup, prog, syscalls.BPF_CGROUP_DEVICE, syscalls.BPF_F_ALLOW_MULTI, cgroup_dir)
            for prog_id in old:
                _detach(cgroup, prog_id, cgroup_dir)
        finally:
            leanos.close(cgroup)
    finally:
        leanos.close(prog)


def attached(cgroup_dir: str) -> list[int]:
    """Ids of the device programs attached to ``cgroup_dir`` itself."""
    cgroup = leanos.open(cgroup_dir, leanos.O_RDONLY | leanos.O_DIRECTORY | leanos.O_CLOEXEC)
    try:
        return syscalls.bpf_prog_query(cgroup, syscalls.BPF_CGROUP_DEVICE, cgroup_dir)
    finally:
        leanos.close(cgroup)


def _detach(cgroup: int, prog_id: int, cgroup_dir: str) -> None:
    try:
        old = syscalls.bpf_prog_get_fd_by_id(prog_id)
    except SyscallError as err:
        if err.errno == errno.ENOENT:  # detached (and freed) by someone else meanwhile
            return
        raise
    try:
        syscalls.bpf_prog_detach(cgroup, old, syscalls.BPF_CGROUP_DEVICE, cgroup_dir)
    finally:
        leanos.close(old)

"""The process's identity and privileges, set by the init just before exec.

Order matters, and it is runc's:

1. rlimits and oom_score_adj while still root with every capability (raising
   a limit, or lowering oom_score_adj, would need CAP_SYS_RESOURCE later);
2. the bounding set is dropped while CAP_SETPCAP is still held;
3. with PR_SET_KEEPCAPS the uid change keeps the permitted set (it would
   otherwise be cleared when leaving uid 0);
4. capset() sets effective/permitted/inheritable, then ambient capabilities
   are raised (each must already be permitted and inheritable);
5. seccomp comes last (see init.py for when exactly).
"""

from __future__ import annotations

import errno
import stat

from .kernel import syscalls
from .kernel.errors import NotFound, SyscallError, Unsupported
from .kernel.lean import leanos
from .plan import ProcessPlan


def set_rlimits(plan: ProcessPlan) -> None:
    for res, soft, hard in plan.rlimits:
        try:
            syscalls.setrlimit(res, soft, hard)
        except SyscallError as err:
            raise SyscallError("setrlimit", f"process.rlimits resource {res}", err.errno,
                               f"soft={soft} hard={hard} (raising a hard limit needs CAP_SYS_RESOURCE)") from err


def set_oom_score_adj(value: int | None) -> None:
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as err:
        detail = ""
        if err.errno in (errno.EACCES, errno.EPERM):
            detail = (f"cannot set process.oomScoreAdj to {value}: lowering oom_score_adj needs "
                      "CAP_SYS_RESOURCE, which this runtime does not have")
        raise SyscallError("write", "/proc/self/oom_score_adj", err.errno or 0, detail) from err


def check_lsm(plan: ProcessPlan) -> None:
    """AppArmor and SELinux labels are accepted and applied when the kernel
    has the LSM; asking for one it lacks is an error, never silently ignored."""
    if plan.apparmor_profile and plan.apparmor_profile != "unconfined":
        try:
            with open("/sys/module/apparmor/parameters/enabled") as f:
                enabled = f.read().strip() == "Y"
        except OSError:
            enabled = False
        if not enabled:
            raise Unsupported("apply apparmor profile", plan.apparmor_profile, "AppArmor is not enabled on this host")
        for path in ("/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"):
            try:
                with open(path, "w") as f:
                    f.write(f"exec {plan.apparmor_profile}")
                break
            except FileNotFoundError:
                continue
            except OSError as err:
                raise SyscallError("set apparmor profile", plan.apparmor_profile, err.errno or 0) from err
    if plan.selinux_label:
        if not leanos.path.exists("/sys/fs/selinux/enforce"):
            raise Unsupported("apply selinux label", plan.selinux_label, "SELinux is not enabled on this host")
        try:
            with open("/proc/self/attr/exec", "w") as f:
                f.write(plan.selinux_label)
        except OSError as err:
            raise SyscallError("set selinux label", plan.selinux_label, err.errno or 0) from err


def drop_bounding(plan: ProcessPlan) -> None:
    if plan.caps is None:
        return
    for cap in range(plan.last_cap + 1):
        if not plan.caps.bounding & (1 << cap):
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)


def switch_user(plan: ProcessPlan) -> None:
    try:
        leanos.setgroups(list(plan.additional_gids))
    except OSError as err:
        # a user namespace whose setgroups is "deny" cannot take groups at all
        if err.errno != errno.EPERM or plan.additional_gids:
            raise SyscallError("setgroups", str(list(plan.additional_gids)), err.errno or 0) from err
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
    try:
        leanos.setresgid(plan.gid, plan.gid, plan.gid)
        leanos.setresuid(plan.uid, plan.uid, plan.uid)
    except OSError as err:
        raise SyscallError("set user", f"{plan.uid}:{plan.gid}", err.errno or 0) from err
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)


def apply_caps(plan: ProcessPlan) -> None:
    if plan.caps is None:
        return
    c = plan.caps
    syscalls.capset(c.effective, c.permitted, c.inheritable)
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    # The kernel raises an ambient capability only if it is both permitted and
    # inheritable; runc warns and goes on for the others, and so do we.
    raisable = c.ambient & c.permitted & c.inheritable
    for cap in range(plan.last_cap + 1):
        if raisable & (1 << cap):
            syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, cap)


def find_executable(plan: ProcessPlan) -> str:
    """Resolve args[0] as execvp would, with the process's own PATH, inside
    the container's root (the caller has already pivoted)."""
    name = plan.args[0]
    candidates = [name] if "/" in name else [leanos.path.join(d or ".", name) for d in plan.path_env().split(":")]
    for path in candidates:
        try:
            st = leanos.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and leanos.access(path, leanos.X_OK):
            return path
    target = f"process.args[0] {name!r}"
    if "/" in name:
        raise NotFound("exec", target, "no such executable file in the container")
    raise NotFound("exec", target, f"executable file not found in $PATH ({plan.path_env()})")

"""linux.seccomp: a filter installed just before the container's program runs."""

from __future__ import annotations

from typing import Any

import pytest
from bundle import Bundle
from old_seccomp_profile import profile as old_profile

pytestmark = pytest.mark.root

ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def profile(*rules: dict[str, Any], default: str = "SCMP_ACT_ALLOW") -> dict[str, Any]:
    return {"defaultAction": default, "architectures": ARCHES, "syscalls": list(rules)}


def with_tmpfs_tmp(bundle: Bundle) -> None:
    # mkdir needs somewhere writable; a tmpfs over the existing /tmp changes nothing on disk.
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})


def test_mkdir_allowed_without_filter(bundle: Bundle) -> None:
    """control: without a seccomp rule, mkdir in /tmp succeeds (so the tests below can fail)."""
    with_tmpfs_tmp(bundle)
    assert bundle.run_ok("mkdir /tmp/x && echo made").strip() == "made"


@pytest.mark.parametrize(
    ("errno_ret", "message"), [(1, "Operation not permitted"), (13, "Permission denied"), (None, "Operation not permitted")]
)
def test_errno_rule_blocks_one_syscall(bundle: Bundle, errno_ret: int | None, message: str) -> None:
    """an SCMP_ACT_ERRNO rule makes that syscall fail with errnoRet (EPERM by default), others work."""
    with_tmpfs_tmp(bundle)
    rule: dict[str, Any] = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    bundle.config["linux"]["seccomp"] = profile(rule)
    out = bundle.run_ok("mkdir /tmp/x 2>&1; echo rc=$?; touch /tmp/y && echo touched")
    assert message in out
    assert out.splitlines()[-2:] == ["rc=1", "touched"]


def test_rule_with_argument_condition(bundle: Bundle) -> None:
    """a rule with args matches only calls whose argument satisfies it (kill with signal 15)."""
    bundle.config["linux"]["seccomp"] = profile(
        {
            "names": ["kill"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "args": [{"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}],
        }
    )
    out = bundle.run_ok("kill -0 $$ && echo sig0-ok; kill -15 $$ 2>&1; echo rc=$?")
    lines = out.splitlines()
    assert lines[0] == "sig0-ok"
    assert "Operation not permitted" in out
    assert lines[-1] == "rc=1"


def test_default_errno_with_allow_list(bundle: Bundle) -> None:
    """defaultAction applies to every syscall not listed; listed ones keep working."""
    # Allow what busybox sh (and a runtime finishing its init) needs, but not mkdir.
    allowed = [
        "execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "rseq", "prlimit64",
        "mmap", "munmap", "mprotect", "read", "write", "writev", "exit", "exit_group", "getpid",
        "getppid", "getuid", "geteuid", "getgid", "getegid", "rt_sigaction", "rt_sigprocmask",
        "rt_sigreturn", "ioctl", "fcntl", "close", "dup2", "dup3", "stat", "fstat", "newfstatat",
        "lstat", "statx", "openat", "open", "getcwd", "wait4", "clone", "clone3", "fork", "vfork",
        "getrandom", "readlink", "readlinkat", "access", "faccessat", "faccessat2", "futex", "pipe",
        "pipe2", "sigaltstack", "gettid", "tgkill", "prctl", "lseek", "getdents64", "uname",
        # what a runtime may still call between loading the filter and execve
        "fstatfs", "statfs", "close_range", "capget", "capset", "setgroups", "setresuid",
        "setresgid", "setuid", "setgid", "nanosleep", "clock_nanosleep", "sched_yield",
        "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait", "getpgrp", "setsid", "kill",
        "madvise", "mlock", "sched_getaffinity", "pread64", "fchdir", "chdir", "umask", "poll",
        "ppoll", "select", "pselect6", "socket", "connect", "sendmsg", "recvmsg", "exit",
    ]  # fmt: skip
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ARCHES,
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}],
    }
    with_tmpfs_tmp(bundle)
    bundle.sh("echo alive; mkdir /tmp/x 2>&1; echo rc=$?")
    done = bundle.run()
    assert done.stdout.splitlines()[:1] == ["alive"], (done.returncode, done.stderr)
    assert "Function not implemented" in done.stdout
    assert done.stdout.splitlines()[-1] == "rc=1"


def test_no_new_privs_false_with_seccomp(bundle: Bundle) -> None:
    """a filter is installed even when noNewPrivileges is false (root may load it with CAP_SYS_ADMIN)."""
    with_tmpfs_tmp(bundle)
    bundle.config["process"]["noNewPrivileges"] = False
    bundle.config["linux"]["seccomp"] = profile({"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"})
    out = bundle.run_ok("mkdir /tmp/x 2>&1; echo rc=$?; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
    assert "Operation not permitted" in out
    assert "Seccomp:\t2" in out
    assert "NoNewPrivs:\t0" in out


@pytest.mark.parametrize("no_new_privs", [False, True])
def test_profile_older_than_close_range(bundle: Bundle, no_new_privs: bool) -> None:
    """a profile written before close_range(2) (denied with EPERM, as every
    unlisted syscall) runs as under runc: with noNewPrivileges false the
    filter is loaded before the init marks its fds close-on-exec, and the
    init falls back to fcntl on each fd; no host fd crosses into the
    container either way."""
    bundle.config["process"]["noNewPrivileges"] = no_new_privs
    bundle.config["linux"]["seccomp"] = old_profile()
    out = bundle.run_ok("ls /proc/self/fd; grep '^Seccomp:' /proc/self/status")
    lines = out.split()
    assert lines[-2:] == ["Seccomp:", "2"], out
    # ls itself holds 0-2 and the directory it reads (3); nothing else is open
    assert sorted(int(fd) for fd in lines[:-2]) == [0, 1, 2, 3], out

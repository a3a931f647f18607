"""A seccomp profile as profiles were written before close_range(2) existed.

Docker's default profile before 2020, the OCI runtime-tools default and many
Localhost profiles on nodes list the syscalls of their day and deny the
rest with EPERM.  This one allows what busybox sh needs and what runc's init
calls between loading the filter and execve (runc 1.1 marks fds
close-on-exec through /proc/self/fd and fcntl), and nothing newer:
no close_range (5.9), clone3 (5.3), faccessat2 (5.8), openat2 (5.6),
rseq (4.18, absent from Docker's list until 2021) or statx (listed from 2018 on, left
out here to be strict).  A runtime that issues one of those after the
filter is loaded fails where runc does not.
"""

from __future__ import annotations

from typing import Any

ALLOWED = (
    # busybox sh and the programs the tests run
    "execve", "brk", "arch_prctl", "set_tid_address", "set_robust_list", "prlimit64", "mmap",
    "munmap", "mprotect", "madvise", "read", "write", "readv", "writev", "pread64", "pwrite64",
    "exit", "exit_group", "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid",
    "getegid", "getgroups", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend",
    "sigaltstack", "ioctl", "fcntl", "close", "dup", "dup2", "dup3", "stat", "fstat",
    "newfstatat", "lstat", "open", "openat", "getcwd", "wait4", "waitid", "clone", "fork",
    "vfork", "kill", "tgkill", "getrandom", "readlink", "readlinkat", "access", "faccessat",
    "futex", "pipe", "pipe2", "lseek", "getdents", "getdents64", "uname", "nanosleep",
    "clock_nanosleep", "clock_gettime", "gettimeofday", "time", "sched_yield", "poll", "ppoll",
    "select", "pselect6", "getpgrp", "setpgid", "getpgid", "setsid", "umask", "chdir", "fchdir",
    "sysinfo", "getrlimit", "setrlimit",
    # a runtime's init after the filter: user and capabilities, the sync
    # socket, exec.fifo
    "capget", "capset", "prctl", "setgroups", "setresuid", "setresgid", "setuid", "setgid",
    "sendmsg", "recvmsg", "sendto", "recvfrom", "statfs", "fstatfs",
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
)  # fmt: skip

NEWER = ("close_range", "clone3", "faccessat2", "openat2", "rseq", "statx")


def profile() -> dict[str, Any]:
    """The profile in docker's JSON format, which is also OCI's ``linux.seccomp``."""
    assert not set(ALLOWED) & set(NEWER)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": list(ALLOWED), "action": "SCMP_ACT_ALLOW"}],
    }

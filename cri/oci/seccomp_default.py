"""The RuntimeDefault seccomp profile: an allowlist written for Dockyard.

Shape: the default action is ``SCMP_ACT_ERRNO`` with EPERM, and the system
calls a process needs to live inside a container are allowed.  What is left
out is what reaches past the container: loading modules, kexec, swapping,
changing the clock, mounting, new namespaces, keyrings, bpf, perf,
userfaultfd, ptrace of others, raw I/O ports, and the obsolete calls with a
history of kernel bugs (uselib, sysfs, nfsservctl, ...).  Several of those
are allowed again when the container holds the capability that makes the
kernel accept them anyway (``CAP_SYS_ADMIN`` for mount/unshare/setns,
``CAP_SYS_TIME`` for the clock, ...), so a pod that asks for a capability
gets to use it; that is also what kubelet users expect from docker's and
containerd's profiles.

Facts the conditional rules rely on:

* ``clone`` carries its namespace flags in the first argument on every
  architecture listed here (only s390 swaps the first two arguments), so a
  masked compare can refuse CLONE_NEW* without CAP_SYS_ADMIN.
* ``clone3`` passes its flags in a struct that seccomp cannot read; it gets
  ENOSYS, which makes glibc and musl fall back to ``clone``, where the flags
  are visible.
* ``personality`` is only allowed for the values programs use to query it or
  to ask for the Linux or 32-bit Linux domain (ADDR_NO_RANDOMIZE included);
  other personas change how the kernel lays out memory.
* System calls the installed libseccomp does not know are skipped by the
  runtime's compiler, so naming calls of newer kernels here is safe.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

EPERM = 1
ENOSYS = 38

# Native machine (uname -m) -> the OCI architectures a filter for it covers:
# the native ABI and the compat ABIs the kernel also accepts from it.
ARCHES_BY_MACHINE: dict[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "amd64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "arm64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
}

ALLOWED: tuple[str, ...] = (
    # files and directories
    "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range", "creat",
    "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fchdir",
    "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
    "fgetxattr", "flistxattr", "flock", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64",
    "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "getcwd", "getdents", "getdents64",
    "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listxattr", "llistxattr", "_llseek", "lremovexattr",
    "lseek", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat", "mknod", "mknodat", "newfstatat",
    "open", "openat", "openat2", "pipe", "pipe2", "pread64", "preadv", "preadv2", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "removexattr", "rename",
    "renameat", "renameat2", "rmdir", "sendfile", "sendfile64", "setxattr", "splice", "stat", "stat64",
    "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee",
    "truncate", "truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
    "utimes", "vmsplice", "write", "writev", "fanotify_mark", "name_to_handle_at",
    "getxattrat", "listxattrat", "removexattrat", "setxattrat",
    # polling, events, timers and the clock (reading it)
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "poll", "ppoll", "ppoll_time64", "pselect6",
    "pselect6_time64", "select", "_newselect", "signalfd", "signalfd4", "timerfd_create",
    "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "alarm",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "gettimeofday", "getitimer", "setitimer", "nanosleep", "time",
    "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64",
    "timer_settime", "timer_settime64", "times",
    # asynchronous I/O
    "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
    "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup",
    # memory
    "brk", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock", "mlock2",
    "mlockall", "mmap", "mmap2", "mprotect", "mremap", "msync", "munlock", "munlockall", "munmap",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages", "set_mempolicy", "get_mempolicy",
    "mbind", "map_shadow_stack", "mseal",
    # processes, threads, signals, scheduling
    "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "futex",
    "futex_time64", "futex_requeue", "futex_wait", "futex_waitv", "futex_wake", "get_robust_list",
    "get_thread_area", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "getrusage", "getsid",
    "gettid", "getuid", "getuid32", "ioprio_get", "kill", "pause", "pidfd_getfd", "pidfd_open",
    "pidfd_send_signal", "prctl", "prlimit64", "restart_syscall", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_yield",
    "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setpgid", "setpriority",
    "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid",
    "setreuid32", "setrlimit", "setsid", "setuid", "setuid32", "sigaltstack", "sigpending",
    "sigprocmask", "sigreturn", "sigsuspend", "tgkill", "tkill", "ugetrlimit", "uname", "vfork",
    "wait4", "waitid", "waitpid", "sysinfo", "getcpu", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "seccomp", "process_mrelease", "riscv_flush_icache",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "ioprio_set",
    "cacheflush", "breakpoint", "set_tls", "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
    # sockets (the network namespace is the boundary) and System V IPC (the ipc namespace)
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen",
    "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg",
    "sendto", "setsockopt", "shutdown", "socket", "socketcall", "socketpair", "ipc", "msgctl",
    "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop", "semtimedop_time64",
    "shmat", "shmctl", "shmdt", "shmget", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink",
    # terminals and devices go through ioctl; the device cgroup and the
    # capability set decide what an ioctl may do
    "ioctl",
)

PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
CLONE_NEW_MASK = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

# capability -> the calls the kernel would accept from a holder of it anyway
BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": ("bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                      "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
                      "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
                      "umount2", "unshare", "open_by_handle_at", "keyctl", "add_key", "request_key",
                      "pivot_root", "swapon", "swapoff", "statmount", "listmount"),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "init_module", "finit_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
                       "ptrace"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime",
                     "clock_adjtime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node", "move_pages",
                     "migrate_pages"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}


def runtime_default(capabilities: Collection[str], machine: str) -> dict[str, Any]:
    """``linux.seccomp`` for a container whose effective set is
    ``capabilities`` (``CAP_``-prefixed names) on a host whose ``uname -m``
    is ``machine``.  An unknown machine gets a filter with no architecture
    list, which libseccomp reads as "the native one"."""
    rules: list[dict[str, Any]] = [{"names": sorted(set(ALLOWED)), "action": "SCMP_ACT_ALLOW"}]
    rules.append({
        "names": ["personality"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"} for value in PERSONALITIES],
    })
    caps = set(capabilities)
    if "CAP_SYS_ADMIN" not in caps:
        rules.append({
            "names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NEW_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        })
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    extra = sorted({name for cap in sorted(caps) for name in BY_CAPABILITY.get(cap, ())} - set(ALLOWED))
    if extra:
        rules.append({"names": extra, "action": "SCMP_ACT_ALLOW"})
    profile: dict[str, Any] = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "syscalls": rules,
    }
    arches = ARCHES_BY_MACHINE.get(machine)
    if arches:
        profile["architectures"] = list(arches)
    return profile

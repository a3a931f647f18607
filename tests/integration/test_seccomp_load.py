"""A compiled linux.seccomp program, loaded by the kernel, does what the spec says.

Each test compiles a profile in the pytest process (as the runtime's parent
does) and starts a fresh Python child (as the runtime starts its init).  The
child sets no_new_privs, so no privilege is needed, loads the program with
``syscalls.seccomp_set_filter`` exactly as the container init does, runs one
probe and prints its result.  The child is started through the suite's
subreaper (``bundle.SUBREAPER.run``) so that its exit status is never reaped
by anyone else.
"""

from __future__ import annotations

import ctypes.util
import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bundle import SUBREAPER
from dockyard.runtime.seccomp import CompiledFilter, compile_filter

pytestmark = pytest.mark.skipif(ctypes.util.find_library("seccomp") is None,
                                reason="libseccomp is not installed (Debian: libseccomp2)")

# The child: program bytes on stdin, flags and probe source in argv.  Nothing
# but the probe runs under the filter.
CHILD = textwrap.dedent("""
    import errno, os, resource, sys
    from dockyard.runtime.kernel import syscalls

    program = sys.stdin.buffer.read()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a killed child leaves no core file
    syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    probe = compile(sys.argv[2], "probe", "exec")

    def errno_of(call):
        try:
            call()
        except OSError as err:
            return f"errno {err.errno}"
        return "ok"

    def status_line(key):
        for line in open("/proc/self/status").read().splitlines():
            if line.startswith(key + ":"):
                return line.split(":", 1)[1].strip()
        return "missing"

    syscalls.seccomp_set_filter(program, int(sys.argv[1]))
    exec(probe)
""")


def run_filtered(compiled: CompiledFilter, probe: str) -> tuple[int, str]:
    """Run ``probe`` (Python source that prints its result) in a fresh child
    under the filter; return its exit code (negative: killed by that signal)
    and what it printed."""
    done = SUBREAPER.run([sys.executable, "-c", CHILD, str(compiled.flags), textwrap.dedent(probe)],
                         timeout=30, input=compiled.program,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = done.stdout.decode().strip()
    if done.returncode > 0:
        out += " | " + done.stderr.decode().strip()
    return done.returncode, out


def allow_with(*rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": list(rules), **extra}


MKDIR_RULE = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}


def test_mkdir_control_without_filter(tmp_path: Path) -> None:
    """Control: an allow-everything filter lets mkdir succeed, so the blocking
    test below can fail."""
    target = tmp_path / "made"
    out = run_filtered(compile_filter(allow_with()), f"print(errno_of(lambda: os.mkdir({str(target)!r})))")
    assert out == (0, "ok")
    assert target.is_dir()


@pytest.mark.parametrize("errno_ret", [errno.EPERM, errno.EROFS])
def test_errno_rule_fails_mkdir_with_errno_ret(tmp_path: Path, errno_ret: int) -> None:
    """An SCMP_ACT_ERRNO rule on mkdir/mkdirat makes os.mkdir fail with errnoRet
    and create nothing."""
    target = tmp_path / "blocked"
    compiled = compile_filter(allow_with({**MKDIR_RULE, "errnoRet": errno_ret}))
    out = run_filtered(compiled, f"print(errno_of(lambda: os.mkdir({str(target)!r})))")
    assert out == (0, f"errno {errno_ret}")
    assert not target.exists()


def test_unblocked_syscalls_still_work(tmp_path: Path) -> None:
    """Only the named syscalls are affected: writing a file works under the
    mkdir rule."""
    target = tmp_path / "file"
    probe = f"print(errno_of(lambda: open({str(target)!r}, 'w').write('x')))"
    assert run_filtered(compile_filter(allow_with(MKDIR_RULE)), probe) == (0, "ok")
    assert target.read_text() == "x"


def test_argument_condition_selects_the_call() -> None:
    """A rule with args matches only calls whose arguments satisfy it:
    getpriority(PRIO_PGRP, 0) is refused, PRIO_PROCESS and PRIO_USER are not."""
    rule = {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EDOM,
            "args": [{"index": 0, "value": os.PRIO_PGRP, "op": "SCMP_CMP_EQ"}]}
    probe = """
        print(",".join(errno_of(lambda: os.getpriority(which, 0))
                       for which in (os.PRIO_PROCESS, os.PRIO_PGRP, os.PRIO_USER)))
    """
    assert run_filtered(compile_filter(allow_with(rule)), probe) == (0, f"ok,errno {errno.EDOM},ok")


def test_masked_argument_condition(tmp_path: Path) -> None:
    """SCMP_CMP_MASKED_EQ compares (arg & value) with valueTwo: openat with
    O_TRUNC among its flags is refused, other opens of the same file are not."""
    rule = {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
            "args": [{"index": 2, "value": os.O_TRUNC, "valueTwo": os.O_TRUNC, "op": "SCMP_CMP_MASKED_EQ"}]}
    target = tmp_path / "file"
    target.write_text("kept")
    probe = f"""
        flags = (os.O_RDONLY, os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND, os.O_RDWR | os.O_TRUNC)
        print(",".join(errno_of(lambda: os.close(os.open({str(target)!r}, f | os.O_CLOEXEC))) for f in flags))
    """
    out = run_filtered(compile_filter(allow_with(rule)), probe)
    assert out == (0, f"ok,errno {errno.EACCES},ok,errno {errno.EACCES}")
    assert target.read_text() == "kept"


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"])
def test_kill_action_kills_with_sigsys(action: str) -> None:
    """KILL, KILL_THREAD, KILL_PROCESS (and TRAP, SIGSYS at its default
    disposition) end the child by SIGSYS at the call, before it can print."""
    compiled = compile_filter(allow_with({"names": ["getppid"], "action": action}))
    assert run_filtered(compiled, "print('survived', os.getppid())") == (-signal.SIGSYS, "")


def test_default_errno_with_allow_list() -> None:
    """An allow-list profile (default ERRNO with defaultErrnoRet) refuses what
    it does not list: a child allowed only what Python needs to report gets
    ENOSYS from mkdir."""
    needed = ["write", "read", "close", "exit", "exit_group", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
              "brk", "mmap", "munmap", "mremap", "madvise", "futex", "getpid", "gettid", "sigaltstack",
              "newfstatat", "fstat", "lseek", "ioctl", "getrandom", "clock_gettime"]
    spec = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.ENOSYS,
            "syscalls": [{"names": needed, "action": "SCMP_ACT_ALLOW"}]}
    out = run_filtered(compile_filter(spec), "print(errno_of(lambda: os.mkdir('/nonexistent-dockyard-probe')))")
    assert out == (0, f"errno {errno.ENOSYS}")


def test_flags_are_accepted_by_the_kernel() -> None:
    """The flags int from compile_filter (TSYNC|LOG|SPEC_ALLOW) is accepted by
    seccomp(2), and the child then runs in filter mode with one filter."""
    spec = allow_with(MKDIR_RULE, flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
    compiled = compile_filter(spec)
    assert compiled.flags == 7
    probe = "print('/'.join(status_line(k) for k in ('Seccomp', 'Seccomp_filters', 'NoNewPrivs')))"
    assert run_filtered(compiled, probe) == (0, "2/1/1")

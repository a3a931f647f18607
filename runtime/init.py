"""The container's init: one ordered sequence, run in freshly forked children
of the single-threaded CLI process (never of a threaded one: a fork copies
only the calling thread, and any lock another thread held stays locked).

Two stages, because unshare/setns of pid and time namespaces only apply to
the caller's children::

    CLI (host namespaces)
     └─ stage 1: born in its cgroup2 dir (syscalls.fork_into_cgroup),
        │        moves itself into the v1 hierarchies (see join_self in
        │        runtime/cgroups/v1/manager.py for why itself), joins
        │        namespaces by path, creates the user namespace (the parent
        │        writes its id maps), then unshares the rest, forks, reports
        │        the stage-2 pid and exits.
        └─ stage 2 (pid 1 of a new pid namespace): mounts, hooks,
                 pivot_root, terminal, hostname, sysctls, privileges, then
                 waits on exec.fifo until ``start``, then execve.

The order inside stage 2 is runc's, and why:

* mounts before pivot_root, while the host paths of bind sources resolve;
* createContainer hooks after the mounts and before pivot_root (their path
  resolves in the runtime's mount namespace, they run in the container's);
* the pty after pivot_root, from the container's own devpts;
* masked/read-only paths after pivot_root, on the container's /proc and /sys;
* oom_score_adj in stage 1, before any namespace; rlimits while still fully privileged;
* seccomp as late as possible: with no_new_privs it is the very last call
  before execve (the execve arguments are marshalled beforehand, so nothing
  runs between the two); without no_new_privs it must be loaded while
  CAP_SYS_ADMIN is still held, so it goes just before the user switch;
* every fd above the preserved ones is marked close-on-exec just before
  "ready", so no host fd (a cgroup dir, the state dir, the Python
  interpreter's files) crosses into the container: the lesson of
  CVE-2024-21626.
"""

from __future__ import annotations

import sys

from . import hooks, privileges, sync
from .kernel import syscalls
from .kernel.errors import RuntimeFault, SyscallError, shorten
from .kernel.lean import leanos, leansignal
from .kernel.lean.records import Record
from .namespaces import join
from .plan import ProcessPlan
from .spec import Hook
from .sync import Channel

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable

    from .rootfs.setup import RootfsPlan
class InitPlan(Record):
    process: ProcessPlan
    rootfs: RootfsPlan | None                 # None for exec: the container's view exists already
    joins: tuple[tuple[str, int, str], ...]   # (type, fd, path) opened by the parent, in join order
    new_user: bool
    unshare_flags: int
    time_offsets: dict[str, dict[str, int]]
    hostname: str
    domainname: str
    sysctl: dict[str, str]
    personality: int | None
    create_container_hooks: tuple[Hook, ...]
    start_container_hooks: tuple[Hook, ...]
    preserve_fds: int
    fifo_fd: int           # O_PATH fd of exec.fifo, -1 for exec
    console_fd: int        # connected --console-socket, -1 if none
    set_sid: bool
    # The parent finishes the cgroup placement of stage 2 while stage 2 sets
    # up (runtime/spawn.py, _spawn): stage 2 waits for "placed" before it
    # runs anything of the container's (createContainer hooks, the program).
    late_placement: bool = False
    # The "hooks"/"hooks-done" exchange, needed only when some hook runs
    # (it carries the state the hooks are given); without it stage 2 runs
    # straight through to "ready".
    hooks_handshake: bool = True


def _fail(chan: Channel, err: BaseException) -> None:
    if not isinstance(err, RuntimeFault):
        err = RuntimeFault("container init", "", f"{type(err).__name__}: {err}")
    try:
        chan.send_error(err)
    except OSError:
        print(f"dockyard-runc init: {err}", file=sys.stderr)
    leanos._exit(1)


def stage1(plan: InitPlan, chan: Channel, join_cgroup: Callable[[], None] | None = None) -> None:
    """Runs in the first child.  Never returns.  ``join_cgroup``, if given,
    moves this (single-threaded) process into the container's cgroups; it
    runs first, while /sys/fs/cgroup is still the host's."""
    try:
        chan.recv(sync.GO, what="runtime")
        if join_cgroup is not None:
            join_cgroup()
        # Before any namespace: in a user namespace the kernel checks the
        # write against the new namespace's (lack of) CAP_SYS_RESOURCE, and
        # stage 2 inherits the value (runc's nsexec writes it this early too).
        privileges.set_oom_score_adj(plan.process.oom_score_adj)
        join(plan.joins)
        if any(kind == "user" for kind, _, _ in plan.joins):
            # Our host uid 0 has no mapping in the joined namespace: become
            # its root, or every file we create fails with EOVERFLOW.
            leanos.setresgid(0, 0, 0)
            leanos.setresuid(0, 0, 0)
        if plan.new_user:
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            chan.send(sync.IDMAP)
            chan.recv(sync.IDMAP_DONE, what="runtime")
            leanos.setresgid(0, 0, 0)
            leanos.setresuid(0, 0, 0)
        if plan.unshare_flags:
            syscalls.unshare(plan.unshare_flags)
        for clock, off in plan.time_offsets.items():
            with open("/proc/self/timens_offsets", "w") as f:
                f.write(f"{clock} {off['secs']} {off['nanosecs']}")
        for _, fd, _ in plan.joins:
            leanos.close(fd)
        pid = leanos.fork()
        if pid == 0:
            stage2(plan, chan)
        chan.send(sync.PID, pid=pid)
        leanos._exit(0)
    except BaseException as err:  # the child must never fall back into the CLI's code
        _fail(chan, err)


# close_range(2) refusals that mean "not this way" rather than a real
# failure: EPERM from a seccomp profile written before the syscall existed
# (loaded by now when noNewPrivileges is false), ENOSYS from a kernel before
# 5.9, EINVAL from 5.9/5.10, which lack CLOSE_RANGE_CLOEXEC.
_NO_CLOSE_RANGE = (1, 38, 22)  # EPERM, ENOSYS, EINVAL


def mark_cloexec_from(first: int) -> None:
    """Mark every fd >= ``first`` close-on-exec: one close_range(2) call, or,
    where that is refused, each fd in /proc/self/fd with fcntl(2), as runc
    does.  Every syscall of the fallback (openat, getdents64, fcntl, close)
    is in any seccomp profile that can run a program at all."""
    try:
        syscalls.close_range(first, 0xFFFFFFFF, syscalls.CLOSE_RANGE_CLOEXEC)
        return
    except SyscallError as err:
        if err.errno not in _NO_CLOSE_RANGE:
            raise
    for name in leanos.listdir("/proc/self/fd"):
        fd = int(name)
        if fd < first:
            continue
        try:
            syscalls.set_cloexec(fd)
        except SyscallError as err:
            if err.errno != 9:  # EBADF: the listing's own directory fd, closed by now
                raise


def _set_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as err:
            raise RuntimeFault("set sysctl", key, f"{value!r}: {leanos.strerror(err.errno or 0)}",
                               err.errno or 0) from err


def _run_hooks_in_container(kind: str, hook_list: tuple[Hook, ...], state: dict[str, object]) -> None:
    hooks.run_hooks(kind, hook_list, state)


def stage2(plan: InitPlan, chan: Channel) -> None:
    """The init proper.  Never returns: it execs the user's program or exits."""
    process = plan.process
    try:
        # stage 1 may still be writing its "pid" message on this socket
        chan.recv(sync.CONTINUE, what="runtime")
        if plan.create_container_hooks or plan.start_container_hooks:
            # After pivot_root the host's Python library is out of reach: load
            # now what running a hook needs later.
            import subprocess  # noqa: F401
        # Loaded only when needed: an exec has no rootfs to set up, and few
        # processes have a terminal (the pty code loads termios, a shared
        # object).  The parent has loaded them already (spawn._spawn): an
        # exec's stage 2 is in the container's mounts by now, where the
        # library is out of reach; these only bind the names.
        if plan.rootfs is not None:
            from .rootfs import setup as rootfs
        if process.terminal:
            from . import console
        if plan.set_sid:
            leanos.setsid()
        placed = not plan.late_placement
        state: dict[str, object] = {}
        if plan.rootfs is not None:
            rootfs.prepare(plan.rootfs)
            if plan.hooks_handshake:
                chan.send(sync.HOOKS)
                if not placed:  # before any hook runs in here
                    chan.recv(sync.PLACED, what="runtime")
                    placed = True
                state = chan.recv(sync.HOOKS_DONE, what="runtime")["state"]
                _run_hooks_in_container("createContainer", plan.create_container_hooks, state)
            # as runc and docker do, a working directory the image lacks is made
            rootfs.ensure_dir(plan.rootfs, process.cwd)
            rootfs.pivot(plan.rootfs)
        else:
            leanos.chdir("/")
        if process.terminal:
            if plan.console_fd < 0:
                raise RuntimeFault("set up terminal", "process.terminal", "terminal is true but no --console-socket was given")
            console.setup(plan.console_fd, process.console_size, bind_console=plan.rootfs is not None)
        if plan.hostname:
            syscalls.sethostname(plan.hostname)
        if plan.domainname:
            syscalls.setdomainname(plan.domainname)
        # before finalize: /proc/sys is about to become read-only
        _set_sysctls(plan.sysctl)
        if plan.rootfs is not None:
            rootfs.finalize(plan.rootfs)
        privileges.set_rlimits(process)
        if plan.personality is not None:
            syscalls.personality(plan.personality)
        privileges.check_lsm(process)
        privileges.drop_bounding(process)
        # Python's start-up ignores SIGPIPE and SIGXFSZ, and an ignored signal
        # stays ignored across execve: the program gets the defaults back, as
        # runc's (Go's) gives them.  Before seccomp, which may deny sigaction.
        leansignal.signal(leansignal.SIGPIPE, leansignal.SIG_DFL)
        leansignal.signal(leansignal.SIGXFSZ, leansignal.SIG_DFL)
        if process.no_new_privileges:
            syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
        elif process.seccomp is not None:
            syscalls.seccomp_set_filter(process.seccomp.program, process.seccomp.flags)
        try:
            leanos.chdir(process.cwd)
        except OSError as err:
            raise RuntimeFault("chdir", f"process.cwd {process.cwd}", "", err.errno or 0) from err
        privileges.switch_user(process)
        privileges.apply_caps(process)
        if process.umask is not None:
            leanos.umask(process.umask)
        exe = privileges.find_executable(process)
        execve = syscalls.prepare_execve(exe, list(process.args), list(process.env))
        mark_cloexec_from(3 + plan.preserve_fds)
        if not placed:
            chan.recv(sync.PLACED, what="runtime")
        if plan.fifo_fd >= 0:
            chan.send(sync.READY)
            # Blocks until `start` opens the fifo for reading.  The write end
            # stays open, close-on-exec: `start` reads "0", then waits for EOF,
            # which comes exactly when execve succeeds (or the init dies), so
            # poststart hooks run after the program has started.
            wfd = leanos.open(f"/proc/self/fd/{plan.fifo_fd}", leanos.O_WRONLY | leanos.O_CLOEXEC)
            _run_hooks_in_container("startContainer", plan.start_container_hooks, {**state, "status": "created"})
            leanos.write(wfd, b"0")
        else:
            chan.send(sync.READY)
        if process.no_new_privileges and process.seccomp is not None:
            syscalls.seccomp_set_filter(process.seccomp.program, process.seccomp.flags)
        code = execve()
        print(f"dockyard-runc init: exec {shorten(exe)}: {leanos.strerror(code)}", file=sys.stderr)
        leanos._exit(127)
    except BaseException as err:
        _fail(chan, err)

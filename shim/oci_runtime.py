"""The shim's runtime interface: an OCI runtime's verbs, driven through its command line.

``OciRuntime`` turns each verb into runc's command line (``create``, ``run
--detach``, ``start``, ``kill``, ``delete``, ``exec --detach``, ``update``,
``events --stats``), runs it as a child of the shim, waited for through the
Reaper (so container exits that happen meanwhile are reaped and recorded
too), and reads its error from its ``--log`` (json lines, as containerd
does) or its stderr.  The shim blocks while the runtime runs: a verb takes
tens of milliseconds, and nothing else the shim does (answering, logging,
reaping) is lost by waiting, only delayed; ``wait`` requests never block
(they are parked).

How the runtime's process starts is a strategy, a ``Launcher``:

* ``SpawnBinary`` ("exec"): execute any OCI runtime binary (runc, crun,
  dockyard-runc) with posix_spawn: a vfork + exec, so no copy of the shim's
  memory and no ``subprocess`` import.
* ``ForkBundled`` ("fork", shim/fork_bundled.py): the bundled dockyard-runc
  of the shim's own installation, run in a fork of the shim instead of a
  fresh interpreter; that module says why and how.  It is the one place in
  shim/ that runs the runtime's code (tests/unit/test_layering.py allows
  exactly that).

``choose_launcher`` picks fork for the bundled runtime and exec for any
other binary, unless the shim is told which (``--runtime-launch``).  Both
run the same argv with the same stdio, and the shim's tests run every
lifecycle case through both.

Output: stdout and stderr go to memfds, read after exit (a pipe read after
exit could fill up and deadlock a chatty runtime).  ``create`` and ``exec``
hand the runtime the container's own stdio instead, since the container
inherits it, so their errors are read from the ``--log`` file.
"""

from __future__ import annotations

import sys

from dockyard.api.shim import Code, ShimError
from dockyard.runtime.kernel.lean import jsonfast, leanos, leansignal

from .reaper import Reaper

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Protocol

    # Output pipes of the process being started, and their readers (Reaper.wait_for).
    Pump = Mapping[int, Callable[[int], None]]
else:
    Protocol = object

TIMEOUT_S = 60.0
# criu dumps or restores every page of the container's memory.
CHECKPOINT_TIMEOUT_S = 600.0
LAUNCHES = ("exec", "fork")


class Launcher(Protocol):
    """Starts one runtime process with ``argv`` (argv[0] is the binary) on
    ``stdio`` (fds for its 0, 1 and 2, all above 2) and returns its pid, a
    child of the shim.  The caller waits for it."""

    name: str

    def launch(self, argv: list[str], stdio: tuple[int, int, int]) -> int: ...


class SpawnBinary:
    """Execute the runtime binary, whichever it is."""

    name = "exec"

    def launch(self, argv: list[str], stdio: tuple[int, int, int]) -> int:
        # posix_spawn is a vfork+exec: dup2 clears O_CLOEXEC on 0-2, every other fd of the
        # shim is close-on-exec (PEP 446).  Signals ignored here (by the interpreter: SIGPIPE,
        # SIGXFSZ; by the shim: SIGINT, SIGHUP) would stay ignored across exec, and the
        # container would inherit them: put them back.
        return leanos.posix_spawn(
            argv[0], argv, leanos.environb,
            file_actions=[(leanos.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(stdio)],
            setsigdef=(leansignal.SIGPIPE, leansignal.SIGXFSZ, leansignal.SIGINT, leansignal.SIGHUP),
        )


def choose_launcher(binary: str, python: str, requested: str = "", *, systemd_cgroup: bool = False) -> Launcher:
    """``requested`` ("exec", "fork" or "" for the default): fork for the
    dockyard-runc installed beside ``python``, exec for anything else.
    ``systemd_cgroup``: the runtime gets --systemd-cgroup (a fork strategy
    loads what that needs once: fork_bundled.preload_systemd_bus)."""
    if requested not in ("", *LAUNCHES):
        raise ShimError(Code.INVALID_ARGUMENT, f"runtime launch {requested!r} is not one of {', '.join(LAUNCHES)}")
    bundled = is_bundled_runtime(binary, python)
    if requested == "fork" and not bundled:
        raise ShimError(Code.INVALID_ARGUMENT, f"runtime launch fork runs only the bundled dockyard-runc, not {binary}")
    if requested == "exec" or not bundled:
        return SpawnBinary()
    from .fork_bundled import ForkBundled

    return ForkBundled(systemd_cgroup=systemd_cgroup)


def find_binary(name: str) -> str:
    if "/" in name:
        return leanos.path.abspath(name)
    for folder in leanos.getenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        path = leanos.path.join(folder, name)
        if leanos.access(path, leanos.X_OK):
            return path
    raise ShimError(Code.INVALID_ARGUMENT, f"runtime binary {name!r} not found in PATH")


def is_bundled_runtime(binary: str, python: str) -> bool:
    """True when ``binary`` is the dockyard-runc installed beside the shim's
    own interpreter (one installation, one version of the code)."""
    ours = leanos.path.join(leanos.path.dirname(python), "dockyard-runc")
    try:
        return leanos.path.samefile(binary, ours)
    except OSError:
        return False


class OciRuntime:
    """One OCI runtime binary with its state root, one method per verb."""

    def __init__(self, binary: str, root: str, reaper: Reaper, log_path: str, launch: str = "", *,
                 systemd_cgroup: bool = False) -> None:
        self.binary = find_binary(binary)
        self.root = root
        # --systemd-cgroup goes on every call, as containerd's shim does with SystemdCgroup:
        # create needs it, and the other verbs accept it.
        self.global_flags = ["--systemd-cgroup"] if systemd_cgroup else []
        self.reaper = reaper
        self.log_path = log_path  # the runtime's --log (json), truncated before each call
        self.launcher = choose_launcher(self.binary, sys.executable, launch, systemd_cgroup=systemd_cgroup)

    def _run(self, what: str, args: list[str], *, stdio: tuple[int, int, int] | None = None,
             input_data: bytes | None = None, pump: Pump | None = None, timeout: float = 0.0) -> bytes:
        """Run one verb; its stdout.  A non-zero exit raises Internal with the runtime's own message."""
        own: list[int] = []
        try:
            if stdio is None:
                stdin = leanos.open(leanos.devnull, leanos.O_RDONLY | leanos.O_CLOEXEC)
                own.append(stdin)
                if input_data is not None:
                    leanos.close(stdin)
                    own.remove(stdin)
                    stdin = leanos.memfd_create("runtime-stdin", leanos.MFD_CLOEXEC)
                    own.append(stdin)
                    leanos.write(stdin, input_data)
                    leanos.lseek(stdin, 0, leanos.SEEK_SET)
                out = leanos.memfd_create("runtime-stdout", leanos.MFD_CLOEXEC)
                err = leanos.memfd_create("runtime-stderr", leanos.MFD_CLOEXEC)
                own += [out, err]
                stdio = (stdin, out, err)
            else:
                out = err = -1
            with open(self.log_path, "wb"):
                pass
            argv = [self.binary, "--root", self.root, "--log", self.log_path, "--log-format", "json",
                    *self.global_flags, *args]
            pid = self.launcher.launch(argv, stdio)
            self.reaper.expect(pid)
            status = self.reaper.wait_for(pid, timeout or TIMEOUT_S, f"runtime {args[0]} {args[-1]}", pump)
            stdout = _read_all(out) if out >= 0 else b""
            if status != 0:
                text, cls, errno = self._failure(err)
                raise ShimError(failure_code(args[0], cls, errno),
                                f"{what}: runtime {leanos.path.basename(self.binary)} {args[0]} "
                                f"failed ({_describe(status)}): {text}")
            return stdout
        finally:
            for fd in own:
                leanos.close(fd)

    def _failure(self, err_fd: int) -> tuple[str, str, int]:
        """The runtime's last error: its message, and the error class and
        errno its log line carries ("" and 0 where it carries none: runc's
        and crun's do not)."""
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        for line in reversed(lines):
            try:
                entry = jsonfast.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                errno = entry.get("errno")
                return (str(entry.get("msg", "")), str(entry.get("error", "")),
                        errno if isinstance(errno, int) and not isinstance(errno, bool) else 0)
        text = _read_all(err_fd).decode(errors="replace").strip() if err_fd >= 0 else ""
        return text[-2000:] or "no error message", "", 0

    # --- verbs -------------------------------------------------------------

    def create(self, container_id: str, bundle: str, pid_file: str, console_socket: str,
               stdio: tuple[int, int, int], pump: Pump | None = None) -> None:
        self._spawn(f"create {container_id}", ["create", "--bundle", bundle], container_id, pid_file,
                    console_socket, stdio, pump)

    def run_detached(self, container_id: str, bundle: str, pid_file: str, console_socket: str,
                     stdio: tuple[int, int, int], pump: Pump | None = None) -> None:
        """create + start in one runtime call (runc's ``run --detach``)."""
        self._spawn(f"run {container_id}", ["run", "--detach", "--bundle", bundle], container_id, pid_file,
                    console_socket, stdio, pump)

    def restore_detached(self, container_id: str, bundle: str, pid_file: str, console_socket: str,
                         stdio: tuple[int, int, int], pump: Pump | None = None, *, image_path: str = "") -> None:
        """A task made from a checkpoint (runc's ``restore --detach``): its processes come from
        ``image_path``, its stdio from ``stdio``, as with ``run --detach``."""
        if console_socket:
            raise ShimError(Code.INVALID_ARGUMENT, f"restore {container_id}: a container with a terminal "
                                                   "cannot be restored")
        args = ["restore", "--detach", "--bundle", bundle, "--pid-file", pid_file, "--image-path", image_path,
                "--work-path", leanos.path.join(leanos.path.dirname(image_path), "restore-work")]
        self._run(f"restore {container_id}", [*args, container_id], stdio=stdio, pump=pump,
                  timeout=CHECKPOINT_TIMEOUT_S)

    def checkpoint(self, container_id: str, image_path: str, work_path: str, leave_running: bool,
                   timeout: int = 0) -> None:
        args = ["checkpoint", "--image-path", image_path, "--work-path", work_path]
        if leave_running:
            args.append("--leave-running")
        self._run(f"checkpoint {container_id}", [*args, container_id], timeout=timeout or CHECKPOINT_TIMEOUT_S)

    def start(self, container_id: str) -> None:
        self._run(f"start {container_id}", ["start", container_id])

    def kill(self, container_id: str, signum: int, all_processes: bool) -> None:
        args = ["kill", *(["--all"] if all_processes else []), container_id, str(signum)]
        self._run(f"kill {container_id}", args)

    def delete(self, container_id: str, force: bool) -> None:
        self._run(f"delete {container_id}", ["delete", *(["--force"] if force else []), container_id])

    def exec(self, container_id: str, process_file: str, pid_file: str, console_socket: str,
             stdio: tuple[int, int, int], pump: Pump | None = None) -> None:
        self._spawn(f"exec in {container_id}", ["exec", "--detach", "--process", process_file], container_id,
                    pid_file, console_socket, stdio, pump)

    def _spawn(self, what: str, args: list[str], container_id: str, pid_file: str, console_socket: str,
               stdio: tuple[int, int, int], pump: Pump | None) -> None:
        """A call that starts a process on ``stdio`` (create, run, exec): its pid goes to
        ``pid_file``, and its terminal's master to ``console_socket`` when one is given."""
        console = ["--console-socket", console_socket] if console_socket else []
        self._run(what, [*args, "--pid-file", pid_file, *console, container_id], stdio=stdio, pump=pump)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        self._run(f"update {container_id}", ["update", "--resources", "-", container_id],
                  input_data=jsonfast.dumps(resources).encode())

    def stats(self, container_id: str) -> dict[str, Any]:
        out = self._run(f"stats of {container_id}", ["events", "--stats", container_id])
        for line in out.splitlines():
            event = jsonfast.loads(line)
            if isinstance(event, dict) and event.get("type") == "stats":
                data: dict[str, Any] = event.get("data", {})
                return data
        raise ShimError(Code.INTERNAL, f"stats of {container_id}: runtime printed no stats event")


# A failed runtime call's error class, as dockyard-runc's --log names it, ->
# the protocol code the shim answers with, so the daemon can tell the caller
# whose fault it was: an executable missing from the container is NotFound,
# a value the spec cannot have InvalidArgument.  An unknown class (or none,
# as from runc and crun) stays Internal.
RUNTIME_ERROR_CODES = {
    "NotFound": Code.NOT_FOUND,
    "InvalidArgument": Code.INVALID_ARGUMENT,
    "InvalidSpec": Code.INVALID_ARGUMENT,
    "AlreadyExists": Code.ALREADY_EXISTS,
    "FailedPrecondition": Code.FAILED_PRECONDITION,
    "Unsupported": Code.FAILED_PRECONDITION,
}
# What the kernel answers when ``update`` writes a resource value: EINVAL,
# ERANGE or EOVERFLOW mean the value is not one it takes (the caller's), EBUSY
# that the cgroup cannot take it now (memory below what is in use).  Only
# for ``update``, whose every write is a value the caller gave: elsewhere an
# EINVAL may be the runtime's own mistake.
UPDATE_ERRNO_CODES = {22: Code.INVALID_ARGUMENT, 34: Code.INVALID_ARGUMENT, 75: Code.INVALID_ARGUMENT,
                      16: Code.FAILED_PRECONDITION}


def failure_code(verb: str, error_class: str, errno: int) -> str:
    """The protocol code for a runtime call that failed (pure)."""
    if error_class == "SyscallError" and verb == "update":
        return UPDATE_ERRNO_CODES.get(errno, Code.INTERNAL)
    return RUNTIME_ERROR_CODES.get(error_class, Code.INTERNAL)


def _read_all(fd: int) -> bytes:
    leanos.lseek(fd, 0, leanos.SEEK_SET)
    chunks = []
    while chunk := leanos.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _describe(status: int) -> str:
    if leanos.WIFSIGNALED(status):
        return f"killed by signal {leanos.WTERMSIG(status)}"
    return f"exit status {leanos.waitstatus_to_exitcode(status)}"

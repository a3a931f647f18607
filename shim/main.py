"""dockyard-shim: one per pod; it runs the pod's containers through the OCI runtime.

    dockyard-shim start --id POD --state-dir DIR --runtime BIN --runtime-root DIR [--runtime-launch exec|fork]
                        [--runtime-cgroup-driver cgroupfs|systemd]

``start`` detaches a shim serving in DIR (the daemon passes
``<state_dir>/shims/<pod_id>``) and prints the API socket's path once it
accepts connections; it exits non-zero with the reason if the shim could not
come up.  ``serve`` (same flags, hidden) serves in the foreground.
``--runtime-launch`` says how the runtime's processes start (shim/oci_runtime.py):
by default in a fork of the shim for the bundled dockyard-runc, executed for
any other binary.  ``--runtime-cgroup-driver systemd`` runs every runtime
call with ``--systemd-cgroup`` (runc's flag, which crun and dockyard-runc share).

Detaching (facts):
- Double fork with setsid in between: the shim is in its own session, is not
  a session leader (so it can never acquire a controlling terminal), and its
  parent exits, so it is reparented to the nearest child subreaper (or init),
  not to the daemon.  The daemon can die and restart; the shim stays.
- The shim makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so the
  container inits the runtime forks become its children when the runtime
  exits.  The flag survives execve, so the detached child sets it (that needs
  ctypes) and then executes a fresh interpreter running ``serve``: the
  long-lived process never loads ctypes, and it does not carry the memory of
  the process that forked it.
- If the shim is killed (SIGKILL), its containers keep running: they are
  reparented to the shim's own subreaper (init, or the test's subreaper),
  their stdio pipes lose their reader (the next write gets EPIPE or SIGPIPE),
  and nobody records their exit.  The daemon sees it as a refused connection
  on the socket and a dead pid in shim.pid; it must then kill and delete the
  containers through the runtime (``delete --force`` works from the runtime's
  own state) and mark them exited with the reason.
"""

from __future__ import annotations

import errno
import sys

from dockyard.api import shim as api
from dockyard.runtime.kernel.lean import leanos, leansignal, leansocket

USAGE = ("usage: dockyard-shim start --id POD --state-dir DIR --runtime BINARY --runtime-root DIR"
         " [--runtime-launch exec|fork] [--runtime-cgroup-driver cgroupfs|systemd]\n"
         "Detach a shim serving the pod's containers on DIR/shim.sock, print that path, exit.\n")
FLAGS = ("--id", "--state-dir", "--runtime", "--runtime-root", "--runtime-launch", "--runtime-cgroup-driver",
         "--ready-fd")
READY_TIMEOUT_S = 30.0


class UsageError(Exception):
    pass


def parse(argv: list[str]) -> tuple[str, dict[str, str]]:
    if not argv or argv[0] not in ("start", "serve"):
        raise UsageError("a command is needed: start")
    verb, opts = argv[0], {}
    rest = argv[1:]
    while rest:
        name, eq, value = rest.pop(0).partition("=")
        if name not in FLAGS:
            raise UsageError(f"unknown flag {name}")
        if not eq:
            if not rest:
                raise UsageError(f"{name} needs a value")
            value = rest.pop(0)
        opts[name[2:].replace("-", "_")] = value
    for need in ("id", "state_dir", "runtime", "runtime_root"):
        if not opts.get(need):
            raise UsageError(f"--{need.replace('_', '-')} is required")
    if opts.get("runtime_cgroup_driver", "cgroupfs") not in ("cgroupfs", "systemd"):
        raise UsageError("--runtime-cgroup-driver is cgroupfs or systemd")
    opts["state_dir"] = leanos.path.abspath(opts["state_dir"])
    return verb, opts


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    try:
        verb, opts = parse(args)
    except UsageError as err:
        sys.stderr.write(f"dockyard-shim: {err}\n{USAGE}")
        return 2
    if verb == "start":
        return start(opts)
    return serve(opts)


def _alive(sock_path: str) -> bool:
    s = leansocket.unix_stream()
    try:
        s.connect(sock_path)
    except OSError:
        return False
    finally:
        s.close()
    return True


def _self_argv() -> list[str]:
    """How to run this program again (the fast launcher, pip's script, or -m),
    with the interpreter's flags and -X options (``-X importtime`` reaches
    ``serve`` too: the shim's import budget is tested that way)."""
    flags = (["-I"] if sys.flags.isolated else []) + (["-S"] if sys.flags.no_site else [])
    flags += [f"-X{k}" if v is True else f"-X{k}={v}" for k, v in sys._xoptions.items()]
    if sys.argv[0].endswith(leanos.path.join("shim", "main.py")):
        return [sys.executable, *flags, "-m", "dockyard.shim.main"]
    return [sys.executable, *flags, sys.argv[0]]


def start(opts: dict[str, str]) -> int:
    folder = opts["state_dir"]
    sock_path = f"{folder}/{api.SOCKET_NAME}"
    leanos.makedirs(folder, mode=0o711, exist_ok=True)
    if _alive(sock_path):
        sys.stderr.write(f"dockyard-shim: a shim already serves {sock_path}\n")
        return 1
    r, w = leanos.pipe()
    argv = [*_self_argv(), "serve", *(f"--{k.replace('_', '-')}={v}" for k, v in opts.items()), f"--ready-fd={w}"]
    first = leanos.fork()
    if first == 0:  # pragma: no cover - runs in the detached children
        try:
            leanos.close(r)
            leanos.setsid()
            if leanos.fork() != 0:
                leanos._exit(0)
            from dockyard.runtime.kernel import syscalls

            syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
            leanos.set_inheritable(w, True)
            leanos.execv(argv[0], argv)
        except BaseException as err:
            leanos.write(w, f"detach failed: {err}".encode())
        leanos._exit(1)
    leanos.close(w)
    leanos.waitpid(first, 0)
    import select

    answer = b""
    while True:
        ready, _, _ = select.select([r], [], [], READY_TIMEOUT_S)
        if not ready:
            answer = answer or b"no answer from the detached shim in time"
            break
        chunk = leanos.read(r, 4096)
        if not chunk:
            break
        answer += chunk
    leanos.close(r)
    if answer != b"ok":
        sys.stderr.write(f"dockyard-shim: start failed: {answer.decode(errors='replace') or 'shim exited'}\n")
        return 1
    sys.stdout.write(sock_path + "\n")
    return 0


def serve(opts: dict[str, str]) -> int:
    from .connection import Listener
    from .loop import READ, Loop
    from .service import Shim
    from .state import write_atomic

    folder = opts["state_dir"]
    ready_fd = int(opts.get("ready_fd", "-1"))
    leanos.makedirs(folder, mode=0o711, exist_ok=True)
    # Relative paths from here on: the socket paths must fit in 108 bytes.
    leanos.chdir(folder)
    if ready_fd >= 0:
        null = leanos.open(leanos.devnull, leanos.O_RDWR)
        log = leanos.open("shim.log", leanos.O_WRONLY | leanos.O_APPEND | leanos.O_CREAT, 0o600)
        leanos.dup2(null, 0)
        leanos.dup2(null, 1)
        leanos.dup2(log, 2)
        leanos.close(null)
        leanos.close(log)
    try:
        loop = Loop()
        shim = Shim(loop, folder, opts["runtime"], opts["runtime_root"], opts.get("runtime_launch", ""),
                    systemd_cgroup=opts.get("runtime_cgroup_driver") == "systemd")
        peers = shim.peers
        try:
            leanos.unlink(api.SOCKET_NAME)
        except FileNotFoundError:
            pass
        listener = Listener(loop, api.SOCKET_NAME, on_message=shim.handle, on_close=shim.peer_closed,
                            on_open=peers.append)
        loop.watch(shim.reaper.fd, READ, shim.reaper.on_wakeup)
        write_atomic(api.PID_FILE, f"{leanos.getpid()}\n".encode())
    except Exception as err:
        if ready_fd >= 0:
            leanos.write(ready_fd, f"{type(err).__name__}: {err}".encode())
        raise
    terminate = []
    leansignal.signal(leansignal.SIGTERM, lambda _s, _f: terminate.append(1))
    leansignal.signal(leansignal.SIGINT, leansignal.SIG_IGN)
    leansignal.signal(leansignal.SIGHUP, leansignal.SIG_IGN)
    if ready_fd >= 0:
        leanos.write(ready_fd, b"ok")
        leanos.close(ready_fd)

    def flushed() -> bool:
        return all(not p.out for p in peers)

    while not (shim.shutting_down and flushed()):
        loop.run_once()
        if terminate:
            terminate.clear()
            # SIGTERM stops an idle shim only: with containers alive it would orphan them.
            if not any(c.effective_state.is_alive for c in shim.containers.values()):
                shim.shutting_down = True
    for peer in list(peers):
        peer.close()
    listener.close()
    _remove_own_files(shim)
    return 0


def _remove_own_files(shim: object) -> None:
    containers = getattr(shim, "containers")
    for name in (api.SOCKET_NAME, api.PID_FILE, "runtime.log", "shim.log"):
        try:
            leanos.unlink(name)
        except FileNotFoundError:
            pass
    if not containers:
        for path in (api.CONTAINERS_DIR, leanos.getcwd()):
            try:
                leanos.rmdir(path)
            except OSError as err:
                if err.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                    raise


if __name__ == "__main__":
    sys.exit(main())

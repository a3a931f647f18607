"""dockyard-shim as the daemon sees it: started with `dockyard-shim start`, driven over its socket.

The shim runs real containers through dockyard-runc, from busybox bundles
(bundle.py's config on build/bundles/busybox's rootfs), through both of its
launch strategies (shim/oci_runtime.py): every test that starts a shim runs
once with dockyard-runc in a fork of the shim ("fork") and once executed
("exec"), as any other runtime binary is.  pytest is the
session's child subreaper, so the detached shim is re-parented to pytest
(as it would be to init on a host), and the leak check sees it as a child:
every test shuts its shims down, which the fixture enforces.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bundle import REPO, SUBREAPER, Bundle

from dockyard.api import shim as api
from dockyard.api.shim import Code, ShimError

pytestmark = pytest.mark.root

SHIM = REPO / ".venv" / "bin" / "dockyard-shim"
LOG_LINE = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) (stdout|stderr) ([PF]) (.*)$")


class Client:
    """A small synchronous client of api/shim.py (the daemon's is asyncio)."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.frames = api.FrameBuffer()
        self.inbox: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.next_id = 0
        self.fds: list[int] = []  # received over SCM_RIGHTS, not yet claimed by a frame

    def close(self) -> None:
        self.sock.close()

    def _next(self) -> dict[str, Any]:
        while not self.inbox:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 1 << 20, 8)
            self.fds += fds
            if not data:
                raise EOFError("shim closed the connection")
            self.inbox += self.frames.feed(data)
        return self.inbox.pop(0)

    def send(self, method: str, **params: Any) -> int:
        self.next_id += 1
        self.sock.sendall(api.encode(api.request(self.next_id, method, params)))
        return self.next_id

    def reply(self, req_id: int) -> dict[str, Any]:
        while True:
            message = self._next()
            if api.is_event(message):
                self.events.append(message)
                continue
            got, result = api.parse_reply(message)
            assert got == req_id, f"answer to request {got} while waiting for {req_id}"
            return result

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.reply(self.send(method, **params))

    def call_fds(self, method: str, **params: Any) -> tuple[dict[str, Any], dict[str, int]]:
        """A call whose answer carries fds: the result and {name: fd} (the caller closes them)."""
        result = self.call(method, **params)
        names = result["fds"]
        assert len(self.fds) >= len(names), f"frame names {names} but {len(self.fds)} fds arrived"
        fds, self.fds = self.fds[:len(names)], self.fds[len(names):]
        return result, dict(zip(names, fds))

    def next_event(self) -> dict[str, Any]:
        if self.events:
            return self.events.pop(0)
        message = self._next()
        assert api.is_event(message), f"expected an event, got {message}"
        return message


class Shim:
    def __init__(self, folder: Path, runtime: Path, runtime_root: Path, launch: str = "",
                 python_flags: tuple[str, ...] = (), shim_args: tuple[str, ...] = ()) -> None:
        self.dir = folder
        self.runtime = runtime
        self.runtime_root = runtime_root
        # python_flags: run the launcher's script under its interpreter with these flags added
        # (the launcher's own #! line holds -IS)
        prefix = [str(SHIM.parent / "python3"), *python_flags, "-IS"] if python_flags else []
        done = SUBREAPER.run(
            [*prefix, str(SHIM), "start", "--id", folder.name, "--state-dir", str(folder), "--runtime", str(runtime),
             "--runtime-root", str(runtime_root), *([f"--runtime-launch={launch}"] if launch else []), *shim_args],
            timeout=30, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert done.returncode == 0, f"dockyard-shim start failed: {done.stderr}"
        self.start_stderr = done.stderr
        self.socket = Path(done.stdout.strip())
        self.pid = int((folder / "shim.pid").read_text())
        self.clients: list[Client] = []

    def client(self) -> Client:
        made = Client(self.socket)
        self.clients.append(made)
        return made

    def close_clients(self) -> None:
        for c in self.clients:
            c.close()

    def alive(self) -> bool:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            # ESRCH: the process was reaped between open and read.
            return False
        return stat.rpartition(")")[2].split()[0] != "Z"

    def wait_gone(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.alive():
            assert time.monotonic() < deadline, f"shim {self.pid} still alive after {timeout}s"
            time.sleep(0.02)

    def runtime_cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return SUBREAPER.run([str(self.runtime), "--root", str(self.runtime_root), *args], timeout=30,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


LAUNCHES = ["fork", "exec"]


@pytest.fixture(params=LAUNCHES)
def launch(request: pytest.FixtureRequest) -> str:
    """How the shim starts the runtime under test: in a fork of itself, or executed."""
    return str(request.param)


@pytest.fixture
def shims(tmp_path: Path, runtime: Path, launch: str) -> Iterator[Callable[..., Shim]]:
    """Start shims (through ``launch``); afterwards each is emptied (containers killed and deleted) and shut down."""
    made: list[Shim] = []

    def make(other_runtime: Path | None = None, python_flags: tuple[str, ...] = (),
             shim_args: tuple[str, ...] = ()) -> Shim:
        if other_runtime is not None and launch == "fork":
            pytest.skip("a peer runtime's binary is always executed: its exec run covers it")
        s = Shim(tmp_path / f"shim{len(made)}", other_runtime or runtime, tmp_path / f"runtime-root{len(made)}",
                 "" if other_runtime is not None else launch, python_flags, shim_args)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close_clients()
        if s.alive():
            c = s.client()
            for info in c.call("list")["containers"]:
                cid = info["container_id"]
                if info["status"] != "stopped":
                    c.call("kill", container_id=cid, signal=9, all=True)
                    c.call("wait", container_id=cid)
                c.call("delete", container_id=cid)
            c.call("shutdown")
            s.close_clients()
            s.wait_gone()
        # A killed shim leaves its containers to the runtime's own state.
        if s.runtime_root.is_dir():
            for cid in os.listdir(s.runtime_root):
                s.runtime_cmd("delete", "--force", cid)


# The same shim behaviour with Debian's runc, whose binary the shim always
# executes (the bundled dockyard-runc runs in a fork of the shim instead).
PEERS = ["under-test", "runc"]


def peer_runtime(peer: str) -> Path | None:
    if peer == "under-test":
        return None
    found = shutil.which(peer)
    if found is None:
        pytest.skip(f"{peer} is not installed (hack/install-deps.sh installs it)")
    return Path(found)


def create(client: Client, b: Bundle, script: str, **params: Any) -> int:
    b.sh(script)
    if params.get("tty"):
        b.config["process"]["terminal"] = True
    b.write_config()
    return int(client.call("create", container_id=b.id, bundle=str(b.path), **params)["pid"])


def run(client: Client, b: Bundle, script: str, **params: Any) -> int:
    pid = create(client, b, script, **params)
    assert client.call("start", container_id=b.id)["pid"] == pid
    return pid


def log_entries(path: Path) -> list[tuple[bytes, bytes, bytes]]:
    out = []
    for raw in path.read_bytes().split(b"\n")[:-1]:
        m = LOG_LINE.match(raw)
        assert m, f"not a CRI log line: {raw[:200]!r}"
        out.append((m.group(2), m.group(3), m.group(4)))
    return out


def pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped between open and read
        return False


def test_output_is_written_in_the_cri_log_format(shims: Callable[[], Shim], bundle: Bundle, tmp_path: Path) -> None:
    """stdout and stderr lines land in log_path as `<RFC3339Nano> <stream> <P|F> <msg>`, long lines split at 16 KiB."""
    shim = shims()
    c = shim.client()
    log = tmp_path / "c.log"
    run(c, bundle, "echo one; echo two >&2; head -c 20000 /dev/zero | tr '\\0' x; echo; printf tail",
        log_path=str(log))
    assert c.call("wait", container_id=bundle.id)["exit_status"] == 0
    entries = log_entries(log)
    stdout = [e for e in entries if e[0] == b"stdout"]
    assert (b"stderr", b"F", b"two") in entries
    assert stdout[0] == (b"stdout", b"F", b"one")
    assert stdout[1] == (b"stdout", b"P", b"x" * 16384)
    assert stdout[2] == (b"stdout", b"F", b"x" * (20000 - 16384))
    # The stream ended without a newline: a partial entry, as containerd
    # writes it, so kubelet reads "tail", not "tail\n".
    assert stdout[3] == (b"stdout", b"P", b"tail")
    assert len(stdout) == 4


def test_exit_code_and_times(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """wait and state report the exit status and created <= started <= exited; the record on disk agrees."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "exit 7")
    waited = c.call("wait", container_id=bundle.id)
    st = c.call("state", container_id=bundle.id)
    assert waited["exit_status"] == st["exit_status"] == 7
    assert st["status"] == "stopped"
    assert 0 < st["created_at"] <= st["started_at"] <= st["exited_at"] == waited["exited_at"]
    record = json.loads((shim.dir / "containers" / f"{bundle.id}.json").read_text())
    assert (record["version"], record["status"], record["exit_status"], record["runtime_deleted"]) == \
        (2, "stopped", 7, True)


def test_create_with_start_runs_at_once(shims: Callable[[], Shim], bundle: Bundle, tmp_path: Path) -> None:
    """create with start=True (`run --detach`, used for pause containers) leaves the container
    running, with created <= started, its output logged and its exit reported as usual; a second
    start is refused."""
    shim = shims()
    c = shim.client()
    log = tmp_path / "c.log"
    pid = create(c, bundle, "echo up; read line; exit 3", start=True, stdin=True, log_path=str(log))
    st = c.call("state", container_id=bundle.id)
    assert st["status"] == "running" and st["pid"] == pid
    assert 0 < st["created_at"] <= st["started_at"]
    with pytest.raises(ShimError, match="start"):
        c.call("start", container_id=bundle.id)
    c.call("close_stdin", container_id=bundle.id)
    assert c.call("wait", container_id=bundle.id)["exit_status"] == 3
    assert (b"stdout", b"F", b"up") in log_entries(log)


# What the shim ignores or handles itself (main.py, reaper.py, and CPython's own SIGPIPE/SIGXFSZ).
SHIM_SIGNALS = sum(1 << (s - 1) for s in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ,
                                          signal.SIGCHLD, signal.SIGTERM))


def _wait_for_comm(pid: int, comm: str, timeout: float = 5.0) -> None:
    """Until ``pid`` has exec'd ``comm`` (its fds and signal state are then
    the process's own, no longer its runtime's)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/comm").read_text().strip() != comm:
        assert time.monotonic() < deadline, f"pid {pid} never became {comm}"
        time.sleep(0.02)


def _signals(pid: int, field: str) -> int:
    """The mask of ``field`` (SigIgn, SigCgt) in /proc/<pid>/status, limited to the shim's signals."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16) & SHIM_SIGNALS
    raise AssertionError(f"/proc/{pid}/status has no {field}")


@pytest.mark.parametrize("peer", PEERS)
def test_container_process_starts_clean(peer: str, shims: Callable[..., Shim], bundle: Bundle) -> None:
    """Whether the shim execs the runtime or (the bundled dockyard-runc) runs it in a fork of
    itself: the container's process holds only its stdio and neither ignores nor handles any
    signal the shim does (SIGINT and SIGHUP, which the shim ignores, included; what runc does
    with other signals is its own); the shim holds no more fds afterwards than before."""
    shim = shims(peer_runtime(peer))
    c = shim.client()
    c.call("ping")
    before = set(os.listdir(f"/proc/{shim.pid}/fd"))
    pid = create(c, bundle, "exec sleep 1000", start=True, stdin=True)
    # `create` above may still be waiting for the shell's exec: ask for the sleep itself
    _wait_for_comm(pid, "sleep")
    assert sorted(os.listdir(f"/proc/{pid}/fd"), key=int) == ["0", "1", "2"]
    assert _signals(pid, "SigIgn") == 0, hex(_signals(pid, "SigIgn"))
    assert _signals(pid, "SigCgt") == 0, hex(_signals(pid, "SigCgt"))
    exec_pid = int(c.call("exec", container_id=bundle.id, exec_id="e1",
                          process={**bundle.config["process"], "args": ["sleep", "1000"]})["pid"])
    # runc reports the exec's pid while its `runc init` still holds its own
    # pipes (fds 6 to 8), before the execve of sleep closes them (CI saw it)
    _wait_for_comm(exec_pid, "sleep")
    assert sorted(os.listdir(f"/proc/{exec_pid}/fd"), key=int) == ["0", "1", "2"]
    assert _signals(exec_pid, "SigIgn") == 0, hex(_signals(exec_pid, "SigIgn"))
    c.call("kill", container_id=bundle.id, signal=9, all=True)
    c.call("wait", container_id=bundle.id)
    c.call("delete", container_id=bundle.id)
    deadline = time.monotonic() + 5  # the exec's pipes close once the shim has read their EOF
    while (extra := set(os.listdir(f"/proc/{shim.pid}/fd")) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not extra, extra


def _fd_targets(pid: int, skip: tuple[str, ...] = ()) -> dict[str, str]:
    out = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        if name not in skip:
            with contextlib.suppress(OSError):
                out[name] = os.readlink(f"/proc/{pid}/fd/{name}")
    return out


@pytest.mark.parametrize("peer", PEERS)
def test_created_init_holds_nothing_of_the_shim(peer: str, shims: Callable[..., Shim], bundle: Bundle) -> None:
    """A created container's init waits for `start` with whatever fds the runtime left it:
    besides its stdio, none may be one of the shim's (its sockets, its log, other containers'
    pipes), or the shim could wait forever for an EOF the init holds back."""
    shim = shims(peer_runtime(peer))
    c = shim.client()
    pid = create(c, bundle, "true")
    # anon inodes (an epoll, say) all read alike; sockets, pipes and files name their object
    theirs = {t for t in _fd_targets(shim.pid).values() if not t.startswith("anon_inode:")}
    ours = _fd_targets(pid, skip=("0", "1", "2"))
    assert not {fd: t for fd, t in ours.items() if t in theirs}, (ours, theirs)
    c.call("kill", container_id=bundle.id, signal=9, all=True)
    c.call("wait", container_id=bundle.id)
    c.call("delete", container_id=bundle.id)


def test_the_launch_strategy_is_the_one_asked_for(launch: str, shims: Callable[[], Shim], bundle: Bundle) -> None:
    """A created container's init is the runtime process that made it, still before its execve:
    in a fork of the shim it carries the shim's command line, executed it carries dockyard-runc's.
    So each run of this module really goes through the strategy it names."""
    shim = shims()
    c = shim.client()
    pid = create(c, bundle, "true")
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    programs = {Path(a.decode()).name for a in argv[:4]}
    assert ("dockyard-shim" if launch == "fork" else "dockyard-runc") in programs, argv
    c.call("kill", container_id=bundle.id, signal=9, all=True)
    c.call("wait", container_id=bundle.id)
    c.call("delete", container_id=bundle.id)


# What the shim's process may not load (runtime/kernel/lean/README.md): one
# shim runs per pod, and its start and its memory are paid by every pod.
SHIM_COSTLY = {"enum", "typing", "json", "re", "socket", "selectors", "asyncio", "subprocess", "dataclasses",
               "ctypes", "logging", "signal", "collections", "functools", "contextlib", "argparse", "threading",
               "inspect", "os", "_collections_abc", "posixpath", "stat"}


def test_the_shims_import_budget(launch: str, shims: Callable[..., Shim], bundle: Bundle) -> None:
    """`start` and the shim it leaves serving, through a container's whole life (run, an exec with
    captured output, attach, stats, kill, wait, delete), load none of the costly standard modules,
    and nothing of the runtime but its leaf: with the fork strategy the runtime's code runs in the
    fork only."""
    shim = shims(python_flags=("-X", "importtime"))
    c = shim.client()
    run(c, bundle, "sleep 1000", stdin=True)
    proc = {**bundle.config["process"], "args": ["echo", "hi"]}
    c.call("exec", container_id=bundle.id, exec_id="e1", process=proc, capture=True)
    assert base64.b64decode(c.call("wait", container_id=bundle.id, exec_id="e1")["stdout"]) == b"hi\n"
    attach = shim.client()
    attach.call("attach", container_id=bundle.id)
    assert "memory" in c.call("stats", container_id=bundle.id)["stats"]
    c.call("kill", container_id=bundle.id, signal=9, all=True)
    c.call("wait", container_id=bundle.id)
    c.call("delete", container_id=bundle.id)
    text = shim.start_stderr + (shim.dir / "shim.log").read_text()  # serve's stderr moves to shim.log
    loaded = {line.rpartition("|")[2].strip() for line in text.splitlines() if line.startswith("import time:")}
    assert "dockyard.shim.service" in loaded  # the probe sees the serving shim's imports at all
    assert not loaded & SHIM_COSTLY, sorted(loaded & SHIM_COSTLY)
    runtime = {m for m in loaded if m.startswith("dockyard.runtime.") and not m.startswith("dockyard.runtime.kernel")}
    assert not runtime, runtime


def test_the_systemd_driver_preloads_the_bus_client_for_the_forks(launch: str, shims: Callable[..., Shim]) -> None:
    """With the systemd driver and the fork launch, the serving shim has imported jeepney's
    blocking client (each fork's create and run would import it again otherwise:
    shim/fork_bundled.py); a shim that executes its runtime has no use for it."""
    shim = shims(python_flags=("-X", "importtime"), shim_args=("--runtime-cgroup-driver", "systemd"))
    assert shim.client().call("ping")["pid"] == shim.pid
    text = shim.start_stderr + (shim.dir / "shim.log").read_text()
    loaded = {line.rpartition("|")[2].strip() for line in text.splitlines() if line.startswith("import time:")}
    assert "dockyard.shim.service" in loaded
    assert ("jeepney.io.blocking" in loaded) == (launch == "fork"), sorted(m for m in loaded if "jeepney" in m)


def test_claim_moves_a_spare_to_its_pods_dir(shims: Callable[..., Shim], bundle: Bundle) -> None:
    """``claim`` (cri/shims.py's spares): refused for a dir that is not the shim's own; after
    the rename, the shim's records and the runtime's log go to the new dir; refused once the
    shim serves containers."""
    shim = shims()
    with pytest.raises(ShimError, match="is not this shim's directory") as info:
        shim.client().call("claim", dir=str(shim.dir.parent))
    assert info.value.code is Code.INVALID_ARGUMENT
    shim.close_clients()
    moved = shim.dir.with_name(shim.dir.name + "-pod")
    shim.dir.rename(moved)
    shim.dir, shim.socket = moved, moved / api.SOCKET_NAME
    c = shim.client()
    c.call("claim", dir=str(moved))
    run(c, bundle, "sleep 1000")
    assert (moved / api.CONTAINERS_DIR / f"{bundle.id}.json").is_file()
    assert (moved / "runtime.log").exists()
    with pytest.raises(ShimError, match="already serves a pod") as info:
        c.call("claim", dir=str(moved))
    assert info.value.code is Code.FAILED_PRECONDITION


def test_kill_delivers_the_signal(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """kill sends the given signal to the init; SIGKILL ends it with status 137."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "trap 'exit 42' USR1; while :; do sleep 0.05; done")
    time.sleep(0.3)  # let sh install its trap
    c.call("kill", container_id=bundle.id, signal=int(signal.SIGUSR1))
    assert c.call("wait", container_id=bundle.id)["exit_status"] == 42
    with pytest.raises(ShimError, match="cannot kill a container in stopped state"):
        c.call("kill", container_id=bundle.id, signal=9)


def test_sigkill_status(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """A container killed by SIGKILL exits with 128 + 9."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "sleep 1000")
    c.call("kill", container_id=bundle.id, signal=9)
    assert c.call("wait", container_id=bundle.id)["exit_status"] == 137


def test_exec_capture(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """exec with capture returns stdout, stderr and the exit code through wait; output is capped at 16 MiB each."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "sleep 1000")
    proc = {"args": ["sh", "-c", "echo out; echo err >&2; exit 3"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}}
    c.call("exec", container_id=bundle.id, exec_id="e1", process=proc, capture=True)
    got = c.call("wait", container_id=bundle.id, exec_id="e1")
    assert (base64.b64decode(got["stdout"]), base64.b64decode(got["stderr"]), got["exit_status"]) == \
        (b"out\n", b"err\n", 3)
    assert c.call("state", container_id=bundle.id, exec_id="e1")["status"] == "stopped"
    with pytest.raises(ShimError) as dup:
        c.call("exec", container_id=bundle.id, exec_id="e1", process=proc)
    assert dup.value.code is Code.ALREADY_EXISTS
    c.call("delete", container_id=bundle.id, exec_id="e1")

    big = dict(proc, args=["sh", "-c", "head -c 17825792 /dev/zero; echo done >&2"])  # 17 MiB
    c.call("exec", container_id=bundle.id, exec_id="big", process=big, capture=True)
    got = c.call("wait", container_id=bundle.id, exec_id="big")
    assert len(base64.b64decode(got["stdout"])) == 16 << 20
    assert got["stdout_dropped"] == 1 << 20
    assert base64.b64decode(got["stderr"]) == b"done\n" and got["exit_status"] == 0
    assert c.call("state", container_id=bundle.id)["status"] == "running"


def test_exec_sync_runs_waits_and_forgets_in_one_request(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """exec_sync answers at the exit with the output and exit code, and the shim has forgotten the
    exec by then; past timeout_ms it SIGKILLs the process and says timed_out."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "sleep 1000")
    proc = {"args": ["sh", "-c", "echo out; echo err >&2; exit 3"], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}}
    got = c.call("exec_sync", container_id=bundle.id, exec_id="s1", process=proc, timeout_ms=30000)
    assert (base64.b64decode(got["stdout"]), base64.b64decode(got["stderr"]), got["exit_status"]) == \
        (b"out\n", b"err\n", 3)
    assert not got["timed_out"] and got["stdout_dropped"] == got["stderr_dropped"] == 0
    assert c.call("state", container_id=bundle.id)["execs"] == []
    with pytest.raises(ShimError) as gone:
        c.call("state", container_id=bundle.id, exec_id="s1")
    assert gone.value.code is Code.NOT_FOUND

    got = c.call("exec_sync", container_id=bundle.id, exec_id="s2", process=dict(proc, args=["sleep", "1000"]),
                 timeout_ms=200)
    assert got["timed_out"] and got["exit_status"] == 137
    assert c.call("state", container_id=bundle.id)["execs"] == []
    assert c.call("state", container_id=bundle.id)["status"] == "running"


def test_exec_sync_of_a_caller_gone_is_still_forgotten(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """A daemon that dies during an exec_sync leaves nothing in the shim: the exec, once it exits,
    is forgotten although no one hears the answer.  Its id is taken while it runs."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "sleep 1000")
    gone = shim.client()
    gone.send("exec_sync", container_id=bundle.id, exec_id="s1", process={**EXEC_PROC, "args": ["sleep", "1000"]})
    deadline = time.monotonic() + 10
    while c.call("state", container_id=bundle.id)["execs"] != ["s1"]:
        assert time.monotonic() < deadline, "the exec never started"
        time.sleep(0.02)
    gone.close()
    with pytest.raises(ShimError) as dup:
        c.call("exec_sync", container_id=bundle.id, exec_id="s1", process={**EXEC_PROC, "args": ["true"]})
    assert dup.value.code is Code.ALREADY_EXISTS
    watcher = shim.client()
    watcher.call("subscribe")
    c.call("kill", container_id=bundle.id, exec_id="s1", signal=9)
    event = watcher.next_event()  # sent once the exec is finished (and forgotten)
    assert (event["exec_id"], event["exit_status"]) == ("s1", 137)
    assert c.call("state", container_id=bundle.id)["execs"] == []


def test_exec_sync_deadline_holds_when_the_caller_is_gone(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """The shim, not the daemon, keeps exec_sync's deadline: a daemon that dies during a probe
    still gets its command killed at timeout_ms, and the exec forgotten."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "sleep 1000")
    watcher = shim.client()
    watcher.call("subscribe")
    gone = shim.client()
    gone.send("exec_sync", container_id=bundle.id, exec_id="s1", process={**EXEC_PROC, "args": ["sleep", "1000"]},
              timeout_ms=300)
    gone.close()
    event = watcher.next_event()  # only the deadline's SIGKILL ends that sleep
    assert (event["exec_id"], event["exit_status"]) == ("s1", 137)
    assert c.call("state", container_id=bundle.id)["execs"] == []


@pytest.mark.parametrize("peer", PEERS)
def test_tty_container(peer: str, shims: Callable[..., Shim], bundle: Bundle, tmp_path: Path) -> None:
    """A tty container's output is logged as stdout without \\r; resize_pty sets the size it sees; stdin reaches it."""
    shim = shims(peer_runtime(peer))
    c = shim.client()
    log = tmp_path / "tty.log"
    run(c, bundle, "tty; read go; stty size; echo got=$go", tty=True, stdin=True, log_path=str(log))
    c.call("resize_pty", container_id=bundle.id, width=123, height=45)
    c.call("write_stdin", container_id=bundle.id, data=base64.b64encode(b"yes\n").decode())
    assert c.call("wait", container_id=bundle.id)["exit_status"] == 0
    messages = [m for stream, _tag, m in log_entries(log) if stream == b"stdout"]
    assert all(stream == b"stdout" for stream, _t, _m in log_entries(log))
    # (the tty echoes what is written to it, which may come out before `tty` prints)
    assert any(m.startswith(b"/dev/pts/") for m in messages), messages
    assert b"45 123" in messages and b"got=yes" in messages
    assert not any(b"\r" in m for m in messages)


def test_close_stdin_ends_cat(shims: Callable[[], Shim], bundle: Bundle, tmp_path: Path) -> None:
    """close_stdin gives the container EOF on stdin: `cat` prints what it got and exits 0."""
    shim = shims()
    c = shim.client()
    log = tmp_path / "cat.log"
    run(c, bundle, "cat", stdin=True, log_path=str(log))
    c.call("write_stdin", container_id=bundle.id, data=base64.b64encode(b"abc\n").decode())
    c.call("close_stdin", container_id=bundle.id)
    assert c.call("wait", container_id=bundle.id)["exit_status"] == 0
    assert log_entries(log) == [(b"stdout", b"F", b"abc")]


def test_shim_outlives_its_parent_and_clients(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """The shim is detached (its starter exited); an exit while no client is connected is seen by the next client."""
    shim = shims()
    stat = Path(f"/proc/{shim.pid}/stat").read_text().rpartition(")")[2].split()
    assert int(stat[1]) == os.getpid(), "the shim should be re-parented to the subreaper (pytest)"
    assert os.getsid(shim.pid) != os.getsid(0), "the shim should have its own session"
    first = shim.client()
    run(first, bundle, "sleep 0.3; exit 5")
    first.close()
    time.sleep(1.0)
    second = shim.client()
    st = second.call("state", container_id=bundle.id)
    assert (st["status"], st["exit_status"]) == ("stopped", 5)
    assert second.call("wait", container_id=bundle.id)["exit_status"] == 5


def test_subscribers_get_exit_events(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """A subscribed connection receives an exit event with pid, status and time."""
    shim = shims()
    c = shim.client()
    c.call("subscribe")
    pid = run(c, bundle, "exit 9")
    event = c.next_event()
    assert event["event"] == "exit"
    assert (event["container_id"], event["exec_id"], event["pid"], event["exit_status"]) == (bundle.id, "", pid, 9)
    assert event["exited_at"] == c.call("state", container_id=bundle.id)["exited_at"]


def test_wait_does_not_block_other_requests(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """A pending wait is answered after later requests on the same connection."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "sleep 1000")
    waiting = c.send("wait", container_id=bundle.id)
    assert c.call("ping")["pid"] == shim.pid
    c.call("kill", container_id=bundle.id, signal=9)
    assert c.reply(waiting)["exit_status"] == 137


def test_state_errors(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """Unknown ids are NotFound, duplicates AlreadyExists, illegal calls name the state; shutdown waits for running containers."""
    shim = shims()
    c = shim.client()
    with pytest.raises(ShimError) as missing:
        c.call("start", container_id="nope")
    assert missing.value.code is Code.NOT_FOUND
    create(c, bundle, "sleep 1000")
    with pytest.raises(ShimError) as dup:
        c.call("create", container_id=bundle.id, bundle=str(bundle.path))
    assert dup.value.code is Code.ALREADY_EXISTS
    c.call("start", container_id=bundle.id)
    with pytest.raises(ShimError, match="cannot start a container in running state"):
        c.call("start", container_id=bundle.id)
    with pytest.raises(ShimError, match="cannot delete a container in running state"):
        c.call("delete", container_id=bundle.id)
    with pytest.raises(ShimError) as busy:
        c.call("shutdown")
    assert busy.value.code is Code.FAILED_PRECONDITION and bundle.id in busy.value.message


def test_delete_leaves_nothing_and_shutdown_exits(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """After delete no process, cgroup, runtime state or record is left; shutdown ends the shim and removes its files."""
    shim = shims()
    c = shim.client()
    pid = run(c, bundle, "sleep 1000")
    cgroup = bundle.host_cgroup("pids")
    assert cgroup.is_dir()
    c.call("kill", container_id=bundle.id, signal=9)
    c.call("wait", container_id=bundle.id)
    assert c.call("delete", container_id=bundle.id)["exit_status"] == 137
    assert not pid_alive(pid)
    assert not cgroup.exists()
    assert shim.runtime_cmd("state", bundle.id).returncode != 0
    assert not (shim.dir / "containers" / f"{bundle.id}.json").exists()
    with pytest.raises(ShimError) as gone:
        c.call("delete", container_id=bundle.id)
    assert gone.value.code is Code.NOT_FOUND
    assert c.call("shutdown") == {}
    shim.wait_gone()
    assert not shim.dir.exists()


def test_delete_of_a_created_container(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """A created (never started) container can be deleted: its waiting init is killed and reaped."""
    shim = shims()
    c = shim.client()
    pid = create(c, bundle, "echo never")
    c.call("delete", container_id=bundle.id)
    assert not pid_alive(pid)
    assert c.call("list") == {"containers": []}


def test_two_containers_and_stats(shims: Callable[[], Shim], new_bundle: Callable[..., Bundle]) -> None:
    """One shim holds several containers; stats come from the runtime's `events --stats`; update goes through."""
    shim = shims()
    c = shim.client()
    a, b = new_bundle(), new_bundle()
    run(c, a, "sleep 1000")
    run(c, b, "sleep 1000")
    assert sorted(x["container_id"] for x in c.call("list")["containers"]) == sorted([a.id, b.id])
    stats = c.call("stats", container_id=a.id)["stats"]
    assert stats["pids"]["current"] >= 1
    c.call("update", container_id=a.id, resources={"pids": {"limit": 50}})
    assert (a.host_cgroup("pids") / "pids.max").read_text().strip() == "50"


def test_kill_9_of_the_shim(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """A SIGKILLed shim leaves its containers running (re-parented to the subreaper); the daemon detects it
    by the refused socket and the dead pid, reads the last records, and cleans up through the runtime."""
    shim = shims()
    c = shim.client()
    pid = run(c, bundle, "sleep 1000")
    c.close()
    os.kill(shim.pid, signal.SIGKILL)
    shim.wait_gone()
    assert pid_alive(pid), "the container should keep running without its shim"
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    assert ppid == os.getpid()
    with pytest.raises(ConnectionRefusedError):
        shim.client()
    from dockyard.shim import state

    assert state.read_pid(str(shim.dir)) == shim.pid
    records = state.load_all(str(shim.dir))
    assert [(r["container_id"], r["status"], r["pid"]) for r in records] == [(bundle.id, "running", pid)]
    assert shim.runtime_cmd("delete", "--force", bundle.id).returncode == 0
    deadline = time.monotonic() + 5
    while pid_alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_shared_pid_namespace_leftovers_are_killed(shims: Callable[[], Shim], new_bundle: Callable[..., Bundle]) -> None:
    """In a shared pid namespace, when a container's init exits its leftover processes are killed,
    so the exit is reported at once instead of after the stdio grace period."""
    shim = shims()
    c = shim.client()
    pod, ctr = new_bundle(), new_bundle()
    pod_pid = run(c, pod, "sleep 1000")
    ctr.config["linux"]["namespaces"] = [
        ns for ns in ctr.config["linux"]["namespaces"] if ns["type"] != "pid"
    ] + [{"type": "pid", "path": f"/proc/{pod_pid}/ns/pid"}]
    # the background sleep keeps stdout open after the shell exits
    started = time.monotonic()
    run(c, ctr, "sleep 1000 & exit 3")
    assert c.call("wait", container_id=ctr.id)["exit_status"] == 3
    assert time.monotonic() - started < 1.5
    # Deleted from the runtime before the exit was reported: the leftovers are dead, their cgroup gone.
    assert ctr.cgroup_dirs() == []
    assert pod.cgroup_dirs()


def record_of(shim: Shim, b: Bundle) -> dict[str, Any]:
    return dict(json.loads((shim.dir / "containers" / f"{b.id}.json").read_text()))


@pytest.mark.parametrize("peer", PEERS)
def test_an_exited_container_is_deleted_from_the_runtime(peer: str, shims: Callable[..., Shim], bundle: Bundle) -> None:
    """As containerd's CRI deletes a task when it exits, the shim deletes a container from the
    runtime when its init exits, before it reports the exit: when the exit event arrives its cgroup
    (in every hierarchy) and the runtime's state are gone and its record says so.  The shim still
    answers for it (state, wait); kill --all has nothing left to reach, stats are refused, and
    delete only forgets it."""
    shim = shims(peer_runtime(peer))
    c = shim.client()
    c.call("subscribe")
    pid = create(c, bundle, "exit 7")
    assert bundle.cgroup_dirs()
    c.call("start", container_id=bundle.id)
    event = c.next_event()
    assert (event["event"], event["pid"], event["exit_status"]) == ("exit", pid, 7)
    assert bundle.cgroup_dirs() == []
    assert shim.runtime_cmd("state", bundle.id).returncode != 0
    assert not (shim.runtime_root / bundle.id).exists()
    record = record_of(shim, bundle)
    assert (record["status"], record["exit_status"], record["runtime_deleted"]) == ("stopped", 7, True)
    st = c.call("state", container_id=bundle.id)
    assert (st["status"], st["exit_status"]) == ("stopped", 7)
    assert c.call("wait", container_id=bundle.id)["exit_status"] == 7
    assert c.call("kill", container_id=bundle.id, signal=9, all=True) == {}
    with pytest.raises(ShimError) as no_stats:
        c.call("stats", container_id=bundle.id)
    assert no_stats.value.code is Code.FAILED_PRECONDITION
    assert c.call("delete", container_id=bundle.id)["exit_status"] == 7
    assert not (shim.dir / "containers" / f"{bundle.id}.json").exists()
    assert c.call("list") == {"containers": []}


@pytest.mark.parametrize("peer", PEERS)
def test_an_oom_kill_is_read_before_the_cgroup_goes(peer: str, shims: Callable[..., Shim], bundle: Bundle) -> None:
    """The OOM killer's count is read from the container's cgroup (v1 memory.oom_control here) before
    the shim deletes the container from the runtime: the oom event comes before the exit, wait and
    the record say oom_killed, and the cgroup is gone when the exit is reported."""
    shim = shims(peer_runtime(peer))
    c = shim.client()
    c.call("subscribe")
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 << 20, "swap": 32 << 20}
    # tail keeps every byte of its input while it looks for a newline; /dev/zero has none.
    run(c, bundle, "exec tail /dev/zero")
    assert c.next_event() == {"event": "oom", "container_id": bundle.id}
    event = c.next_event()
    assert (event["event"], event["exit_status"]) == ("exit", 137)
    assert bundle.cgroup_dirs() == []
    waited = c.call("wait", container_id=bundle.id)
    assert (waited["exit_status"], waited["oom_killed"]) == (137, True)
    assert (record_of(shim, bundle)["oom_killed"], record_of(shim, bundle)["runtime_deleted"]) == (True, True)


def test_an_exec_outliving_the_init_dies_with_it(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """An exec still running when the init of its (private) pid namespace dies is killed by the
    kernel; the runtime's delete at the exit waits for it to leave the cgroup, so the cgroup is gone
    when the exit is reported, and the exec's own exit is reported too."""
    shim = shims()
    c = shim.client()
    init = run(c, bundle, "sleep 1000")
    c.call("exec", container_id=bundle.id, exec_id="e1", process={**EXEC_PROC, "args": ["sleep", "1000"]})
    exec_waiter = shim.client()  # its answer may come before or after the init's
    waiting = exec_waiter.send("wait", container_id=bundle.id, exec_id="e1")
    os.kill(init, signal.SIGKILL)
    assert c.call("wait", container_id=bundle.id)["exit_status"] == 137
    assert bundle.cgroup_dirs() == []
    assert exec_waiter.reply(waiting)["exit_status"] == 137
    assert c.call("delete", container_id=bundle.id)["exit_status"] == 137


def test_a_failed_delete_at_the_exit_is_retried_at_delete(shims: Callable[[], Shim], bundle: Bundle,
                                                          tmp_path: Path) -> None:
    """When the runtime cannot delete an exited container (here a host process sits in one of its
    cgroups, beyond the reach of its pid namespace, so rmdir stays EBUSY), the shim logs it and
    reports the exit all the same, the record says it is not deleted; the daemon's delete tries
    again, fails with the runtime's error while the cause lasts, and succeeds once it is gone."""
    shim = shims()
    c = shim.client()
    c.call("subscribe")
    create(c, bundle, "exit 4")
    ready, release = tmp_path / "ready", tmp_path / "release"
    os.mkfifo(ready)
    os.mkfifo(release)
    held = bundle.cgroup_dirs()[0]  # a v1 hierarchy's here, the only one in the (cgroup2) guest
    script = f"echo $$ > {held / 'cgroup.procs'}; echo $? > {ready}; read x < {release}"
    intruder = threading.Thread(target=lambda: SUBREAPER.run(["sh", "-c", script], timeout=120))
    intruder.start()
    try:
        assert ready.read_text() == "0\n"  # it is in the container's cgroup
        c.call("start", container_id=bundle.id)
        event = c.next_event()
        assert (event["event"], event["exit_status"]) == ("exit", 4)
        assert record_of(shim, bundle)["runtime_deleted"] is False
        assert f"delete of {bundle.id} from the runtime after its exit failed" in (shim.dir / "shim.log").read_text()
        assert held.is_dir()
        with pytest.raises(ShimError) as busy:
            c.call("delete", container_id=bundle.id)
        assert busy.value.code is Code.INTERNAL and "rmdir" in busy.value.message, busy.value.message
        assert c.call("state", container_id=bundle.id)["status"] == "stopped"
    finally:
        release.write_text("go\n")
        intruder.join(60)
    assert c.call("delete", container_id=bundle.id)["exit_status"] == 4
    assert bundle.cgroup_dirs() == []
    assert shim.runtime_cmd("state", bundle.id).returncode != 0


# --- streaming exec (io=fds) and attach ---------------------------------------------

EXEC_PROC = {"cwd": "/", "env": ["PATH=/bin", "TERM=xterm"], "user": {"uid": 0, "gid": 0}}


def shim_holds(shim: Shim, fd: int, grace: float = 2.0) -> bool:
    """Whether the shim still has an fd open on the same file (pipe or pty) as our ``fd`` after
    ``grace`` (the shim closes its copy just after sendmsg returned, which may be after we read)."""
    deadline = time.monotonic() + grace
    while _shim_has(shim, fd):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.02)
    return False


def _shim_has(shim: Shim, fd: int) -> bool:
    st = os.fstat(fd)
    for name in os.listdir(f"/proc/{shim.pid}/fd"):
        try:
            other = os.stat(f"/proc/{shim.pid}/fd/{name}")
        except FileNotFoundError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def read_all(fd: int, timeout: float = 30.0) -> bytes:
    """Everything until EOF (or EIO, a pty whose last slave closed)."""
    out = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no EOF after {timeout}s; got {bytes(out[-200:])!r}"
        if not select.select([fd], [], [], left)[0]:
            continue
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            return bytes(out)
        if not chunk:
            return bytes(out)
        out += chunk


def test_exec_fds_pipes_round_trip_binary(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """exec io=fds hands over stdin/stdout/stderr ends and keeps none: 1 MiB of binary data
    goes through `cat` byte for byte, stderr is separate, wait gives the exit code."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "sleep 1000")
    proc = dict(EXEC_PROC, args=["sh", "-c", "cat; echo E >&2; exit 7"])
    result, fds = c.call_fds("exec", container_id=bundle.id, exec_id="s1", process=proc, stdin=True, io="fds")
    try:
        assert sorted(fds) == ["stderr", "stdin", "stdout"] and result["pid"] > 0
        for fd in fds.values():
            assert not shim_holds(shim, fd), "the shim kept a copy of a handed-over fd"
        data = os.urandom(1 << 20)
        stdin = fds.pop("stdin")
        writer = threading.Thread(target=lambda: (_write_all(stdin, data), os.close(stdin)))
        writer.start()
        got = read_all(fds["stdout"])
        writer.join(30)
        assert got == data
        assert read_all(fds["stderr"]) == b"E\n"
    finally:
        for fd in fds.values():
            os.close(fd)
    assert c.call("wait", container_id=bundle.id, exec_id="s1")["exit_status"] == 7
    c.call("delete", container_id=bundle.id, exec_id="s1")

    # Streams not asked for go to /dev/null for the process and are not handed over.
    quiet = dict(EXEC_PROC, args=["sh", "-c", "echo gone; echo kept >&2"])
    _, fds = c.call_fds("exec", container_id=bundle.id, exec_id="s2", process=quiet, stdout=False, io="fds")
    assert list(fds) == ["stderr"]
    assert read_all(fds["stderr"]) == b"kept\n"
    os.close(fds["stderr"])
    assert c.call("wait", container_id=bundle.id, exec_id="s2")["exit_status"] == 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def test_exec_fds_tty(shims: Callable[[], Shim], bundle: Bundle) -> None:
    """exec io=fds with a tty hands over the pty master alone: the caller's TIOCSWINSZ is the size
    the process sees, input echoes, the exit code comes through wait; resize_pty is refused.
    The exec id is as long as those critest makes (a socket address named after it would not fit)."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "sleep 1000")
    t1 = "t1-" + "e" * 90
    _, fds = c.call_fds("exec", container_id=bundle.id, exec_id=t1, process=dict(EXEC_PROC, args=["sh"]),
                        tty=True, stdin=True, io="fds")
    assert list(fds) == ["pty"]
    master = fds["pty"]
    try:
        assert not shim_holds(shim, master)
        assert os.isatty(master)
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 41, 121, 0, 0))
        with pytest.raises(ShimError) as no_pty:
            c.call("resize_pty", container_id=bundle.id, exec_id=t1, width=10, height=10)
        assert no_pty.value.code is Code.FAILED_PRECONDITION
        os.write(master, b"echo MARK$((40+2)); stty size; exit 5\n")
        out = read_all(master)
    finally:
        os.close(master)
    assert b"MARK42" in out and b"41 121" in out
    assert c.call("wait", container_id=bundle.id, exec_id=t1)["exit_status"] == 5


def attach_events(client: Client, until_exit: bool = True, timeout: float = 30.0) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Output by stream and the exit event of an attach connection."""
    out: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    client.sock.settimeout(timeout)
    while True:
        ev = client.next_event()
        if ev["event"] == "output":
            out[ev["stream"]] += base64.b64decode(ev["data"])
        elif ev["event"] == "exit":
            return out, ev


def test_two_attaches_and_the_log(shims: Callable[[], Shim], bundle: Bundle, tmp_path: Path) -> None:
    """Two attaches at once each get the output they asked for and the exit; the CRI log is still written."""
    shim = shims()
    c = shim.client()
    log = tmp_path / "a.log"
    run(c, bundle, "read go; for i in 1 2 3; do echo out$i; echo err$i >&2; done; exit 4", stdin=True,
        log_path=str(log))
    both, only_out = shim.client(), shim.client()
    assert both.call("attach", container_id=bundle.id, stdin=True)["tty"] is False
    only_out.call("attach", container_id=bundle.id, stderr=False)
    c.call("write_stdin", container_id=bundle.id, data=base64.b64encode(b"go\n").decode())
    out1, exit1 = attach_events(both)
    out2, exit2 = attach_events(only_out)
    assert out1 == {"stdout": b"out1\nout2\nout3\n", "stderr": b"err1\nerr2\nerr3\n"}
    assert out2 == {"stdout": b"out1\nout2\nout3\n", "stderr": b""}
    assert exit1["exit_status"] == exit2["exit_status"] == 4 and exit1["output_dropped"] == 0
    lines = [(s, m) for s, _t, m in log_entries(log)]
    assert [m for s, m in lines if s == b"stdout"] == [b"out1", b"out2", b"out3"]
    assert [m for s, m in lines if s == b"stderr"] == [b"err1", b"err2", b"err3"]
    # Attaching to a stopped container ends at once with its exit.
    late = shim.client()
    late.call("attach", container_id=bundle.id)
    assert attach_events(late)[1]["exit_status"] == 4


def test_a_stuck_attach_blocks_nothing(shims: Callable[[], Shim], bundle: Bundle, tmp_path: Path) -> None:
    """An attach client that never reads does not hold back the container or its log:
    output past the bound is dropped for that client only, and counted in its exit event."""
    shim = shims()
    c = shim.client()
    log = tmp_path / "big.log"
    create(c, bundle, "head -c 8388608 /dev/zero | tr '\\0' x; echo; echo end", log_path=str(log))
    stuck = shim.client()
    stuck.call("attach", container_id=bundle.id)
    c.call("start", container_id=bundle.id)
    started = time.monotonic()
    assert c.call("wait", container_id=bundle.id)["exit_status"] == 0
    assert time.monotonic() - started < 20
    logged = sum(len(m) for s, _t, m in log_entries(log) if s == b"stdout")
    assert logged == 8388608 + len(b"end")
    out, ev = attach_events(stuck)
    assert ev["output_dropped"] > 0
    assert len(out["stdout"]) + ev["output_dropped"] == 8388608 + len(b"\nend\n")


@pytest.mark.parametrize("stdin_once", [True, False])
def test_stdin_once(shims: Callable[[], Shim], bundle: Bundle, stdin_once: bool) -> None:
    """With stdin_once the container's stdin closes when the first attach that used stdin detaches
    (cat sees EOF and exits); without it, stdin stays open for the next attach."""
    shim = shims()
    c = shim.client()
    run(c, bundle, "cat; echo cat-done", stdin=True, stdin_once=stdin_once)
    watcher = shim.client()
    watcher.call("attach", container_id=bundle.id, stdin=False)
    user = shim.client()
    user.call("attach", container_id=bundle.id, stdin=True)
    user.call("write_stdin", container_id=bundle.id, data=base64.b64encode(b"hello\n").decode())
    ev = watcher.next_event()
    assert (ev["event"], base64.b64decode(ev["data"])) == ("output", b"hello\n")
    user.close()
    if stdin_once:
        out, exited = attach_events(watcher)
        assert out["stdout"] == b"cat-done\n" and exited["exit_status"] == 0
        return
    time.sleep(0.5)
    assert c.call("state", container_id=bundle.id)["status"] == "running"
    c.call("write_stdin", container_id=bundle.id, data=base64.b64encode(b"again\n").decode())
    ev = watcher.next_event()
    assert base64.b64decode(ev["data"]) == b"again\n"

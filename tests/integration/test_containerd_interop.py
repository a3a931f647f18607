"""containerd drives the runtime under test exactly as it drives runc.

A private containerd (Debian's 1.6) runs from a config in a temp dir: its own
root, state, sockets and opt dir, the CRI plugin disabled. Each `ctr run`
passes `--runc-binary`, which sets BinaryName in the runc v2 shim's options,
so the shim calls the runtime under test for create/start/exec/kill/delete.

The runtime is $DOCKYARD_TEST_RUNTIME, by default this checkout's
.venv/bin/dockyard-runc; set it to /usr/sbin/runc to check the test itself.

Facts about containerd 1.6 that the cleanup depends on:
- The shim's runtime root (`--runc-root`) and the IO fifos (`--fifo-dir`)
  default to /run/containerd/...; both are pointed into the temp dir.
- The shim's own socket always lives in /run/containerd/s/<hash>, whatever the
  config says; the shim removes it when it exits, but the directories stay.
- ctr's default cgroupsPath is /<namespace>/<id>. The runtime removes the
  <id> leaf on delete; the <namespace> parent is ours to remove, and an rmdir
  that fails with ENOTEMPTY means the runtime leaked the container's cgroup.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bundle import SUBREAPER
from procfs import each_process

REPO = Path(__file__).resolve().parents[2]
IMAGE_ARCHIVE = REPO / "build" / "busybox-oci.tar"
IMAGE_REF = "docker.io/library/busybox:latest"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTAINERD_RUN_DIR = Path("/run/containerd")
START_TIMEOUT_S = 20.0
CTR_TIMEOUT_S = 60.0

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="containerd and the runtime need root"),
    pytest.mark.skipif(shutil.which("containerd") is None, reason="containerd is not installed (make deps)"),
]


def runtime_under_test() -> str:
    return os.environ.get("DOCKYARD_TEST_RUNTIME", str(REPO / ".venv" / "bin" / "dockyard-runc"))


@dataclass(frozen=True, slots=True)
class Containerd:
    """A running private containerd and the flags every `ctr` call needs."""

    tmp: Path
    socket: Path
    namespace: str
    runtime: str

    def ctr(self, *args: str, timeout: float = CTR_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        # SUBREAPER.run, not subprocess.run: the conftest's reaper thread
        # would otherwise reap ctr first and subprocess would read exit 0.
        return SUBREAPER.run(
            ["ctr", "-a", str(self.socket), "-n", self.namespace, *args],
            timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )

    def run_flags(self) -> list[str]:
        return ["--runc-binary", self.runtime, "--runc-root", str(self.tmp / "runc"),
                "--fifo-dir", str(self.tmp / "fifo")]


def _config_toml(tmp: Path, socket: Path) -> str:
    disabled = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                "io.containerd.snapshotter.v1.aufs"]
    return "\n".join([
        "version = 2",
        f'root = "{tmp / "root"}"',
        f'state = "{tmp / "state"}"',
        "disabled_plugins = [" + ", ".join(f'"{p}"' for p in disabled) + "]",
        "[grpc]",
        f'  address = "{socket}"',
        "[ttrpc]",
        f'  address = "{socket}.ttrpc"',
        '[plugins."io.containerd.internal.v1.opt"]',
        f'  path = "{tmp / "opt"}"',
        "",
    ])


def _wait_for_socket(proc: subprocess.Popen[bytes], socket: Path, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"containerd exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        if socket.is_socket():
            return
        time.sleep(0.05)
    raise AssertionError(f"containerd socket {socket} not up after {START_TIMEOUT_S}s")


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains `text` (containerd, shims, inits)."""
    return [pid for pid, cmdline in each_process("cmdline") if text.encode() in cmdline]


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def _remove_namespace_cgroups(namespace: str) -> list[str]:
    """rmdir /sys/fs/cgroup/*/<namespace>; returns the ones that were not empty."""
    leaked = []
    for hierarchy in sorted(CGROUP_ROOT.iterdir()):
        group = hierarchy / namespace
        if not group.is_dir():
            continue
        try:
            group.rmdir()
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EBUSY):
                raise
            leaked.append(f"{group}: {sorted(p.name for p in group.iterdir() if p.is_dir())}")
    return leaked


def _reap_exited_shims() -> None:
    """waitpid the exited shims that were re-parented to this process.

    `containerd-shim-runc-v2 start` daemonizes the real shim and exits, so
    when pytest is a child subreaper (the integration conftest makes it one)
    the shims become its children and stay zombies after they exit. Only our
    own zombie children whose comm is the shim's are reaped; comm survives in
    /proc/<pid>/stat after exit, cmdline does not.
    """
    me = os.getpid()
    for pid, raw in each_process("stat"):
        stat = raw.decode(errors="replace")
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if state == "Z" and int(ppid) == me and comm.startswith("containerd-shim"):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue  # the conftest's reaper thread got it first


def _remove_run_containerd_if_ours(existed_before: bool) -> None:
    # Only when this test created /run/containerd; a real containerd on the
    # host keeps its own. rmdir, never rm -r: a non-empty dir is not ours.
    if existed_before:
        return
    for d in (CONTAINERD_RUN_DIR / "s", CONTAINERD_RUN_DIR):
        try:
            d.rmdir()
        except FileNotFoundError:
            continue
        except OSError as err:
            # Left for the shim-socket assertion to report.
            if err.errno != errno.ENOTEMPTY:
                raise
            return


@pytest.fixture
def containerd() -> Iterator[Containerd]:
    built = SUBREAPER.run([str(REPO / "hack" / "build-images.sh")], timeout=300)
    assert built.returncode == 0, "hack/build-images.sh failed"
    runtime = runtime_under_test()
    assert os.access(runtime, os.X_OK), f"runtime under test {runtime} is not executable"

    tmp = Path(tempfile.mkdtemp(prefix="dockyard-ctrd-"))
    socket = tmp / "containerd.sock"
    namespace = f"dockyard-ctr-{uuid.uuid4().hex[:8]}"
    run_dir_existed = CONTAINERD_RUN_DIR.exists()
    shim_sockets_before = set(os.listdir(CONTAINERD_RUN_DIR / "s")) if (CONTAINERD_RUN_DIR / "s").is_dir() else set()
    (tmp / "config.toml").write_text(_config_toml(tmp, socket))
    log = tmp / "containerd.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            ["containerd", "--config", str(tmp / "config.toml"), "--log-level", "info"],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        _wait_for_socket(proc, socket, log)
        daemon = Containerd(tmp=tmp, socket=socket, namespace=namespace, runtime=runtime)
        imported = daemon.ctr("images", "import", str(IMAGE_ARCHIVE))
        assert imported.returncode == 0, imported.stderr
        yield daemon
        # Anything a test left running is killed and removed before the
        # daemon stops, so the shims exit and unmount the rootfs.
        for task_line in daemon.ctr("tasks", "ls", "-q").stdout.split():
            daemon.ctr("tasks", "kill", "-s", "SIGKILL", task_line)
            daemon.ctr("tasks", "rm", "-f", task_line)
        for container in daemon.ctr("containers", "ls", "-q").stdout.split():
            daemon.ctr("containers", "rm", container)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        _reap_exited_shims()
        leftovers = _pids_mentioning(str(tmp))
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        mounts = _mounts_under(tmp)
        for point in reversed(mounts):
            SUBREAPER.run(["umount", "-l", point], timeout=CTR_TIMEOUT_S)
        leaked_cgroups = _remove_namespace_cgroups(namespace)
        shim_sockets_after = set(os.listdir(CONTAINERD_RUN_DIR / "s")) if (CONTAINERD_RUN_DIR / "s").is_dir() else set()
        _remove_run_containerd_if_ours(run_dir_existed)
        log_tail = log.read_text()[-3000:]
        shutil.rmtree(tmp)
    assert not leftovers, f"processes left behind: {leftovers}\n{log_tail}"
    assert not mounts, f"mounts left under {tmp}: {mounts}"
    assert not leaked_cgroups, f"cgroups left behind: {leaked_cgroups}"
    assert shim_sockets_after <= shim_sockets_before, "shim sockets left in /run/containerd/s"


def test_ctr_run_reports_output_and_exit_code(containerd: Containerd) -> None:
    """`ctr run --rm` through the runtime shows the container's stdout and returns its exit code."""
    result = containerd.ctr("run", "--rm", *containerd.run_flags(), IMAGE_REF,
                            f"run-{uuid.uuid4().hex[:8]}", "sh", "-c", "echo hi; exit 3")
    assert result.stdout == "hi\n", result.stderr
    assert result.returncode == 3, result.stderr


def test_ctr_exec_into_running_container(containerd: Containerd) -> None:
    """A detached container keeps running; `ctr task exec` runs in it and returns output and status; kill and rm end it."""
    cid = f"exec-{uuid.uuid4().hex[:8]}"
    started = containerd.ctr("run", "-d", *containerd.run_flags(), IMAGE_REF, cid, "sleep", "300")
    assert started.returncode == 0, started.stderr

    tasks = containerd.ctr("tasks", "ls")
    assert any(line.split()[:1] == [cid] and "RUNNING" in line for line in tasks.stdout.splitlines()), tasks.stdout

    # The shim really used the runtime under test: its own `state` reads the
    # container from the --runc-root the shim was given (another runtime's
    # state format would not parse).
    state = SUBREAPER.run(
        [containerd.runtime, "--root", str(containerd.tmp / "runc" / containerd.namespace), "state", cid],
        timeout=CTR_TIMEOUT_S, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["status"] == "running", state.stdout

    exec_ok = containerd.ctr("tasks", "exec", "--exec-id", "e1", "--fifo-dir", str(containerd.tmp / "fifo"),
                             cid, "sh", "-c", "echo exec-ok; exit 5")
    assert exec_ok.stdout == "exec-ok\n", exec_ok.stderr
    assert exec_ok.returncode == 5, exec_ok.stderr

    killed = containerd.ctr("tasks", "kill", "-s", "SIGKILL", cid)
    assert killed.returncode == 0, killed.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = containerd.ctr("tasks", "ls")
        if any(line.split()[:1] == [cid] and "STOPPED" in line for line in state.stdout.splitlines()):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"task {cid} not STOPPED 10s after SIGKILL:\n{state.stdout}")

    removed = containerd.ctr("tasks", "rm", cid)
    assert removed.returncode == 0, removed.stderr
    assert containerd.ctr("containers", "rm", cid).returncode == 0
    assert cid not in containerd.ctr("containers", "ls", "-q").stdout.split()
    assert not (containerd.tmp / "runc" / containerd.namespace / cid).exists(), "runtime state dir left after delete"

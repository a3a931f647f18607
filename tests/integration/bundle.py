"""OCI bundles for the integration tests, and the runtime command that runs them.

Every test gets a fresh bundle directory whose config.json is generated here
from a base dict shaped like `runc spec` output, then edited by the test. The
rootfs is shared and mounted read-only unless the test asks for a private,
writable copy (busybox is ~2 MB, so copying costs a few milliseconds).

The runtime under test is a parameter: DOCKYARD_TEST_RUNTIME names its binary,
defaulting to the project's dockyard-runc. Point it at Debian's runc to check
that a test states runc's (and the spec's) behaviour, not ours.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import os
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILT_ROOTFS = REPO / "build" / "bundles" / "busybox" / "rootfs"
DEFAULT_RUNTIME = REPO / ".venv" / "bin" / "dockyard-runc"
HOST_BUSYBOX = Path("/bin/busybox")

# Container processes carry this variable so a leak check can find them even
# if they escaped their cgroup; runtime invocations carry it for the same reason.
TEST_ID_ENV = "DOCKYARD_TEST_ID"
# Every test container's cgroup lives below this parent in every hierarchy.
CGROUP_PARENT = "dockyard-test"

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "user:x:1000:1000:test user:/home/user:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nusers:x:100:user\nuser:x:1000:\nextra:x:1001:user\nnogroup:x:65534:\n"


class Subreaper:
    """pytest in the role of containerd's shim: it adopts and reaps orphaned container processes.

    Why: when a runtime's `create` or `exec --detach` returns, the container's
    processes are orphaned. A shim (a child subreaper) adopts them and reaps
    them at once; runtimes rely on that. For example, the init of a pid
    namespace cannot finish dying while a zombie of that namespace is
    unreaped, so `delete --force` would wait for it forever.

    Reaping must never steal the exit status of a child that subprocess is
    waiting for, so every direct child is started through `run()`, which
    registers its pid under the same lock the reaper holds while it reaps.
    """

    def __init__(self, children: Callable[[int], list[int]] | None = None) -> None:
        self._children = children or _children  # a test gives its own
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures: list[str] = []

    def start(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="subreaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.reap_adopted()

    def run(
        self, argv: list[str], *, timeout: float, **popen_args: Any
    ) -> subprocess.CompletedProcess[str]:
        """subprocess.run, but safe from the reaper."""
        input_text = popen_args.pop("input", None)
        if input_text is not None:
            popen_args["stdin"] = subprocess.PIPE
        with self._lock:
            proc = subprocess.Popen(argv, **popen_args)
            self._owned.add(proc.pid)
        try:
            try:
                stdout, stderr = proc.communicate(input_text, timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
        finally:
            with self._lock:
                self._owned.discard(proc.pid)

    def reap_adopted(self) -> list[int]:
        """Reap every zombie child that `run()` did not start; return their pids."""
        reaped = []
        with self._lock:
            for pid in self._children(os.getpid()):
                if pid in self._owned or not _is_zombie(pid):
                    continue
                try:
                    os.waitpid(pid, os.WNOHANG)
                    reaped.append(pid)
                except ChildProcessError:
                    pass
        return reaped

    def _loop(self) -> None:
        # The thread must outlive any one failed round: once it stops, orphaned
        # container processes stay zombies, and the init of their pid namespace
        # cannot finish dying (the kernel waits for them to be reaped), which
        # made later tests time out waiting for killed processes.  A failure
        # is kept for the session's end to report.
        while not self._stop.wait(0.01):
            try:
                self.reap_adopted()
            except OSError as err:
                self.failures.append(repr(err))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            found += [int(c) for c in Path(task.path, "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread exited (before open, or between open and read: ESRCH)
    return found


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before open, or between open and read (ESRCH)
        return False


PR_SET_CHILD_SUBREAPER = 36
SUBREAPER = Subreaper()


def runtime_binary() -> Path:
    """The runtime under test, as an absolute path."""
    named = os.environ.get("DOCKYARD_TEST_RUNTIME")
    if not named:
        return DEFAULT_RUNTIME
    found = shutil.which(named)
    return Path(found).resolve() if found else Path(named).resolve()


def runtime_is_runc() -> bool:
    """True when the suite runs against Debian's runc (used only to mark known runc gaps)."""
    return runtime_binary().name == "runc"


def runc_gap(reason: str) -> pytest.MarkDecorator:
    """Mark a test whose rule Debian's runc 1.1 does not follow (strict: it must fail there)."""
    return pytest.mark.xfail(runtime_is_runc(), reason=f"runc 1.1: {reason}", strict=True)


def build_busybox_rootfs(dest: Path) -> Path:
    """Build a minimal busybox rootfs at `dest` from the host's busybox-static.

    This is the fallback for a checkout where `hack/build-images.sh` has not run.
    """
    bindir = dest / "bin"
    bindir.mkdir(parents=True)
    shutil.copy2(HOST_BUSYBOX, bindir / "busybox")
    listed = SUBREAPER.run(
        [str(HOST_BUSYBOX), "--list"], timeout=10, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert listed.returncode == 0, listed.stderr
    applets = listed.stdout.split()
    for applet in applets:
        # `busybox --list` names busybox itself; linking it would replace the binary.
        if applet != "busybox":
            (bindir / applet).symlink_to("busybox")
    for sub in ("proc", "dev", "sys", "tmp", "etc", "root", "home/user", "run", "var", "usr"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "etc" / "passwd").write_text(PASSWD)
    (dest / "etc" / "group").write_text(GROUP)
    return dest


def shared_rootfs(cache_dir: Path) -> Path:
    """The read-only rootfs every bundle shares: hack's build when present, else our own."""
    if (BUILT_ROOTFS / "bin" / "busybox").exists():
        return BUILT_ROOTFS
    built = cache_dir / "rootfs"
    if not built.exists():
        build_busybox_rootfs(built)
    return built


def container_id(test_name: str) -> str:
    """A unique, valid container id that says which test made it."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name.removeprefix("test_"))[:24].strip("-.")
    return f"dy-{slug}-{uuid.uuid4().hex[:8]}"


def base_config(rootfs: str, cid: str) -> dict[str, Any]:
    """A config.json like `runc spec` prints, plus a cgroup namespace and a test cgroup."""
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["true"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
                f"{TEST_ID_ENV}={cid}",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(DEFAULT_CAPS),
                "effective": list(DEFAULT_CAPS),
                "permitted": list(DEFAULT_CAPS),
                "ambient": list(DEFAULT_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": "dockyard",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "cgroupsPath": f"/{CGROUP_PARENT}/{cid}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "cgroup"},
            ],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


@dataclass
class Bundle:
    """One test container: its bundle dir, its config, its state root and the runtime."""

    id: str
    path: Path
    state_root: Path
    rootfs: Path
    runtime: Path
    config: dict[str, Any] = field(default_factory=dict)
    _calls: int = 0
    _create_stdout: Path | None = None
    _last_stdout: Path | None = None

    @property
    def cgroups_path(self) -> str:
        return str(self.config["linux"]["cgroupsPath"])

    def write_config(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))

    def set_args(self, *args: str) -> None:
        self.config["process"]["args"] = list(args)

    def sh(self, script: str) -> None:
        """Make the container's process `sh -c script`."""
        self.set_args("sh", "-c", script)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[TEST_ID_ENV] = self.id
        return env

    def invoke(
        self, *args: str, input: str | None = None, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the runtime with this container's --root; never raises on a non-zero exit.

        Output goes through files, not pipes: a detached container inherits the
        runtime's stdio, and a pipe would stay open (and the call hang) until the
        container exits. A detached container's own output stays readable in them.
        """
        self._calls += 1
        out_path = self.path / f"call{self._calls}.out"
        err_path = self.path / f"call{self._calls}.err"
        with open(out_path, "w+") as out, open(err_path, "w+") as err:
            done = SUBREAPER.run(
                [str(self.runtime), "--root", str(self.state_root), *args],
                input=input,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                timeout=timeout,
                env=self.env(),
            )
        self._last_stdout = out_path
        done.stdout = out_path.read_text()
        done.stderr = err_path.read_text()
        return done

    def run(self, *extra: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """`run` in the foreground: the result's stdout/stderr/returncode are the container's."""
        self.write_config()
        return self.invoke("run", "--bundle", str(self.path), *extra, self.id, timeout=timeout)

    def run_ok(self, script: str) -> str:
        """Run `sh -c script`, require exit 0, and return its stdout."""
        self.sh(script)
        done = self.run()
        assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
        return done.stdout

    def create(self, *extra: str) -> subprocess.CompletedProcess[str]:
        self.write_config()
        done = self.invoke("create", "--bundle", str(self.path), *extra, self.id)
        self._create_stdout = self._last_stdout
        return done

    def detached_output(self) -> str:
        """What a created container has written to its stdout so far."""
        assert self._create_stdout is not None, "container was not created"
        return self._create_stdout.read_text()

    def create_ok(self, *extra: str) -> None:
        done = self.create(*extra)
        assert done.returncode == 0, f"create failed: {done.stderr}"

    def start_detached(self, script: str = "sleep 1000") -> int:
        """Create and start `sh -c script`; return the container's pid."""
        self.sh(script)
        self.create_ok()
        started = self.invoke("start", self.id)
        assert started.returncode == 0, f"start failed: {started.stderr}"
        return int(self.state()["pid"])

    @contextlib.contextmanager
    def running(self, script: str = "sleep 1000") -> Iterator[int]:
        """start_detached(script) for the block, its pid; force-deleted when the block ends."""
        pid = self.start_detached(script)
        try:
            yield pid
        finally:
            self.delete(force=True)

    def state(self) -> dict[str, Any]:
        done = self.invoke("state", self.id)
        assert done.returncode == 0, f"state failed: {done.stderr}"
        parsed: dict[str, Any] = json.loads(done.stdout)
        return parsed

    def exists(self) -> bool:
        return self.invoke("state", self.id).returncode == 0

    def delete(self, force: bool = False) -> None:
        done = self.invoke("delete", *(["--force"] if force else []), self.id)
        assert done.returncode == 0, f"delete failed: {done.stderr}"

    def host_cgroup(self, controller: str) -> Path:
        return Path("/sys/fs/cgroup", controller, self.cgroups_path.lstrip("/"))

    def cgroup_dirs(self) -> list[Path]:
        return cgroup_dirs(self.cgroups_path)


def cgroup_dirs(cgroups_path: str) -> list[Path]:
    """The directories of a (cgroupfs) cgroupsPath: one in each v1 hierarchy (and the hybrid
    layout's cgroup2 mount) that has it, or the one on a cgroup2-only host (the test guest)."""
    rel = cgroups_path.strip("/")
    root = Path("/sys/fs/cgroup")
    return sorted(d for d in (root / rel, *(h / rel for h in root.iterdir() if h.is_dir())) if d.is_dir())


def bundle_cgroup_dirs(bundle_dir: Path) -> list[Path]:
    """The cgroup directories of the container whose OCI bundle is ``bundle_dir`` (its config.json's cgroupsPath)."""
    return cgroup_dirs(str(json.loads((bundle_dir / "config.json").read_text())["linux"]["cgroupsPath"]))


def make_bundle(
    tmp: Path, rootfs: Path, runtime: Path, test_name: str, *, writable: bool = False
) -> Bundle:
    """A fresh bundle dir in `tmp`; a writable bundle gets its own copy of the rootfs."""
    cid = container_id(test_name)
    bundle_dir = tmp / f"bundle-{cid}"
    bundle_dir.mkdir()
    state_root = tmp / f"state-{cid}"
    if writable:
        own = bundle_dir / "rootfs"
        shutil.copytree(rootfs, own, symlinks=True)
        # A relative root.path is resolved against the bundle, so this also checks that rule.
        config = base_config("rootfs", cid)
        config["root"]["readonly"] = False
        used_rootfs = own
    else:
        config = base_config(str(rootfs), cid)
        used_rootfs = rootfs
    return Bundle(
        id=cid,
        path=bundle_dir,
        state_root=state_root,
        rootfs=used_rootfs,
        runtime=runtime,
        config=copy.deepcopy(config),
    )

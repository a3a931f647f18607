"""The OCI lifecycle through the CLI: create/start/state/list, kill, exec, ps, delete, failures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bundle import SUBREAPER, Bundle, runc_gap, runtime_binary

pytestmark = pytest.mark.root

# Tests of dockyard-runc's own state record, not of the CLI contract.
own_state = pytest.mark.skipif(runtime_binary().name != "dockyard-runc",
                               reason="reads or edits dockyard-runc's state record")

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def status(bundle: Bundle) -> str:
    return str(bundle.state()["status"])


def test_state_json_through_the_lifecycle(bundle: Bundle) -> None:
    """state prints runc's JSON (ociVersion, id, pid, status, bundle, rootfs, created, owner,
    annotations) and status goes created -> running -> stopped."""
    bundle.config["annotations"] = {"org.dockyard.test": "yes"}
    bundle.set_args("sleep", "1000")
    bundle.create_ok()
    try:
        state = bundle.state()
        assert {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"} <= state.keys()
        assert state["id"] == bundle.id
        assert state["status"] == "created"
        assert isinstance(state["pid"], int) and state["pid"] > 0
        assert Path(f"/proc/{state['pid']}").exists()
        assert state["bundle"] == str(bundle.path)
        assert state["rootfs"] == str(bundle.rootfs)
        assert RFC3339.match(state["created"]), state["created"]
        assert isinstance(state["ociVersion"], str) and state["ociVersion"]
        assert state["annotations"] == {"org.dockyard.test": "yes"}

        assert bundle.invoke("start", bundle.id).returncode == 0
        assert status(bundle) == "running"
        assert bundle.state()["pid"] == state["pid"]

        assert bundle.invoke("kill", bundle.id, "KILL").returncode == 0
        assert wait_for(lambda: status(bundle) == "stopped")
    finally:
        bundle.delete(force=True)
    assert bundle.invoke("state", bundle.id).returncode != 0


def test_start_releases_the_process(bundle: Bundle) -> None:
    """after create the user program has not run; start runs it (exec fifo)."""
    bundle.sh("echo started")
    bundle.create_ok()
    try:
        time.sleep(0.2)
        assert bundle.detached_output() == ""
        assert bundle.invoke("start", bundle.id).returncode == 0
        assert wait_for(lambda: bundle.detached_output() == "started\n")
        assert wait_for(lambda: status(bundle) == "stopped")
        assert bundle.invoke("start", bundle.id).returncode != 0, "a stopped container started again"
    finally:
        bundle.delete()


def test_create_twice_is_refused(bundle: Bundle) -> None:
    """a second create with the same id fails and leaves the first container intact."""
    bundle.sh("sleep 1000")
    bundle.create_ok()
    try:
        again = bundle.invoke("create", "--bundle", str(bundle.path), bundle.id)
        assert again.returncode != 0
        assert status(bundle) == "created"
    finally:
        bundle.delete(force=True)


def test_list(new_bundle: Callable[..., Bundle]) -> None:
    """list shows every container under --root, in a table and as JSON."""
    first = new_bundle()
    second = new_bundle()
    second.state_root = first.state_root
    first.start_detached("sleep 1000")
    second.sh("sleep 1000")
    second.create_ok()
    try:
        table = first.invoke("list")
        assert table.returncode == 0
        header, *rows = table.stdout.splitlines()
        assert header.split()[:3] == ["ID", "PID", "STATUS"]
        assert sorted(row.split()[0] for row in rows) == sorted([first.id, second.id])

        listed = json.loads(first.invoke("list", "--format", "json").stdout)
        by_id = {entry["id"]: entry for entry in listed}
        assert by_id[first.id]["status"] == "running"
        assert by_id[second.id]["status"] == "created"
        for entry in listed:
            assert {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"} <= entry.keys()
            assert entry["owner"] == "root"
    finally:
        first.delete(force=True)
        second.delete(force=True)
    empty = first.invoke("list", "--format", "json")
    assert json.loads(empty.stdout) in (None, [])


TRAPS = "trap 'echo got-USR1' USR1; trap 'echo got-TERM; exit 0' TERM; while :; do sleep 0.05; done"


@pytest.mark.parametrize("signal_arg", ["USR1", "SIGUSR1", "10"])
def test_kill_delivers_named_and_numbered_signals(bundle: Bundle, signal_arg: str) -> None:
    """kill ID SIGNAL accepts a name, a SIG-prefixed name or a number and delivers that signal."""
    bundle.start_detached(TRAPS)
    try:
        assert bundle.invoke("kill", bundle.id, signal_arg).returncode == 0
        assert wait_for(lambda: "got-USR1" in bundle.detached_output())
        assert status(bundle) == "running"
    finally:
        bundle.delete(force=True)


@pytest.mark.parametrize("signal_arg", ["TERM", "SIGKILL", "9", None])
def test_kill_stops_the_container(bundle: Bundle, signal_arg: str | None) -> None:
    """kill with TERM (trapped), KILL or 9 stops the container; no signal means SIGTERM."""
    bundle.start_detached(TRAPS)
    try:
        args = ["kill", bundle.id] + ([signal_arg] if signal_arg else [])
        assert bundle.invoke(*args).returncode == 0
        assert wait_for(lambda: status(bundle) == "stopped")
        if signal_arg in ("TERM", None):
            assert "got-TERM" in bundle.detached_output()
    finally:
        bundle.delete(force=True)


def test_kill_unknown_signal_is_refused(bundle: Bundle) -> None:
    """kill with an unknown signal name fails and the container keeps running."""
    bundle.start_detached("sleep 1000")
    try:
        assert bundle.invoke("kill", bundle.id, "NOSUCHSIG").returncode != 0
        assert status(bundle) == "running"
    finally:
        bundle.delete(force=True)


def test_kill_all(bundle: Bundle) -> None:
    """kill --all signals every process in the container's cgroup, not only the init."""
    # Without a pid namespace, killing the init would not take the others with it.
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "pid"]
    bundle.start_detached("sleep 1000 & sleep 1000 & wait")
    procs = bundle.host_cgroup("pids") / "cgroup.procs"
    try:
        assert wait_for(lambda: len(procs.read_text().split()) == 3)
        assert bundle.invoke("kill", "--all", bundle.id, "KILL").returncode == 0
        assert wait_for(lambda: procs.read_text().split() == [])
        assert wait_for(lambda: status(bundle) == "stopped")
    finally:
        bundle.delete(force=True)


def test_delete_running_needs_force(bundle: Bundle) -> None:
    """delete of a running container fails and keeps it; delete --force kills and removes it."""
    pid = bundle.start_detached("sleep 1000")
    done = bundle.invoke("delete", bundle.id)
    assert done.returncode != 0
    assert status(bundle) == "running"
    bundle.delete(force=True)
    assert not bundle.exists()
    assert not bundle.host_cgroup("memory").exists()
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists() or _is_zombie(pid))


@own_state
def test_delete_force_removes_a_torn_state_record(bundle: Bundle) -> None:
    """State records are renamed into place but not fsync'd, so a power loss
    can leave one empty: plain delete refuses it by its path; delete --force
    kills what is in the cgroup config.json names and removes cgroup and record."""
    pid = bundle.start_detached("sleep 1000")
    record = bundle.state_root / bundle.id / "state.json"
    record.write_bytes(b"")
    done = bundle.invoke("delete", bundle.id)
    assert done.returncode == 1
    assert "corrupt state record" in done.stderr and str(record) in done.stderr
    assert Path(f"/proc/{pid}").exists()
    done = bundle.invoke("delete", "--force", bundle.id)
    assert done.returncode == 0, done.stderr
    assert "state record unreadable" in done.stderr
    assert not (bundle.state_root / bundle.id).exists()
    assert not bundle.host_cgroup("memory").exists()
    assert wait_for(lambda: not Path(f"/proc/{pid}").exists() or _is_zombie(pid))


@own_state
def test_a_version_1_record_is_still_served(bundle: Bundle) -> None:
    """A container created by a runtime before state version 2 (no "cgroups"
    in its record) outlives the upgrade: kill, state and delete find its
    cgroup from the host as before, and remove it."""
    bundle.sh("sleep 1000")
    bundle.create_ok()
    record = bundle.state_root / bundle.id / "state.json"
    raw = json.loads(record.read_text())
    assert raw["version"] == 2 and raw["cgroups"]["layout"] in ("v1", "v2")
    del raw["cgroups"]
    raw["version"] = 1
    record.write_text(json.dumps(raw))
    assert bundle.invoke("start", bundle.id).returncode == 0
    assert status(bundle) == "running"
    assert bundle.invoke("pause", bundle.id).returncode == 0
    assert status(bundle) == "paused"
    assert bundle.invoke("resume", bundle.id).returncode == 0
    assert bundle.invoke("kill", bundle.id, "KILL").returncode == 0
    assert wait_for(lambda: status(bundle) == "stopped")
    bundle.delete()
    assert not bundle.host_cgroup("memory").exists()


@own_state
@pytest.mark.parametrize("verb", ["start", "state", "delete"])
def test_verbs_on_a_container_skip_the_host_probing(bundle: Bundle, verb: str) -> None:
    """start, state and delete rebuild the cgroup manager from the record
    (cgroups/restore.py): none loads mountinfo parsing or the cgroup locator,
    which cost ~1 ms of each call on every container's start path."""
    bundle.sh("sleep 1000" if verb == "state" else "true")
    bundle.create_ok()
    if verb == "delete":
        assert bundle.invoke("start", bundle.id).returncode == 0
        assert wait_for(lambda: status(bundle) == "stopped")
    done = subprocess.run([sys.executable, "-X", "importtime", "-IS", str(bundle.runtime), "--root",
                           str(bundle.state_root), verb, bundle.id], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL, check=False)
    try:
        assert done.returncode == 0, done.stderr
        loaded = {line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if "|" in line}
        assert "dockyard.runtime.cgroups.restore" in loaded
        assert not loaded & {"dockyard.runtime.cgroups.locate", "dockyard.runtime.kernel.cgroupfs.locate",
                             "dockyard.runtime.kernel.cgroupfs.mountinfo",
                             "dockyard.runtime.hooks"}, loaded
    finally:
        if verb != "delete":
            bundle.delete(force=True)


# Standard modules a container's start path gets cheaper elsewhere
# (runtime/kernel/lean/README.md has the costs and the rules).
COSTLY_STDLIB = {"os", "posixpath", "_collections_abc", "resource", "encodings.ascii", "ctypes",
                 "typing", "enum", "json", "subprocess", "re", "_socket", "socket"}


@own_state
@pytest.mark.parametrize("verb", ["create", "create-seccomp", "start", "state", "kill", "delete"])
def test_container_path_loads_no_costly_stdlib(bundle: Bundle, tmp_path: Path, verb: str) -> None:
    """create (with a seccomp filter to compile too), start, state, kill and delete of a container
    with an rlimit load none of the standard modules they have cheaper ways around
    (runtime/kernel/lean/README.md)."""
    bundle.sh("sleep 1000" if verb in ("state", "kill") else "true")
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}]
    if verb == "create-seccomp":
        bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    if verb.startswith("create"):
        bundle.write_config()
        argv = ["create", "--bundle", str(bundle.path), bundle.id]
    else:
        bundle.create_ok()
        if verb == "delete":
            assert bundle.invoke("start", bundle.id).returncode == 0
            assert wait_for(lambda: status(bundle) == "stopped")
        argv = [verb, bundle.id] + (["KILL"] if verb == "kill" else [])
    # stderr to a file: a created init holds the runtime's stdio until it runs
    err = tmp_path / "importtime"
    with err.open("w") as sink:
        done = SUBREAPER.run([sys.executable, "-X", "importtime", "-IS", str(bundle.runtime), "--root",
                              str(bundle.state_root), *argv], stdout=subprocess.DEVNULL, stderr=sink,
                             timeout=30, stdin=subprocess.DEVNULL)
    try:
        text = err.read_text()
        assert done.returncode == 0, text
        loaded = {line.rpartition("|")[2].strip() for line in text.splitlines() if "|" in line}
        assert "dockyard.runtime.state" in loaded  # the probe sees the runtime's imports at all
        assert not loaded & COSTLY_STDLIB, text
        if verb == "create-seccomp":
            assert "dockyard.runtime.seccomp.libseccomp" in loaded  # the filter was compiled here
        if verb in ("start", "state", "kill"):
            # the status reads the freezer from the record (restore.is_frozen);
            # nothing else of the cgroup is needed, so no manager is built
            managers = {"dockyard.runtime.cgroups.v1.manager", "dockyard.runtime.cgroups.v2.manager"}
            assert not loaded & managers, text
    finally:
        bundle.delete(force=True)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped between open and read
        return True


def test_delete_created_container(bundle: Bundle) -> None:
    """delete of a created (never started) container removes it and its init without running it."""
    bundle.sh("echo should-not-run")
    bundle.create_ok()
    bundle.delete()
    assert not bundle.exists()
    assert bundle.detached_output() == ""


def test_exec_output_and_exit_code(bundle: Bundle) -> None:
    """exec runs a process in the running container; its output and exit code are the runtime's."""
    bundle.start_detached("sleep 1000")
    try:
        done = bundle.invoke("exec", bundle.id, "sh", "-c", "echo hi; echo err >&2; exit 5")
        assert (done.returncode, done.stdout, done.stderr) == (5, "hi\n", "err\n")
    finally:
        bundle.delete(force=True)


def test_exec_joins_the_container(bundle: Bundle) -> None:
    """an exec'd process is in the init's namespaces and cgroup."""
    bundle.start_detached("sleep 1000")
    try:
        script = "for ns in pid net mnt uts ipc cgroup; do [ $(readlink /proc/self/ns/$ns) = $(readlink /proc/1/ns/$ns) ] && echo same-$ns; done; hostname"
        done = bundle.invoke("exec", bundle.id, "sh", "-c", script)
        assert done.stdout.split() == [f"same-{ns}" for ns in ("pid", "net", "mnt", "uts", "ipc", "cgroup")] + [
            "dockyard"
        ], done.stderr
    finally:
        bundle.delete(force=True)


@pytest.mark.parametrize(
    ("flags", "script", "expected"),
    [
        (["--env", "FOO=bar"], 'echo "$FOO"', "bar"),
        (["--cwd", "/etc"], "pwd", "/etc"),
        (["--user", "1000:1000"], "echo $(id -u) $(id -g)", "1000 1000"),
        (["--user", "1000:1000", "--cwd", "/tmp", "--env", "A=1"], "echo $(id -u) $(pwd) $A", "1000 /tmp 1"),
    ],
)
def test_exec_flags(bundle: Bundle, flags: list[str], script: str, expected: str) -> None:
    """exec --env/--cwd/--user set the new process's environment, directory and identity."""
    bundle.start_detached("sleep 1000")
    try:
        done = bundle.invoke("exec", *flags, bundle.id, "sh", "-c", script)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected
    finally:
        bundle.delete(force=True)


def test_exec_process_file(bundle: Bundle, tmp_path: Path) -> None:
    """exec --process FILE runs the OCI process described in FILE (args, env, cwd, user)."""
    bundle.start_detached("sleep 1000")
    process = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [100]},
        "args": ["sh", "-c", 'echo "$(id -u) $(id -g) $(pwd) $GREETING"; exit 4'],
        "env": ["PATH=/bin:/usr/bin", "GREETING=hello"],
        "cwd": "/tmp",
        "capabilities": {"bounding": [], "effective": [], "permitted": []},
        "noNewPrivileges": True,
    }
    spec = tmp_path / "process.json"
    spec.write_text(json.dumps(process))
    try:
        done = bundle.invoke("exec", "--process", str(spec), bundle.id)
        assert done.returncode == 4, done.stderr
        assert done.stdout.strip() == "1000 1000 /tmp hello"
    finally:
        bundle.delete(force=True)


def test_exec_detached_with_pid_file(bundle: Bundle, tmp_path: Path) -> None:
    """exec --detach returns at once and writes the new process's host pid to --pid-file."""
    bundle.start_detached("sleep 1000")
    pid_file = tmp_path / "exec.pid"
    try:
        done = bundle.invoke("exec", "--detach", "--pid-file", str(pid_file), bundle.id, "sleep", "999")
        assert done.returncode == 0, done.stderr
        pid = int(pid_file.read_text())
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"999"]
    finally:
        bundle.delete(force=True)


def test_exec_into_stopped_container_fails(bundle: Bundle) -> None:
    """exec into a stopped container is refused."""
    bundle.start_detached("true")
    try:
        assert wait_for(lambda: status(bundle) == "stopped")
        assert bundle.invoke("exec", bundle.id, "true").returncode != 0
    finally:
        bundle.delete()


def test_ps(bundle: Bundle) -> None:
    """ps lists the container's processes by host pid, as a table and as a JSON array."""
    pid = bundle.start_detached("sleep 1000")
    try:
        table = bundle.invoke("ps", bundle.id)
        assert table.returncode == 0, table.stderr
        header, *rows = table.stdout.splitlines()
        pid_column = header.split().index("PID")
        assert [int(row.split()[pid_column]) for row in rows] == [pid]
        listed = json.loads(bundle.invoke("ps", "--format", "json", bundle.id).stdout)
        assert listed == [pid]
    finally:
        bundle.delete(force=True)


def test_pid_file(bundle: Bundle, tmp_path: Path) -> None:
    """create --pid-file writes the init's host pid, as state reports it."""
    bundle.sh("sleep 1000")
    pid_file = tmp_path / "init.pid"
    bundle.create_ok("--pid-file", str(pid_file))
    try:
        assert int(pid_file.read_text()) == bundle.state()["pid"]
    finally:
        bundle.delete(force=True)


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "", "..", ".", "a b", "x\ny"])
def test_invalid_container_id(bundle: Bundle, bad_id: str) -> None:
    """ids outside [A-Za-z0-9_.-] or with path meaning are rejected before anything is made."""
    bundle.write_config()
    done = bundle.invoke("create", "--bundle", str(bundle.path), bad_id)
    assert done.returncode != 0
    assert not bundle.state_root.exists() or not any(bundle.state_root.iterdir())
    assert not (bundle.state_root.parent / "x").exists()


def _missing_rootfs(config: dict[str, Any], bundle: Bundle) -> None:
    config["root"]["path"] = str(bundle.path / "no-such-rootfs")


CREATE_FAILURES: list[Any] = [
    pytest.param(_missing_rootfs, "no-such-rootfs", id="missing-rootfs"),
    pytest.param(
        lambda c, b: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}),
        "RLIMIT_BOGUS",
        id="bad-rlimit",
    ),
    pytest.param(
        lambda c, b: c["linux"]["namespaces"].append({"type": "bogus"}), "bogus", id="bad-namespace"
    ),
    pytest.param(
        lambda c, b: c["process"]["capabilities"]["bounding"].append("CAP_BOGUS"),
        "CAP_BOGUS",
        id="bad-capability",
        marks=runc_gap("an unknown capability is only a warning"),
    ),
    pytest.param(
        lambda c, b: c["mounts"].append({"destination": "/mnt", "type": "nosuchfs", "source": "none"}),
        "/mnt",
        id="bad-mount-type",
    ),
    pytest.param(lambda c, b: c["process"].update(args=["/no/such/binary"]), "/no/such/binary", id="missing-binary"),
    pytest.param(
        lambda c, b: c["linux"]["sysctl"].update({"kernel.panic": "1"}) if "sysctl" in c["linux"]
        else c["linux"].update(sysctl={"kernel.panic": "1"}),
        "kernel.panic",
        id="host-sysctl",
    ),
    pytest.param(
        lambda c, b: c["linux"]["namespaces"].append({"type": "pid", "path": "/proc/self/ns/pid"}),
        "pid",
        id="duplicate-namespace",
    ),
]


@pytest.mark.parametrize(("break_config", "named"), CREATE_FAILURES)
def test_create_failure_leaves_nothing(
    bundle: Bundle, break_config: Callable[[dict[str, Any], Bundle], None], named: str
) -> None:
    """a bad config or bundle fails create with exit 1 and a message naming the culprit, and
    leaves no state, cgroup, mount or process (the leak check covers the last three)."""
    break_config(bundle.config, bundle)
    done = bundle.create()
    assert done.returncode == 1, done.stderr
    assert named in done.stderr
    assert not bundle.exists()
    assert not bundle.state_root.exists() or not any(bundle.state_root.iterdir())


@runc_gap("the JSON error does not name config.json")
def test_invalid_json_config(bundle: Bundle) -> None:
    """a config.json that is not JSON fails create with exit 1 and names config.json."""
    (bundle.path / "config.json").write_text("{not json")
    done = bundle.invoke("create", "--bundle", str(bundle.path), bundle.id)
    assert done.returncode == 1
    assert "config.json" in done.stderr or "JSON" in done.stderr.upper()
    assert not bundle.exists()


def test_run_detached(bundle: Bundle) -> None:
    """run -d starts the container and returns while it keeps running."""
    bundle.sh("sleep 1000")
    bundle.write_config()
    done = bundle.invoke("run", "-d", "--bundle", str(bundle.path), bundle.id)
    try:
        assert done.returncode == 0, done.stderr
        assert status(bundle) == "running"
    finally:
        bundle.delete(force=True)


def test_run_foreground_removes_container(bundle: Bundle) -> None:
    """a foreground run deletes the container when it exits."""
    bundle.run_ok("true")
    assert not bundle.exists()
    assert os.path.isdir(bundle.state_root) is False or not any(bundle.state_root.iterdir())

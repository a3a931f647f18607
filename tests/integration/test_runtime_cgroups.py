"""linux.resources as cgroup v1 files, `update`, and `pause`/`resume` through the freezer."""

from __future__ import annotations

import errno
import json
import sys
import time
from pathlib import Path

import pytest
from bundle import Bundle

pytestmark = pytest.mark.root

MiB = 1024 * 1024

RESOURCES = {
    "memory": {"limit": 64 * MiB, "reservation": 32 * MiB},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "pids": {"limit": 32},
}
# controller file -> value the RESOURCES above must produce
EXPECTED_FILES = {
    ("memory", "memory.limit_in_bytes"): str(64 * MiB),
    ("memory", "memory.soft_limit_in_bytes"): str(32 * MiB),
    ("cpu", "cpu.shares"): "512",
    ("cpu", "cpu.cfs_quota_us"): "50000",
    ("cpu", "cpu.cfs_period_us"): "100000",
    ("pids", "pids.max"): "32",
}


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_limits_visible_inside(bundle: Bundle) -> None:
    """linux.resources are written to the container's cgroups, as read from inside (cgroup ns)."""
    bundle.config["linux"]["resources"].update(RESOURCES)
    script = "; ".join(f"cat /sys/fs/cgroup/{ctrl}/{name}" for ctrl, name in EXPECTED_FILES)
    assert bundle.run_ok(script).split() == list(EXPECTED_FILES.values())


def test_limits_on_host_and_membership(bundle: Bundle) -> None:
    """the cgroup is at cgroupsPath in every hierarchy, holds the init, and has the limits."""
    bundle.config["linux"]["resources"].update(RESOURCES)
    with bundle.running("sleep 1000") as pid:
        for (ctrl, name), value in EXPECTED_FILES.items():
            assert (bundle.host_cgroup(ctrl) / name).read_text().strip() == value, name
        for ctrl in ("memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio", "cpuset"):
            procs = (bundle.host_cgroup(ctrl) / "cgroup.procs").read_text().split()
            assert str(pid) in procs, f"init not in the {ctrl} cgroup"
    for ctrl in ("memory", "cpu", "pids"):
        assert not bundle.host_cgroup(ctrl).exists(), f"delete left the {ctrl} cgroup"


def test_pids_limit_enforced(bundle: Bundle) -> None:
    """pids.limit stops forks beyond the limit."""
    bundle.config["linux"]["resources"]["pids"] = {"limit": 4}
    bundle.sh("for i in 1 2 3 4 5 6; do sleep 5 & done")
    done = bundle.run()
    assert done.returncode != 0
    assert "can't fork" in done.stderr + done.stdout


def test_devices_cgroup_rules(bundle: Bundle) -> None:
    """linux.resources.devices becomes the devices cgroup whitelist (deny-all plus allowed nodes)."""
    bundle.config["linux"]["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
    ]
    with bundle.running("sleep 1000") as pid:
        rules = (bundle.host_cgroup("devices") / "devices.list").read_text().split("\n")
        assert "c 10:229 rw" in rules
        assert "c 1:3 rwm" in rules  # /dev/null, a default device
        assert "a *:* rwm" not in rules
        assert pid > 0


def test_update_single_values(bundle: Bundle) -> None:
    """`update --memory/--pids-limit/--cpu-quota` rewrites the running container's cgroup files."""
    bundle.config["linux"]["resources"].update(RESOURCES)
    with bundle.running("sleep 1000"):
        done = bundle.invoke(
            "update", "--memory", str(128 * MiB), "--pids-limit", "20", "--cpu-quota", "30000", bundle.id
        )
        assert done.returncode == 0, done.stderr
        assert (bundle.host_cgroup("memory") / "memory.limit_in_bytes").read_text().strip() == str(128 * MiB)
        assert (bundle.host_cgroup("pids") / "pids.max").read_text().strip() == "20"
        assert (bundle.host_cgroup("cpu") / "cpu.cfs_quota_us").read_text().strip() == "30000"
        # untouched values stay
        assert (bundle.host_cgroup("cpu") / "cpu.shares").read_text().strip() == "512"


def test_update_resources_from_stdin(bundle: Bundle) -> None:
    """`update --resources -` reads an OCI LinuxResources JSON document from stdin."""
    with bundle.running("sleep 1000"):
        doc = {"memory": {"limit": 96 * MiB}, "cpu": {"quota": 20000, "period": 100000}, "pids": {"limit": 50}}
        done = bundle.invoke("update", "--resources", "-", bundle.id, input=json.dumps(doc))
        assert done.returncode == 0, done.stderr
        assert (bundle.host_cgroup("memory") / "memory.limit_in_bytes").read_text().strip() == str(96 * MiB)
        assert (bundle.host_cgroup("cpu") / "cpu.cfs_quota_us").read_text().strip() == "20000"
        assert (bundle.host_cgroup("pids") / "pids.max").read_text().strip() == "50"


def test_update_resources_from_file(bundle: Bundle, tmp_path: Path) -> None:
    """`update --resources FILE` reads the JSON document from a file."""
    with bundle.running("sleep 1000"):
        doc = tmp_path / "resources.json"
        doc.write_text(json.dumps({"pids": {"limit": 42}}))
        done = bundle.invoke("update", "--resources", str(doc), bundle.id)
        assert done.returncode == 0, done.stderr
        assert (bundle.host_cgroup("pids") / "pids.max").read_text().strip() == "42"


def test_pause_and_resume(bundle: Bundle) -> None:
    """pause freezes every process (state paused, no progress); resume thaws them (running)."""
    # The container counts on its stdout, which the create call left in a file.
    with bundle.running("i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done"):
        assert wait_for(lambda: len(bundle.detached_output().split()) > 3)
        assert bundle.invoke("pause", bundle.id).returncode == 0
        assert bundle.state()["status"] == "paused"
        assert (bundle.host_cgroup("freezer") / "freezer.state").read_text().strip() == "FROZEN"
        frozen_at = bundle.detached_output()
        time.sleep(0.3)
        assert bundle.detached_output() == frozen_at, "the container ran while paused"

        assert bundle.invoke("resume", bundle.id).returncode == 0
        assert bundle.state()["status"] == "running"
        assert (bundle.host_cgroup("freezer") / "freezer.state").read_text().strip() == "THAWED"
        assert wait_for(lambda: len(bundle.detached_output()) > len(frozen_at))


def test_events_stats(bundle: Bundle) -> None:
    """`events --stats` prints one JSON stats event with the container's id and cgroup figures."""
    bundle.config["linux"]["resources"]["pids"] = {"limit": 32}
    with bundle.running("sleep 1000"):
        done = bundle.invoke("events", "--stats", bundle.id)
        assert done.returncode == 0, done.stderr
        event = json.loads(done.stdout)
        assert event["type"] == "stats"
        assert event["id"] == bundle.id
        assert event["data"]["pids"]["current"] >= 1
        assert event["data"]["pids"]["limit"] == 32
        assert event["data"]["memory"]["usage"]["usage"] > 0


def _hierarchies() -> list[str]:
    """Every cgroup hierarchy a container joins here: the v1 ones (named
    ones included, e.g. systemd) and, on a hybrid host, the cgroup2 side."""
    names = []
    for entry in sorted(Path("/sys/fs/cgroup").iterdir()):
        if (entry / "cgroup.procs").exists() and not entry.is_symlink():
            names.append(entry.name)
    return names


def _assert_member(bundle: Bundle, pid: int, what: str) -> None:
    for name in _hierarchies():
        procs = (Path("/sys/fs/cgroup") / name / bundle.cgroups_path.lstrip("/") / "cgroup.procs").read_text().split()
        assert str(pid) in procs, f"{what} (pid {pid}) is not in the {name} cgroup"


# A launcher that runs the runtime under a seccomp filter answering clone3
# with ENOSYS, as an older kernel or an outer container's default profile
# does: the runtime must fall back to fork and place the init by its pid.
_NO_CLONE3 = """#!{python}
import ctypes, os, sys
prog = open({program!r}, "rb").read()
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
buf = ctypes.create_string_buffer(prog, len(prog))
libc = ctypes.CDLL(None, use_errno=True)
if libc.syscall(317, 1, 0, ctypes.byref(Prog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p)))) != 0:
    sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
os.execv({runtime!r}, [{runtime!r}, *sys.argv[1:]])
"""


def _without_clone3(bundle: Bundle) -> None:
    from dockyard.runtime.seccomp import compile_filter

    program = bundle.path / "no-clone3.bpf"
    program.write_bytes(compile_filter({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}],
    }).program)
    launcher = bundle.path / "runtime-without-clone3"
    launcher.write_text(_NO_CLONE3.format(python=sys.executable, program=str(program), runtime=str(bundle.runtime)))
    launcher.chmod(0o755)
    bundle.runtime = launcher


@pytest.mark.parametrize("clone3", [True, False], ids=["clone3", "clone3-refused"])
@pytest.mark.parametrize("cgroupns", [False, True], ids=["no-cgroupns", "cgroupns"])
def test_init_and_exec_join_every_hierarchy(bundle: Bundle, cgroupns: bool, clone3: bool) -> None:
    """The init is born in its cgroup2 dir (clone3 CLONE_INTO_CGROUP) and
    moves itself into the v1 hierarchies (spawn._spawn). Where clone3 is
    refused, the runtime adds it to the cgroup2 side by pid, and with a
    cgroup namespace it uses the slow, all-by-the-parent order. Every way,
    every hierarchy holds the init, and an exec'd process too."""
    if not clone3:
        _without_clone3(bundle)
    others = [ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "cgroup"]
    bundle.config["linux"]["namespaces"] = others + ([{"type": "cgroup"}] if cgroupns else [])
    with bundle.running("sleep 1000") as pid:
        _assert_member(bundle, pid, "the init")
        pid_file = bundle.path / "exec.pid"
        done = bundle.invoke("exec", "--detach", "--pid-file", str(pid_file), bundle.id, "sleep", "1000")
        assert done.returncode == 0, done.stderr
        _assert_member(bundle, int(pid_file.read_text()), "the exec'd process")
        if cgroupns:
            # rooted at the container's cgroup: every line reads "/" inside
            inside = bundle.invoke("exec", bundle.id, "cat", "/proc/self/cgroup")
            assert inside.returncode == 0, inside.stderr
            assert {line.split(":", 2)[2] for line in inside.stdout.splitlines()} == {"/"}, inside.stdout


@pytest.mark.parametrize("cgroupns", [False, True], ids=["no-cgroupns", "cgroupns"])
def test_v1_only_layout_init_and_exec_place_themselves(bundle: Bundle, cgroupns: bool) -> None:
    """With no cgroup2 mount (each runtime call in a mount namespace with
    /sys/fs/cgroup/unified unmounted, as dockyardd runs crun), there is no
    cgroup2 dir to be born in: a plain fork, and the init (and an exec'd
    process) moves itself into every v1 hierarchy, before any cgroup
    namespace is made. No cgroup2 dir is created for the container."""
    from dockyard.cri.shims import unified_umount_wrapper

    launcher = bundle.path / "runtime-v1-only"
    launcher.write_text(unified_umount_wrapper(str(bundle.runtime)))
    launcher.chmod(0o755)
    bundle.runtime = launcher
    others = [ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "cgroup"]
    bundle.config["linux"]["namespaces"] = others + ([{"type": "cgroup"}] if cgroupns else [])
    with bundle.running("sleep 1000") as pid:
        v1 = [name for name in _hierarchies() if name != "unified"]
        unified = Path("/sys/fs/cgroup/unified") / bundle.cgroups_path.lstrip("/")
        assert not unified.exists(), f"{unified} was made on a v1-only view"
        pid_file = bundle.path / "exec.pid"
        done = bundle.invoke("exec", "--detach", "--pid-file", str(pid_file), bundle.id, "sleep", "1000")
        assert done.returncode == 0, done.stderr
        for what, member in (("the init", pid), ("the exec'd process", int(pid_file.read_text()))):
            for name in v1:
                procs = (Path("/sys/fs/cgroup") / name / bundle.cgroups_path.lstrip("/") / "cgroup.procs").read_text()
                assert str(member) in procs.split(), f"{what} (pid {member}) is not in the {name} cgroup"
        if cgroupns:
            inside = bundle.invoke("exec", bundle.id, "cat", "/proc/self/cgroup")
            assert inside.returncode == 0, inside.stderr
            v1_lines = [line.split(":", 2) for line in inside.stdout.splitlines() if not line.startswith("0:")]
            assert {fields[2] for fields in v1_lines} == {"/"}, inside.stdout

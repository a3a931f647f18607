"""dockyard-runc's systemd cgroup driver against the guest's systemd (PID 1).

With --systemd-cgroup and a ``slice:prefix:name`` cgroupsPath the container's
cgroup is a transient scope unit that systemd made over D-Bus: systemd knows
it (systemctl shows it active, delegated, with the limits as its
properties), the container sees the limits in its own cgroup files, exec,
pause and update work on it, and delete leaves no unit and no cgroup.  A
name that a unit holds already is a clear error that leaves nothing and
does not touch that unit.  Debian's runc 1.1.5 runs the same tests, so the
answers are checked against the runtime Dockyard replaces.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from guest_env import CGROUP_ROOT, run

from bundle import SUBREAPER, Bundle

MiB = 1 << 20
SLICE = "dytest.slice"
RUNC = Path("/usr/sbin/runc")


def unit_props(unit: str, *names: str) -> dict[str, str]:
    done = run(["systemctl", "show", unit, *(f"--property={n}" for n in names)], check=True)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def unit_gone(unit: str) -> bool:
    return unit_props(unit, "LoadState")["LoadState"] == "not-found"


@pytest.fixture(scope="module", autouse=True)
def _test_slice() -> Iterator[None]:
    """The tests' slice, which systemd makes when a scope names it; stopped at the end."""
    yield
    run(["systemctl", "stop", SLICE])


@pytest.fixture(params=["dockyard-runc", "runc"])
def sd_bundle(request: pytest.FixtureRequest, new_bundle) -> Iterator[Bundle]:  # type: ignore[no-untyped-def]
    """A bundle for the systemd driver, run by dockyard-runc or Debian's runc;
    afterwards its unit must be gone (the conftest checks state and cgroup)."""
    b = new_bundle(runtime_path=RUNC if request.param == "runc" else None)
    b.config["linux"]["cgroupsPath"] = f"{SLICE}:dy:{b.id}"
    yield b
    unit = f"dy-{b.id}.scope"
    if not unit_gone(unit):
        run(["systemctl", "stop", unit])
        pytest.fail(f"the test left {unit} behind")


def sd(bundle: Bundle, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return bundle.invoke("--systemd-cgroup", *args, timeout=timeout)


def scope_dir(bundle: Bundle) -> Path:
    return CGROUP_ROOT / SLICE / f"dy-{bundle.id}.scope"


def test_scope_holds_the_container_with_its_limits(sd_bundle: Bundle) -> None:
    """create starts the scope dy-<id>.scope in the slice: systemd reports it
    active and delegated, with MemoryMax, TasksMax and CPUQuota from the
    spec; the init's cgroup is the scope's; the container reads the limits
    (and the controllers systemd has no property for) in its own files."""
    b = sd_bundle
    b.config["linux"]["resources"].update({
        "memory": {"limit": 64 * MiB}, "pids": {"limit": 32},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
    })
    b.sh("exec sleep 1000")
    b.write_config()
    done = sd(b, "create", "--bundle", str(b.path), b.id)
    assert done.returncode == 0, done.stderr
    pid = int(b.state()["pid"])
    unit = f"dy-{b.id}.scope"
    props = unit_props(unit, "ActiveState", "Slice", "Delegate", "ControlGroup", "MemoryMax", "TasksMax",
                       "CPUQuotaPerSecUSec")
    assert props == {"ActiveState": "active", "Slice": SLICE, "Delegate": "yes",
                     "ControlGroup": f"/{SLICE}/{unit}", "MemoryMax": str(64 * MiB), "TasksMax": "32",
                     "CPUQuotaPerSecUSec": "500ms"}, props
    assert Path(f"/proc/{pid}/cgroup").read_text() == f"0::/{SLICE}/{unit}\n"
    assert sd(b, "start", b.id).returncode == 0
    inside = sd(b, "exec", b.id, "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max",
                "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu.weight", "/sys/fs/cgroup/cpuset.cpus",
                "/sys/fs/cgroup/hugetlb.2MB.max")
    assert inside.stdout.split() == [str(64 * MiB), "32", "50000", "100000", "20", "0", str(4 * MiB)], inside
    # exec joins the scope: its process is in the same cgroup while it runs.
    procs = sd(b, "exec", b.id, "cat", "/sys/fs/cgroup/cgroup.procs").stdout.split()
    assert len(procs) == 2, procs
    sd(b, "delete", "--force", b.id)
    assert unit_gone(unit)
    assert not scope_dir(b).exists()


def test_pause_update_delete(sd_bundle: Bundle) -> None:
    """pause freezes the scope's cgroup; update changes both systemd's view
    and the files; delete of the stopped container leaves nothing."""
    b = sd_bundle
    b.config["linux"]["resources"].update({"memory": {"limit": 64 * MiB}, "pids": {"limit": 32}})
    b.sh("exec sleep 1000")
    b.write_config()
    assert sd(b, "create", "--bundle", str(b.path), b.id).returncode == 0
    assert sd(b, "start", b.id).returncode == 0
    unit = f"dy-{b.id}.scope"
    assert sd(b, "pause", b.id).returncode == 0
    assert "frozen 1" in (scope_dir(b) / "cgroup.events").read_text()
    assert b.state()["status"] == "paused"
    assert sd(b, "resume", b.id).returncode == 0
    done = sd(b, "update", "--memory", str(32 * MiB), "--pids-limit", "16", b.id)
    assert done.returncode == 0, done.stderr
    assert (scope_dir(b) / "memory.max").read_text().strip() == str(32 * MiB)
    assert (scope_dir(b) / "pids.max").read_text().strip() == "16"
    assert unit_props(unit, "MemoryMax", "TasksMax") == {"MemoryMax": str(32 * MiB), "TasksMax": "16"}
    pid = int(b.state()["pid"])
    pidfd = os.pidfd_open(pid)
    try:
        assert sd(b, "kill", b.id, "KILL").returncode == 0
        assert select.select([pidfd], [], [], 60)[0], "the init outlived SIGKILL for a minute"
    finally:
        os.close(pidfd)
    SUBREAPER.reap_adopted()
    # The init's exit empties the scope, which systemd then stops by itself;
    # delete must be fine whether or not it has yet.
    done = sd(b, "delete", b.id)
    assert done.returncode == 0, done.stderr
    assert unit_gone(unit)
    assert not scope_dir(b).exists()


def test_taken_unit_name_is_a_clear_error(sd_bundle: Bundle) -> None:
    """A scope of that name exists already (systemd-run made it): create
    fails naming the unit, leaves no container, no process and no cgroup
    of its own, and the unit that holds the name runs on untouched."""
    b = sd_bundle
    if b.runtime == RUNC:
        pytest.skip("runc 1.1.5 takes an existing scope of that name as the container's (exit 0); "
                    "the rule is dockyard-runc's")
    unit = f"dy-{b.id}.scope"
    holder = subprocess.Popen(["systemd-run", "--quiet", "--scope", f"--unit={unit}", f"--slice={SLICE}",
                               "sleep", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        run(["systemctl", "is-active", "--wait", unit])  # waits until it is active (or has failed)
        assert unit_props(unit, "ActiveState")["ActiveState"] == "active"
        before = (scope_dir(b) / "cgroup.procs").read_text()
        b.sh("exec sleep 1000")
        b.write_config()
        done = sd(b, "create", "--bundle", str(b.path), b.id)
        assert done.returncode != 0
        assert unit in done.stderr and "exist" in done.stderr.lower(), done.stderr
        assert unit_props(unit, "ActiveState")["ActiveState"] == "active"
        assert (scope_dir(b) / "cgroup.procs").read_text() == before  # nothing joined it
        assert not b.exists()
    finally:
        holder.kill()
        holder.wait()
        run(["systemctl", "stop", unit])
    SUBREAPER.reap_adopted()
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).endswith(b.id)]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def test_default_path_and_bad_paths(new_bundle) -> None:  # type: ignore[no-untyped-def]
    """No cgroupsPath is system.slice:dockyard:<id>; a cgroupfs path under
    --systemd-cgroup is refused naming linux.cgroupsPath, before anything is made."""
    b = new_bundle()
    b.config["linux"]["cgroupsPath"] = ""  # as good as none
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "cgroup"]
    b.sh("cat /proc/self/cgroup")
    b.write_config()
    done = sd(b, "run", "--bundle", str(b.path), b.id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"0::/system.slice/dockyard-{b.id}.scope", done.stdout
    assert unit_gone(f"dockyard-{b.id}.scope")
    b.config["linux"]["cgroupsPath"] = "/dockyard-test/plain"
    b.write_config()
    done = sd(b, "create", "--bundle", str(b.path), b.id)
    assert done.returncode == 1 and "linux.cgroupsPath" in done.stderr and "slice:prefix:name" in done.stderr
    assert not b.exists()


def test_features_say_systemd() -> None:
    from bundle import runtime_binary

    done = run([str(runtime_binary()), "features"], check=True)
    assert json.loads(done.stdout)["linux"]["cgroup"]["systemd"] is True

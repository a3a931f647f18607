"""`runc spec`'s default config with limits, under Debian's runc and under dockyard-runc.

Debian's runc is the reference: its default config with limits runs on the
guest's kernel, the limits show in the v2 files from inside the container,
and a device outside the allow list is refused with EPERM (runc compiles the
list into a cgroup BPF program). If runc's case fails, the guest is wrong;
dockyard-runc must pass the same test with the same bundle.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from guest_env import CGROUP_ROOT, REPO
from guest_env import run as guest_run

from bundle import CGROUP_PARENT, SUBREAPER, container_id

RUNC = shutil.which("runc")
RUNTIMES = {"runc": RUNC, "dockyard-runc": str(REPO / ".venv" / "bin" / "dockyard-runc")}
LIMITS = {
    "devices": [{"allow": False, "access": "rwm"}],
    "memory": {"limit": 64 << 20},
    "pids": {"limit": 32},
    "cpu": {"quota": 50000, "period": 100000},
}


def scratch_device() -> tuple[int, int]:
    """major:minor of the guest's scratch disk (hack/guest/run.py's null-co virtio disk)."""
    major, minor = Path("/sys/block/vda/dev").read_text().split(":")
    return int(major), int(minor)


def default_spec(tmp_path: Path, rootfs: Path, script: str) -> dict[str, Any]:
    """`runc spec`'s config (on a v2 host it asks for a cgroup namespace), made to run `sh -c script`."""
    if RUNC is None:
        pytest.skip("Debian's runc is not installed (hack/apt-packages.txt lists it)")
    guest_run([RUNC, "spec", "--bundle", str(tmp_path)], check=True)
    config: dict[str, Any] = json.loads((tmp_path / "config.json").read_text())
    assert {"type": "cgroup"} in config["linux"]["namespaces"]
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", script]
    return config


def run(runtime: str, tmp_path: Path, config: dict[str, Any], cid: str) -> subprocess.CompletedProcess[str]:
    config["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{cid}"
    (tmp_path / "config.json").write_text(json.dumps(config))
    binary = RUNTIMES[runtime]
    assert binary is not None
    done = SUBREAPER.run(
        [binary, "--root", str(tmp_path / "state"), "run", "--bundle", str(tmp_path), cid],
        timeout=60, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert not (CGROUP_ROOT / CGROUP_PARENT / cid).exists(), f"{runtime} left its cgroup"
    return done


@pytest.mark.parametrize("network", ["private", "host"])
@pytest.mark.parametrize("runtime", ["runc", "dockyard-runc"])
def test_default_spec_with_limits(
    tmp_path: Path, rootfs: Path, request: pytest.FixtureRequest, runtime: str, network: str
) -> None:
    """The default config with memory, pids and cpu limits runs; the container sees its own cgroup with those limits.

    With the host's network namespace /sys is the host's (a sysfs belongs to
    its network namespace), so the host's cgroup2 mount comes along, and the
    container's own cgroup2 mount goes where it is (this was EBUSY).
    """
    config = default_spec(
        tmp_path, rootfs,
        "cat /proc/self/cgroup /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max",
    )
    if network == "host":
        config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"]
    config["linux"]["resources"] = LIMITS
    done = run(runtime, tmp_path, config, container_id(request.node.name))
    assert done.returncode == 0, done
    assert done.stdout.split("\n")[:4] == ["0::/", str(64 << 20), "32", "50000 100000"], done


@pytest.mark.parametrize("runtime", ["runc", "dockyard-runc"])
def test_default_spec_denies_unlisted_device(tmp_path: Path, rootfs: Path, request: pytest.FixtureRequest, runtime: str) -> None:
    """A device outside linux.resources.devices' allow list cannot be opened (EPERM), though the container can mknod it."""
    major, minor = scratch_device()
    config = default_spec(
        tmp_path, rootfs,
        f"mknod /dev/scratch b {major} {minor} && head -c 1 /dev/scratch >/dev/null && echo scratch-open",
    )
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_MKNOD")
    config["linux"]["resources"] = LIMITS
    done = run(runtime, tmp_path, config, container_id(request.node.name))
    assert "scratch-open" not in done.stdout
    assert "Operation not permitted" in done.stderr, done
    assert done.returncode != 0

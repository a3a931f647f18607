"""v2 device rules, enforced by the device program dockyard-runc attaches to the container's cgroup.

On cgroup v2 the only enforcement is a BPF_PROG_TYPE_CGROUP_DEVICE program
(runtime/cgroups/v2/device_filter.py compiles it): these open device nodes
from inside containers and read the kernel's answer. Nodes are made with
mknod inside the container (CAP_MKNOD, and mknod itself allowed as runc
allows it), so only the device rules stand between the process and the
device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from guest_env import CGROUP_ROOT

from bundle import Bundle
from dockyard.runtime.cgroups.v2.device_program import attached


def scratch() -> tuple[int, int]:
    """major:minor of the guest's scratch disk (a null-co virtio disk: reads give zeros, writes vanish)."""
    major, minor = Path("/sys/block/vda/dev").read_text().split(":")
    return int(major), int(minor)


def with_mknod(bundle: Bundle) -> None:
    caps = bundle.config["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = [*caps[kind], "CAP_MKNOD"]


def scratch_rule(access: str, allow: bool = True) -> dict[str, Any]:
    major, minor = scratch()
    return {"allow": allow, "type": "b", "major": major, "minor": minor, "access": access}


PROBE = (
    "mknod /dev/scratch b {major} {minor};"
    " head -c 1 /dev/scratch >/dev/null && echo read-ok;"
    " echo x | dd of=/dev/scratch bs=1 count=1 && echo write-ok;"
    " head -c 1 /dev/null && echo null-ok"
)


def test_denied_device_is_eperm_and_allowed_one_works(bundle: Bundle) -> None:
    """Under deny-all (base_config) a block device the rules do not allow is EPERM to open; /dev/null is allowed."""
    with_mknod(bundle)
    major, minor = scratch()
    bundle.sh(PROBE.format(major=major, minor=minor))
    done = bundle.run()
    assert "Operation not permitted" in done.stderr, done
    assert done.stdout.splitlines() == ["null-ok"], done
    assert "ignored" not in done.stderr, "device rules were reported as not enforced"


def test_read_only_rule_allows_read_and_denies_write(bundle: Bundle) -> None:
    """`b M:N r` allows reading the device and refuses opening it for writing."""
    with_mknod(bundle)
    bundle.config["linux"]["resources"]["devices"].append(scratch_rule("r"))
    major, minor = scratch()
    bundle.sh(PROBE.format(major=major, minor=minor))
    done = bundle.run()
    assert done.stdout.splitlines() == ["read-ok", "null-ok"], done
    assert "Operation not permitted" in done.stderr, done


def test_later_deny_overrides_earlier_allow(bundle: Bundle) -> None:
    """A deny after an allow for the same device wins (rules apply in order)."""
    with_mknod(bundle)
    bundle.config["linux"]["resources"]["devices"] += [scratch_rule("rw"), scratch_rule("w", allow=False)]
    major, minor = scratch()
    bundle.sh(PROBE.format(major=major, minor=minor))
    done = bundle.run()
    assert done.stdout.splitlines() == ["read-ok", "null-ok"], done


def test_update_replaces_the_device_program(bundle: Bundle) -> None:
    """`update` with new device rules attaches their program and detaches the old one: one program, new answers."""
    with_mknod(bundle)
    major, minor = scratch()
    bundle.start_detached("exec sleep 1000")
    cgroup = CGROUP_ROOT / bundle.cgroups_path.lstrip("/")
    before = attached(str(cgroup))
    assert len(before) == 1, before
    made = bundle.invoke("exec", bundle.id, "mknod", "/dev/scratch", "b", str(major), str(minor))
    assert made.returncode == 0, made.stderr

    def read_scratch() -> str:
        done = bundle.invoke("exec", bundle.id, "sh", "-c", "head -c 1 /dev/scratch >/dev/null && echo read-ok")
        return done.stdout.strip() or done.stderr.strip()

    assert "Operation not permitted" in read_scratch()

    resources = bundle.path / "resources.json"
    resources.write_text(json.dumps({"devices": [{"allow": False, "access": "rwm"}, scratch_rule("r")]}))
    done = bundle.invoke("update", "--resources", str(resources), bundle.id)
    assert done.returncode == 0, done.stderr
    after = attached(str(cgroup))
    assert len(after) == 1 and after != before, (before, after)
    assert read_scratch() == "read-ok"

    resources.write_text(json.dumps({"devices": [{"allow": False, "access": "rwm"}]}))
    assert bundle.invoke("update", "--resources", str(resources), bundle.id).returncode == 0
    assert "Operation not permitted" in read_scratch()
    assert len(attached(str(cgroup))) == 1
    # The runtime's default allowances survive an update that names devices.
    assert bundle.invoke("exec", bundle.id, "sh", "-c", "head -c 1 /dev/null").returncode == 0
    bundle.delete(force=True)

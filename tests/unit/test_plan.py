"""Spec -> ProcessPlan: everything the init needs, computed before the fork."""

from __future__ import annotations

import copy
import ctypes.util
import resource
from typing import Any

import pytest

from dockyard.runtime.kernel.capabilities import CAPABILITIES
from dockyard.runtime.kernel.errors import InvalidSpec
from dockyard.runtime.plan import DEFAULT_PATH, plan_process
from dockyard.runtime.spec import Spec, parse_spec

LAST_CAP = 40  # CAP_CHECKPOINT_RESTORE

BASE: dict[str, Any] = {
    "ociVersion": "1.2.0",
    "root": {"path": "rootfs"},
    "process": {
        "args": ["/bin/app", "--flag"],
        "env": ["HOME=/root", "PATH=/opt/bin:/bin"],
        "cwd": "/srv",
        "user": {"uid": 1000, "gid": 100, "umask": 0o22, "additionalGids": [5, 6]},
        "noNewPrivileges": True,
        "oomScoreAdj": 10,
        "apparmorProfile": "prof",
        "selinuxLabel": "label",
    },
}


def spec_with(**process: Any) -> Spec:
    raw = copy.deepcopy(BASE)
    raw["process"].update(process)
    return parse_spec(raw)


def plan(spec: Spec, last_cap: int = LAST_CAP) -> Any:
    assert spec.process is not None
    return plan_process(spec.process, spec, last_cap)


def bits(*names: str) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITIES[name]
    return mask


def test_plain_fields_copied() -> None:
    p = plan(spec_with())
    assert p.args == ("/bin/app", "--flag")
    assert p.env == ("HOME=/root", "PATH=/opt/bin:/bin")
    assert (p.cwd, p.uid, p.gid, p.additional_gids, p.umask) == ("/srv", 1000, 100, (5, 6), 0o22)
    assert (p.no_new_privileges, p.oom_score_adj, p.apparmor_profile, p.selinux_label) == (True, 10, "prof", "label")
    assert (p.terminal, p.console_size, p.caps, p.seccomp, p.rlimits) == (False, None, None, None, ())
    assert p.last_cap == LAST_CAP


@pytest.mark.parametrize(("env", "path"), [
    (["HOME=/root", "PATH=/opt/bin:/bin"], "/opt/bin:/bin"),
    (["HOME=/root"], DEFAULT_PATH),
    ([], DEFAULT_PATH),
    (["XPATH=/x", "PATHX=/y"], DEFAULT_PATH),
    (["PATH=/first", "PATH=/second"], "/first"),
])
def test_path_env(env: list[str], path: str) -> None:
    assert plan(spec_with(env=env)).path_env() == path


def test_capability_masks() -> None:
    caps = {
        "bounding": ["CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_KILL", "CAP_CHOWN"],
        "inheritable": [],
        "ambient": ["CAP_CHOWN"],
    }
    c = plan(spec_with(capabilities=caps)).caps
    assert c is not None
    assert c.bounding == bits("CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE") == (1 << 5) | 1 | (1 << 10)
    assert c.effective == bits("CAP_KILL")
    assert c.permitted == bits("CAP_KILL", "CAP_CHOWN")
    assert c.inheritable == 0
    assert c.ambient == bits("CAP_CHOWN")


def test_capabilities_above_last_cap_dropped() -> None:
    """A name this table knows but the kernel does not (bit 39, 40 on a 5.8 kernel) is left out."""
    caps = {"bounding": ["CAP_CHECKPOINT_RESTORE", "CAP_BPF", "CAP_PERFMON", "CAP_CHOWN"]}
    c = plan(spec_with(capabilities=caps), last_cap=38).caps
    assert c is not None and c.bounding == bits("CAP_CHOWN", "CAP_PERFMON") == 1 | (1 << 38)


@pytest.mark.parametrize("kind", ["bounding", "effective", "permitted", "inheritable", "ambient"])
def test_unknown_capability_names_field(kind: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        plan(spec_with(capabilities={kind: ["CAP_KILL", "CAP_FLY"]}))
    assert info.value.field == f"process.capabilities.{kind}[1]"


def test_rlimits_parsed() -> None:
    rl = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    assert plan(spec_with(rlimits=rl)).rlimits == ((resource.RLIMIT_NOFILE, 1024, 4096),
                                                  (resource.RLIMIT_CORE, 0, 0))


def test_bad_rlimit_names_field() -> None:
    with pytest.raises(InvalidSpec) as info:
        plan(spec_with(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                                {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}]))
    assert info.value.field == "process.rlimits[1].type"


@pytest.mark.parametrize(("terminal", "size", "ok"), [
    (True, {"height": 24, "width": 80}, True),
    (True, {"height": 0, "width": 80}, False),
    (True, {"height": 24, "width": 0}, False),
    (True, {"height": 0, "width": 0}, False),
    (False, {"height": 0, "width": 0}, True),  # no terminal: the size is never used
])
def test_console_size(terminal: bool, size: dict[str, int], ok: bool) -> None:
    spec = spec_with(terminal=terminal, consoleSize=size)
    if ok:
        p = plan(spec)
        assert p.terminal is terminal and p.console_size == (size["height"], size["width"])
        return
    with pytest.raises(InvalidSpec) as info:
        plan(spec)
    assert info.value.field == "process.consoleSize"


def test_field_prefix_for_exec() -> None:
    spec = spec_with(capabilities={"bounding": ["CAP_NOPE"]})
    assert spec.process is not None
    with pytest.raises(InvalidSpec) as info:
        plan_process(spec.process, spec, LAST_CAP, field="--process")
    assert info.value.field == "--process.capabilities.bounding[0]"


needs_libseccomp = pytest.mark.skipif(ctypes.util.find_library("seccomp") is None,
                                      reason="libseccomp is not installed (Debian: libseccomp2)")


@needs_libseccomp
def test_seccomp_compiled() -> None:
    raw = copy.deepcopy(BASE)
    raw["linux"] = {"seccomp": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }}
    p = plan(parse_spec(raw))
    assert p.seccomp is not None
    assert len(p.seccomp.program) > 0
    assert len(p.seccomp.program) % 8 == 0  # struct sock_filter is 8 bytes
    assert isinstance(p.seccomp.flags, int)


def test_bad_seccomp_fails_plan() -> None:
    raw = copy.deepcopy(BASE)
    raw["linux"] = {"seccomp": {"defaultAction": "SCMP_ACT_BOGUS"}}
    with pytest.raises(InvalidSpec) as info:
        plan(parse_spec(raw))
    assert info.value.field.startswith("linux.seccomp")

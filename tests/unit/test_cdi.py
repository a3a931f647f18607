"""CDI devices: names, spec files (validity, directory priority, conflicts), resolution errors that
name the CRI field, and the edits a device makes to the OCI spec (with a fake stat of host nodes)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dockyard.cri.errors import InvalidArgument
from dockyard.cri.oci.cdi import (
    apply_devices,
    build_registry,
    load_spec_dirs,
    parse_qualified,
    parse_spec,
    requested_devices,
    resolve,
)


@pytest.mark.parametrize(("name", "ok"), [
    ("vendor.com/gpu=0", True), ("example.org/fpga-x=card_1.a:b", True), ("a/b=c", True),
    ("vendor.com/gpu", False), ("gpu=0", False), ("vendor.com/gpu=", False), ("vendor.com/gpu=-x", False),
    ("vendor.com/a/b=0", False), ("/gpu=0", False), ("vendor.com/gpu=0 ", False),
])
def test_qualified_names(name: str, ok: bool) -> None:
    if ok:
        assert parse_qualified(name, "f") == tuple(name.split("="))
    else:
        with pytest.raises(InvalidArgument, match=r"^f: .* is not a qualified CDI device name"):
            parse_qualified(name, "f")


def test_requested_devices_from_the_field_and_annotations() -> None:
    """In order, each once, each with the field that asked; other annotations are no requests."""
    wanted = requested_devices(["v.com/c=a", "v.com/c=b"], {
        "cdi.k8s.io/plugin": "v.com/c=b, v.com/c=z", "io.kubernetes.x": "v.com/c=q"})
    assert wanted == [("v.com/c=a", "config.CDI_devices[0].name"), ("v.com/c=b", "config.CDI_devices[1].name"),
                      ("v.com/c=z", "config.annotations[cdi.k8s.io/plugin]")]
    with pytest.raises(InvalidArgument, match=r"^config.annotations\[cdi.k8s.io/x\]: 'nope'"):
        requested_devices([], {"cdi.k8s.io/x": "nope"})
    with pytest.raises(InvalidArgument, match=r"^config.CDI_devices\[1\].name"):
        requested_devices(["v.com/c=a", "bad"], {})


def spec(kind: str = "vendor.com/dev", *devices: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"cdiVersion": "0.6.0", "kind": kind, "devices": list(devices) or [{"name": "a"}], **extra}


@pytest.mark.parametrize(("doc", "error"), [
    ([], "not a CDI spec"),
    ({**spec(), "cdiVersion": "1"}, "cdiVersion"),
    (spec("vendor"), "kind: 'vendor' is not vendor.com/class"),
    ({**spec(), "devices": []}, "devices: a spec file defines at least one device"),
    (spec("v.com/c", {"name": "a"}, {"name": "a"}), "devices[1].name: 'a' is defined twice"),
    (spec("v.com/c", {"name": "-a"}), "devices[0].name"),
    (spec("v.com/c", {"name": "a", "containerEdits": {"env": ["NOEQUALS"]}}), "devices[0].containerEdits.env[0]"),
    (spec("v.com/c", {"name": "a", "containerEdits": {"deviceNodes": [{"path": "dev/x"}]}}), "deviceNodes[0].path"),
    (spec("v.com/c", {"name": "a", "containerEdits": {"deviceNodes": [{"path": "/dev/x", "permissions": "rx"}]}}),
     "deviceNodes[0].permissions"),
    (spec("v.com/c", {"name": "a", "containerEdits": {"hooks": [{"hookName": "later", "path": "/bin/true"}]}}),
     "hooks[0].hookName"),
    (spec("v.com/c", {"name": "a", "containerEdits": {"mounts": [{"hostPath": "/x", "containerPath": "y"}]}}),
     "mounts[0]"),
])
def test_invalid_spec_files(doc: object, error: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_spec(doc, "/etc/cdi/x.json")
    assert error in str(info.value)


def test_registry_priority_conflicts_and_broken_files() -> None:
    """A later directory hides an earlier one's device; two files of one directory clash; a broken
    file is skipped and its error told to whoever asks for a device of its kind."""
    low = {"/etc/cdi/a.json": spec("v.com/c", {"name": "x"}, {"name": "y"}),
           "/etc/cdi/b.json": spec("v.com/c", {"name": "z"}, {"name": "y2"})}
    high = {"/run/cdi/a.json": spec("v.com/c", {"name": "x", "containerEdits": {"env": ["HIGH=1"]}}),
            "/run/cdi/c.json": spec("v.com/k", {"name": "dup"}), "/run/cdi/d.json": spec("v.com/k", {"name": "dup"}),
            "/run/cdi/broken.json": ValueError("cannot read it: Expecting value")}
    reg = build_registry([("/etc/cdi", low), ("/run/cdi", high)])
    assert reg.devices["v.com/c=x"].source == "/run/cdi/a.json"
    assert reg.devices["v.com/c=y"].source == "/etc/cdi/a.json"
    assert reg.conflicts == {"v.com/k=dup": ["/run/cdi/c.json", "/run/cdi/d.json"]}
    with pytest.raises(InvalidArgument) as info:
        resolve(reg, [("v.com/k=dup", "config.CDI_devices[0].name")])
    assert str(info.value) == ("config.CDI_devices[0].name: CDI device 'v.com/k=dup' is defined by more than one "
                               "spec file: /run/cdi/c.json, /run/cdi/d.json")
    with pytest.raises(InvalidArgument) as info:
        resolve(reg, [("v.com/c=w", "config.CDI_devices[2].name")])
    message = str(info.value)
    assert message.startswith("config.CDI_devices[2].name: CDI device 'v.com/c=w' is not defined in /etc/cdi, /run/cdi "
                              "(kind v.com/c has: v.com/c=x, v.com/c=y, v.com/c=y2, v.com/c=z)")
    assert "/run/cdi/broken.json was skipped: cannot read it" in message
    with pytest.raises(InvalidArgument, match="no spec file defines kind other.io/gpu"):
        resolve(reg, [("other.io/gpu=0", "f")])
    assert [d.name for d in resolve(reg, [("v.com/c=y", "f"), ("v.com/c=x", "g")])] == ["y", "x"]


def fake_stat(nodes: dict[str, tuple[int, int, int]]) -> Any:
    """A stat of host device nodes: path -> (S_IF* type, major, minor)."""
    def stat_path(path: str) -> SimpleNamespace:
        if path not in nodes:
            raise FileNotFoundError(2, "No such file or directory", path)
        kind, major, minor = nodes[path]
        return SimpleNamespace(st_mode=kind | 0o660, st_rdev=os.makedev(major, minor))
    return stat_path


BASE = {"process": {"user": {"uid": 1000, "gid": 1000}, "env": ["PATH=/bin", "MODE=old"]},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc", "options": []},
                   {"destination": "/data/deep", "type": "bind", "source": "/x", "options": ["rbind"]}],
        "linux": {"devices": [], "resources": {"devices": [{"allow": False, "access": "rwm"}]}}}


def apply(edits_by_device: dict[str, dict[str, Any]], common: dict[str, Any] | None = None,
          nodes: dict[str, tuple[int, int, int]] | None = None) -> dict[str, Any]:
    doc = spec("v.com/c", *({"name": n, "containerEdits": e} for n, e in edits_by_device.items()),
               **({"containerEdits": common} if common else {}))
    reg = build_registry([("/etc/cdi", {"/etc/cdi/v.json": doc})])
    wanted = [(f"v.com/c={n}", f"config.CDI_devices[{i}].name") for i, n in enumerate(edits_by_device)]
    return apply_devices(json.loads(json.dumps(BASE)), resolve(reg, wanted), wanted, fake_stat(nodes or {}))


def test_edits_applied() -> None:
    """Env replaces or appends; device nodes filled in from the host node, owned by the process's user,
    with an allow rule; a mount at a taken destination replaces it and mounts go by depth; hooks by
    name; extra gids (0 ignored); the file's common edits once for two of its devices."""
    out = apply(
        {"a": {"env": ["MODE=new", "A=1"], "deviceNodes": [{"path": "/dev/card0", "hostPath": "/dev/dri/card1"}],
               "mounts": [{"hostPath": "/opt/lib", "containerPath": "/usr/lib/vendor", "options": ["ro", "bind"]},
                          {"hostPath": "/y", "containerPath": "/data/deep"}],
               "hooks": [{"hookName": "createContainer", "path": "/usr/bin/hook", "args": ["hook", "x"], "timeout": 5}],
               "additionalGids": [0, 44]},
         "b": {"deviceNodes": [{"path": "/dev/null2", "type": "c", "major": 1, "minor": 3, "permissions": "none",
                                "uid": 0, "gid": 0}]}},
        common={"env": ["COMMON=1"], "additionalGids": [44]},
        nodes={"/dev/dri/card1": (stat.S_IFCHR, 226, 1)})
    assert out["process"]["env"] == ["PATH=/bin", "MODE=new", "COMMON=1", "A=1"]
    assert out["process"]["user"]["additionalGids"] == [44]
    assert out["linux"]["devices"] == [
        {"path": "/dev/card0", "type": "c", "major": 226, "minor": 1, "fileMode": 0o660, "uid": 1000, "gid": 1000},
        {"path": "/dev/null2", "type": "c", "major": 1, "minor": 3, "uid": 0, "gid": 0},
    ]
    assert out["linux"]["resources"]["devices"][1:] == [
        {"allow": True, "type": "c", "major": 226, "minor": 1, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": ""},
    ]
    assert [(m["destination"], m["source"], m["options"]) for m in out["mounts"]] == [
        ("/proc", "proc", []), ("/data/deep", "/y", ["rbind"]), ("/usr/lib/vendor", "/opt/lib", ["ro", "bind"])]
    assert out["hooks"] == {"createContainer": [{"path": "/usr/bin/hook", "args": ["hook", "x"], "timeout": 5}]}


@pytest.mark.parametrize(("edits", "nodes", "error"), [
    ({"deviceNodes": [{"path": "/dev/missing"}]}, {}, "config.CDI_devices[0].name: host device /dev/missing"),
    ({"deviceNodes": [{"path": "/dev/x", "type": "b"}]}, {"/dev/x": (stat.S_IFCHR, 1, 1)},
     "config.CDI_devices[0].name: the CDI spec says /dev/x is type b, /dev/x is c"),
    ({"deviceNodes": [{"path": "/dev/x"}]}, {"/dev/x": (stat.S_IFREG, 0, 0)},
     "config.CDI_devices[0].name: /dev/x of the CDI spec is not a device node"),
    ({"intelRdt": {"closID": "x"}}, {}, "config.CDI_devices[0].name: the CDI device needs intelRdt"),
    ({"netDevices": [{"hostInterfaceName": "eth1", "name": "net1"}]}, {}, "config.CDI_devices[0].name: the CDI device needs netDevices"),
])
def test_edits_refused(edits: dict[str, Any], nodes: dict[str, tuple[int, int, int]], error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        apply({"a": edits}, nodes=nodes)
    assert str(info.value).startswith(error), str(info.value)


def test_a_fully_described_node_needs_no_host_node() -> None:
    out = apply({"a": {"deviceNodes": [{"path": "/dev/virt", "type": "b", "major": 8, "minor": 0}]}})
    assert out["linux"]["devices"][0]["type"] == "b" and out["linux"]["resources"]["devices"][-1]["major"] == 8


def test_load_spec_dirs(tmp_path: Path) -> None:
    """JSON and YAML files are read, other files ignored, a missing directory has no devices,
    an unreadable file is reported."""
    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    (etc / "a.json").write_text(json.dumps(spec("v.com/c", {"name": "x"})))
    (etc / "b.yaml").write_text("cdiVersion: 0.5.0\nkind: v.com/y\ndevices:\n- name: one\n")
    (etc / "README").write_text("not a spec")
    (etc / "bad.json").write_text("{")
    reg = load_spec_dirs([str(etc), str(run)])
    assert sorted(reg.devices) == ["v.com/c=x", "v.com/y=one"]
    assert list(reg.broken) == [str(etc / "bad.json")]

"""config.json -> Spec: every field's validation names the field path, and
every accepted value lands on the right attribute."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dockyard.runtime.default_spec import default_spec
from dockyard.runtime.kernel.errors import InvalidArgument, InvalidSpec
from dockyard.runtime.spec import Spec, parse_process, parse_spec

Path = tuple[str | int, ...]


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()

BASE: dict[str, Any] = {
    "ociVersion": "1.2.0",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "true"],
        "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
                         for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "box",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    ],
    "hooks": {kind: [{"path": "/bin/true", "args": ["true"], "timeout": 5}]
              for kind in ("prestart", "createRuntime", "createContainer", "startContainer",
                           "poststart", "poststop")},
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
    },
    "annotations": {"org.example.key": "value"},
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def mutate(cfg: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """Set (or, with DELETE, remove) the item at ``path``, creating objects on the way."""
    node: Any = cfg
    for key in path[:-1]:
        if isinstance(key, str) and key not in node:
            node[key] = {}
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


def invalid_field(cfg: dict[str, Any]) -> str:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(cfg)
    # The field is both the attribute and the error's target, and shows in the message.
    assert info.value.target == info.value.field
    assert info.value.field in str(info.value)
    return info.value.field


def test_base_parses() -> None:
    spec = parse_spec(base())
    assert isinstance(spec, Spec)
    assert spec.oci_version == "1.2.0"
    assert spec.root.path == "rootfs" and spec.root.readonly is True
    assert spec.process is not None
    assert spec.process.args == ("sh", "-c", "true")
    assert spec.hostname == "box"
    assert [m.destination for m in spec.mounts] == ["/proc", "/dev"]
    assert spec.mounts[1].options == ("nosuid", "mode=755")
    assert [ns.type for ns in spec.linux.namespaces] == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert spec.linux.resources == {"devices": [{"allow": False, "access": "rwm"}]}
    assert spec.annotations == {"org.example.key": "value"}


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_parses(rootless: bool) -> None:
    """What `dockyard-runc spec` writes must be accepted by `create`."""
    spec = parse_spec(default_spec(rootless=rootless))
    assert (spec.linux.namespace("user") is not None) == rootless


def test_not_an_object() -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec([])
    assert info.value.field == "config.json"


INVALID: list[tuple[Path, Any, str]] = [
    # ociVersion
    (("ociVersion",), DELETE, "ociVersion"),
    (("ociVersion",), "2.0", "ociVersion"),
    (("ociVersion",), 1.2, "ociVersion"),
    # root
    (("root",), DELETE, "root"),
    (("root",), "rootfs", "root"),
    (("root", "path"), DELETE, "root.path"),
    (("root", "path"), "", "root.path"),
    (("root", "readonly"), "yes", "root.readonly"),
    # process
    (("process",), ["sh"], "process"),
    (("process", "args"), [], "process.args"),
    (("process", "args"), DELETE, "process.args"),
    (("process", "args"), "sh", "process.args"),
    (("process", "args"), ["sh", 1], "process.args[1]"),
    (("process", "args"), [""], "process.args"),
    (("process", "args"), ["sh", "a\0b"], "process.args[1]"),
    (("process", "args"), ["A" * 131072], "process.args[0]"),           # execve's MAX_ARG_STRLEN, with its NUL
    (("process", "args"), ["sh", "\u00e9" * 65536], "process.args[1]"),  # 2 bytes each in UTF-8
    (("process", "env"), ["X=" + "y" * 131070], "process.env[0]"),
    (("process", "env"), ["A=\0"], "process.env[0]"),
    (("process", "cwd"), "tmp", "process.cwd"),
    (("process", "cwd"), 7, "process.cwd"),
    (("process", "env"), ["PATH=/bin", "NOEQUALS"], "process.env[1]"),
    (("process", "env"), [None], "process.env[0]"),
    (("process", "terminal"), 1, "process.terminal"),
    (("process", "user"), [], "process.user"),
    (("process", "user", "uid"), -1, "process.user.uid"),
    (("process", "user", "uid"), 2**32, "process.user.uid"),
    (("process", "user", "uid"), "0", "process.user.uid"),
    (("process", "user", "uid"), True, "process.user.uid"),
    (("process", "user", "uid"), 1.0, "process.user.uid"),
    (("process", "user", "gid"), -1, "process.user.gid"),
    (("process", "user", "gid"), 2**32, "process.user.gid"),
    (("process", "user", "gid"), "0", "process.user.gid"),
    (("process", "user", "gid"), False, "process.user.gid"),
    (("process", "user", "umask"), 0o1000, "process.user.umask"),
    (("process", "user", "umask"), -1, "process.user.umask"),
    (("process", "user", "additionalGids"), [1, 2, -3], "process.user.additionalGids[2]"),
    (("process", "user", "additionalGids"), ["5"], "process.user.additionalGids[0]"),
    (("process", "user", "additionalGids"), [True], "process.user.additionalGids[0]"),
    (("process", "user", "additionalGids"), [2**32], "process.user.additionalGids[0]"),
    (("process", "user", "additionalGids"), 5, "process.user.additionalGids"),
    (("process", "consoleSize"), [24, 80], "process.consoleSize"),
    (("process", "consoleSize"), {"width": 80}, "process.consoleSize.height"),
    (("process", "consoleSize"), {"height": 24}, "process.consoleSize.width"),
    (("process", "consoleSize"), {"height": -1, "width": 80}, "process.consoleSize.height"),
    (("process", "consoleSize"), {"height": 24, "width": 0x10000}, "process.consoleSize.width"),
    (("process", "capabilities"), ["CAP_KILL"], "process.capabilities"),
    (("process", "capabilities", "bounding"), "CAP_KILL", "process.capabilities.bounding"),
    (("process", "capabilities", "effective"), {"CAP_KILL": True}, "process.capabilities.effective"),
    (("process", "capabilities", "inheritable"), "CAP_KILL", "process.capabilities.inheritable"),
    (("process", "capabilities", "permitted"), 1, "process.capabilities.permitted"),
    (("process", "capabilities", "ambient"), "CAP_KILL", "process.capabilities.ambient"),
    (("process", "capabilities", "ambient"), ["CAP_KILL", 3], "process.capabilities.ambient[1]"),
    (("process", "rlimits"), {"type": "RLIMIT_NOFILE"}, "process.rlimits"),
    (("process", "rlimits"), [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}, "RLIMIT_CORE"],
     "process.rlimits[1]"),
    (("process", "noNewPrivileges"), "true", "process.noNewPrivileges"),
    (("process", "noNewPrivileges"), 1, "process.noNewPrivileges"),
    (("process", "oomScoreAdj"), -1001, "process.oomScoreAdj"),
    (("process", "oomScoreAdj"), 1001, "process.oomScoreAdj"),
    (("process", "oomScoreAdj"), "5", "process.oomScoreAdj"),
    (("process", "apparmorProfile"), 0, "process.apparmorProfile"),
    (("process", "selinuxLabel"), [], "process.selinuxLabel"),
    # hostname / domainname
    (("hostname",), 5, "hostname"),
    (("domainname",), 5, "domainname"),
    # mounts
    (("mounts",), {}, "mounts"),
    (("mounts", 1), "/dev", "mounts[1]"),
    (("mounts", 1, "destination"), "dev", "mounts[1].destination"),
    (("mounts", 1, "destination"), DELETE, "mounts[1].destination"),
    (("mounts", 0, "type"), 1, "mounts[0].type"),
    (("mounts", 0, "source"), 1, "mounts[0].source"),
    (("mounts", 1, "options"), "nosuid", "mounts[1].options"),
    (("mounts", 1, "options"), ["nosuid", 1], "mounts[1].options[1]"),
    (("mounts", 1, "uidMappings"), {}, "mounts[1].uidMappings"),
    (("mounts", 1, "uidMappings"), [5], "mounts[1].uidMappings[0]"),
    (("mounts", 1, "uidMappings"), [{"hostID": 0, "size": 1}], "mounts[1].uidMappings[0].containerID"),
    (("mounts", 1, "uidMappings"), [{"containerID": 0, "size": 1}], "mounts[1].uidMappings[0].hostID"),
    (("mounts", 1, "uidMappings"), [{"containerID": 0, "hostID": 0}], "mounts[1].uidMappings[0].size"),
    (("mounts", 1, "uidMappings"), [{"containerID": 0, "hostID": 0, "size": 0}],
     "mounts[1].uidMappings[0].size"),
    (("mounts", 1, "uidMappings"), [{"containerID": -1, "hostID": 0, "size": 1}],
     "mounts[1].uidMappings[0].containerID"),
    (("mounts", 1, "gidMappings"), [{"containerID": 0, "hostID": 2**32, "size": 1}],
     "mounts[1].gidMappings[0].hostID"),
    (("mounts", 1, "gidMappings"), [{"containerID": 0, "hostID": 0, "size": "1"}],
     "mounts[1].gidMappings[0].size"),
    # annotations
    (("annotations",), ["a"], "annotations"),
    (("annotations",), {"a": "b", "n": 1}, "annotations.n"),
    (("annotations",), {"t": True}, "annotations.t"),
    # linux
    (("linux",), [], "linux"),
    (("linux", "namespaces"), {"type": "pid"}, "linux.namespaces"),
    (("linux", "namespaces", 2), "ipc", "linux.namespaces[2]"),
    (("linux", "namespaces", 2, "type"), "net", "linux.namespaces[2].type"),
    (("linux", "namespaces", 2, "type"), DELETE, "linux.namespaces[2].type"),
    (("linux", "namespaces", 2, "type"), "pid", "linux.namespaces[2].type"),  # duplicate of [0]
    (("linux", "namespaces", 1, "path"), "proc/1/ns/net", "linux.namespaces[1].path"),
    (("linux", "namespaces", 1, "path"), 1, "linux.namespaces[1].path"),
    (("linux", "uidMappings"), [{"containerID": 0, "hostID": 1000, "size": 1}], "linux.uidMappings"),
    (("linux", "uidMappings"), [{"containerID": 0, "hostID": 1000}], "linux.uidMappings[0].size"),
    (("linux", "devices"), [{"path": "/dev/null"}, "x"], "linux.devices[1]"),
    (("linux", "cgroupsPath"), 1, "linux.cgroupsPath"),
    (("linux", "resources"), [], "linux.resources"),
    (("linux", "rootfsPropagation"), "recursive", "linux.rootfsPropagation"),
    (("linux", "rootfsPropagation"), 1, "linux.rootfsPropagation"),
    (("linux", "seccomp"), "unconfined", "linux.seccomp"),
    (("linux", "sysctl"), ["net.ipv4.ip_forward=1"], "linux.sysctl"),
    (("linux", "sysctl"), {"net.ipv4.ip_forward": 1}, "linux.sysctl.net.ipv4.ip_forward"),
    (("linux", "maskedPaths"), ["/proc/kcore", None], "linux.maskedPaths[1]"),
    (("linux", "readonlyPaths"), "/proc/sys", "linux.readonlyPaths"),
    (("linux", "mountLabel"), 1, "linux.mountLabel"),
    (("linux", "personality"), "LINUX", "linux.personality"),
    (("linux", "personality"), {}, "linux.personality.domain"),
    (("linux", "personality"), {"domain": "PER_LINUX"}, "linux.personality.domain"),
    (("linux", "timeOffsets"), [], "linux.timeOffsets"),
    (("linux", "timeOffsets"), {"realtime": {"secs": 1}}, "linux.timeOffsets.realtime"),
    (("linux", "timeOffsets"), {"monotonic": 5}, "linux.timeOffsets.monotonic"),
    (("linux", "timeOffsets"), {"monotonic": {"secs": "1"}}, "linux.timeOffsets.monotonic.secs"),
    (("linux", "timeOffsets"), {"boottime": {"nanosecs": -1}}, "linux.timeOffsets.boottime.nanosecs"),
    (("linux", "timeOffsets"), {"boottime": {"nanosecs": 1_000_000_000}},
     "linux.timeOffsets.boottime.nanosecs"),
    # hooks
    (("hooks",), [], "hooks"),
]
for _kind in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"):
    INVALID += [
        (("hooks", _kind), {"path": "/bin/true"}, f"hooks.{_kind}"),
        (("hooks", _kind, 0), "/bin/true", f"hooks.{_kind}[0]"),
        (("hooks", _kind, 0, "path"), "bin/true", f"hooks.{_kind}[0].path"),
        (("hooks", _kind, 0, "path"), DELETE, f"hooks.{_kind}[0].path"),
        (("hooks", _kind, 0, "timeout"), 0, f"hooks.{_kind}[0].timeout"),
        (("hooks", _kind, 0, "timeout"), "5", f"hooks.{_kind}[0].timeout"),
        (("hooks", _kind, 0, "args"), ["true", 1], f"hooks.{_kind}[0].args[1]"),
        (("hooks", _kind, 0, "env"), "A=1", f"hooks.{_kind}[0].env"),
    ]


@pytest.mark.parametrize(("path", "value", "field"), INVALID,
                         ids=[f"{'.'.join(map(str, p))}={v!r:.60}" for p, v, _ in INVALID])
def test_invalid_field(path: Path, value: Any, field: str) -> None:
    assert invalid_field(mutate(base(), path, value)) == field


def test_longest_exec_strings_accepted() -> None:
    """An argument or variable of MAX_ARG_STRLEN - 1 bytes is the longest execve takes."""
    cfg = mutate(mutate(base(), ("process", "args"), ["A" * 131071]), ("process", "env"), ["X=" + "y" * 131069])
    process = parse_spec(cfg).process
    assert process is not None and len(process.args[0]) == 131071


def without_ns(cfg: dict[str, Any], *kinds: str) -> dict[str, Any]:
    cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] not in kinds]
    return cfg


def with_ns(cfg: dict[str, Any], kind: str, path: str = "") -> dict[str, Any]:
    ns = {"type": kind, "path": path} if path else {"type": kind}
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind] + [ns]
    return cfg


def test_hostname_needs_uts_namespace() -> None:
    assert invalid_field(without_ns(base(), "uts")) == "hostname"


def test_domainname_ok_with_uts() -> None:
    assert parse_spec(mutate(base(), ("domainname",), "example.org")).domainname == "example.org"


def test_domainname_without_uts_names_domainname() -> None:
    cfg = mutate(without_ns(base(), "uts"), ("domainname",), "example.org")
    del cfg["hostname"]
    assert invalid_field(cfg) == "domainname"


def test_no_hostname_needs_no_uts() -> None:
    cfg = without_ns(base(), "uts")
    del cfg["hostname"]
    assert parse_spec(cfg).linux.namespace("uts") is None


def test_id_mappings_need_user_namespace() -> None:
    m = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert invalid_field(mutate(base(), ("linux", "uidMappings"), m)) == "linux.uidMappings"
    spec = parse_spec(with_ns(mutate(mutate(base(), ("linux", "uidMappings"), m), ("linux", "gidMappings"), m),
                              "user"))
    assert spec.linux.uid_mappings[0].host_id == 100000
    assert spec.linux.gid_mappings[0].size == 65536


def test_gid_mappings_without_user_namespace_names_gid_mappings() -> None:
    m = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert invalid_field(mutate(base(), ("linux", "gidMappings"), m)) == "linux.gidMappings"


# (config change, attribute path on the Spec, expected value); None is JSON null,
# which the spec treats as an absent field.
VALID: list[tuple[Path, Any, str, Any]] = [
    (("ociVersion",), "1.0.2-dev", "oci_version", "1.0.2-dev"),
    (("root", "readonly"), DELETE, "root.readonly", False),
    (("root", "path"), "/abs/rootfs", "root.path", "/abs/rootfs"),
    (("process",), DELETE, "process", None),
    (("process", "cwd"), DELETE, "process.cwd", "/"),
    (("process", "cwd"), "/work", "process.cwd", "/work"),
    (("process", "env"), ["A=", "B=c=d"], "process.env", ("A=", "B=c=d")),
    (("process", "env"), DELETE, "process.env", ()),
    (("process", "terminal"), True, "process.terminal", True),
    (("process", "user"), DELETE, "process.user.uid", 0),
    (("process", "user", "uid"), 2**32 - 1, "process.user.uid", 2**32 - 1),
    (("process", "user", "gid"), 1000, "process.user.gid", 1000),
    (("process", "user", "umask"), 0o777, "process.user.umask", 0o777),
    (("process", "user", "umask"), 0, "process.user.umask", 0),
    (("process", "user", "umask"), None, "process.user.umask", None),
    (("process", "user", "additionalGids"), [5, 2**32 - 1], "process.user.additional_gids", (5, 2**32 - 1)),
    (("process", "consoleSize"), {"height": 24, "width": 80}, "process.console_size", (24, 80)),
    (("process", "consoleSize"), None, "process.console_size", None),
    (("process", "capabilities"), DELETE, "process.capabilities", None),
    (("process", "capabilities", "ambient"), ["CAP_KILL"], "process.capabilities.ambient", ("CAP_KILL",)),
    (("process", "capabilities", "inheritable"), None, "process.capabilities.inheritable", ()),
    (("process", "capabilities", "bounding"), ["CAP_CHOWN"], "process.capabilities.bounding", ("CAP_CHOWN",)),
    (("process", "rlimits"), DELETE, "process.rlimits", ()),
    (("process", "rlimits"), [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}], "process.rlimits",
     ({"type": "RLIMIT_CORE", "soft": 0, "hard": 0},)),
    (("process", "noNewPrivileges"), DELETE, "process.no_new_privileges", False),
    (("process", "noNewPrivileges"), True, "process.no_new_privileges", True),
    (("process", "apparmorProfile"), "docker-default", "process.apparmor_profile", "docker-default"),
    (("process", "selinuxLabel"), "system_u:r:c", "process.selinux_label", "system_u:r:c"),
    (("process", "oomScoreAdj"), -1000, "process.oom_score_adj", -1000),
    (("process", "oomScoreAdj"), 1000, "process.oom_score_adj", 1000),
    (("process", "oomScoreAdj"), None, "process.oom_score_adj", None),
    (("hostname",), DELETE, "hostname", ""),
    (("mounts",), DELETE, "mounts", ()),
    (("mounts", 0, "type"), DELETE, "mounts.0.type", ""),
    (("annotations",), DELETE, "annotations", {}),
    (("linux", "cgroupsPath"), "/a/b", "linux.cgroups_path", "/a/b"),
    (("linux", "rootfsPropagation"), "rslave", "linux.rootfs_propagation", "rslave"),
    (("linux", "rootfsPropagation"), None, "linux.rootfs_propagation", ""),
    (("linux", "seccomp"), {"defaultAction": "SCMP_ACT_ALLOW"}, "linux.seccomp",
     {"defaultAction": "SCMP_ACT_ALLOW"}),
    (("linux", "seccomp"), None, "linux.seccomp", None),
    (("linux", "personality"), {"domain": "LINUX32"}, "linux.personality", {"domain": "LINUX32"}),
    (("linux", "personality"), None, "linux.personality", None),
    (("linux", "timeOffsets"), {"monotonic": {"secs": -5}}, "linux.time_offsets",
     {"monotonic": {"secs": -5, "nanosecs": 0}}),
    (("linux", "timeOffsets"), {"boottime": {"secs": 1, "nanosecs": 999_999_999}}, "linux.time_offsets",
     {"boottime": {"secs": 1, "nanosecs": 999_999_999}}),
    (("linux", "maskedPaths"), DELETE, "linux.masked_paths", ()),
    (("linux", "readonlyPaths"), ["/proc/sys", "/proc/bus"], "linux.readonly_paths", ("/proc/sys", "/proc/bus")),
    (("linux", "mountLabel"), "label", "linux.mount_label", "label"),
    (("linux", "devices"), [{"path": "/dev/fuse", "type": "c"}], "linux.devices",
     ({"path": "/dev/fuse", "type": "c"},)),
    (("linux", "resources"), DELETE, "linux.resources", {}),
    (("linux", "sysctl"), None, "linux.sysctl", {}),
]


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


@pytest.mark.parametrize(("path", "value", "attr", "expected"), VALID,
                         ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v, _, _ in VALID])
def test_valid_field(path: Path, value: Any, attr: str, expected: Any) -> None:
    assert _get(parse_spec(mutate(base(), path, value)), attr) == expected


def test_no_linux_section() -> None:
    cfg = base()
    del cfg["linux"], cfg["hostname"]
    linux = parse_spec(cfg).linux
    assert (linux.namespaces, linux.uid_mappings, linux.resources, linux.seccomp) == ((), (), {}, None)


def test_mount_fields() -> None:
    idmap = [{"containerID": 0, "hostID": 1000, "size": 10}]
    m = {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"],
         "uidMappings": idmap, "gidMappings": idmap}
    mount = parse_spec(mutate(base(), ("mounts", 1), m)).mounts[1]
    assert (mount.destination, mount.type, mount.source, mount.options) == ("/data", "bind", "/srv", ("rbind", "ro"))
    for maps in (mount.uid_mappings, mount.gid_mappings):
        assert [(x.container_id, x.host_id, x.size) for x in maps] == [(0, 1000, 10)]


def test_hooks_by_kind() -> None:
    cfg = base()
    for i, kind in enumerate(("prestart", "createRuntime", "createContainer", "startContainer",
                              "poststart", "poststop")):
        cfg["hooks"][kind] = [{"path": f"/hook{i}", "args": ["h", str(i)], "env": [f"I={i}"]}]
    hooks = parse_spec(cfg).hooks
    by_attr = [hooks.prestart, hooks.create_runtime, hooks.create_container, hooks.start_container,
               hooks.poststart, hooks.poststop]
    for i, got in enumerate(by_attr):
        assert len(got) == 1
        assert (got[0].path, got[0].args, got[0].env, got[0].timeout) == (f"/hook{i}", ("h", str(i)), (f"I={i}",), None)


def test_hook_timeout_kept() -> None:
    assert parse_spec(base()).hooks.poststop[0].timeout == 5


def test_namespace_lookup() -> None:
    cfg = with_ns(base(), "network", "/var/run/netns/x")
    linux = parse_spec(cfg).linux
    net = linux.namespace("network")
    assert net is not None and net.path == "/var/run/netns/x"
    pid = linux.namespace("pid")
    assert pid is not None and pid.type == "pid" and pid.path == ""
    assert linux.namespace("user") is None
    assert linux.namespace("time") is None


@pytest.mark.parametrize("kind", ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"])
def test_every_namespace_type_accepted(kind: str) -> None:
    assert parse_spec(with_ns(base(), kind)).linux.namespace(kind) is not None


@pytest.mark.parametrize("prop", ["", "private", "rprivate", "slave", "rslave", "shared", "rshared",
                                  "unbindable", "runbindable"])
def test_rootfs_propagation_accepted(prop: str) -> None:
    assert parse_spec(mutate(base(), ("linux", "rootfsPropagation"), prop)).linux.rootfs_propagation == prop


# --- sysctl: only namespaced keys, and only with their namespace -------------

SYSCTL_OK: list[tuple[str, tuple[str, ...]]] = [
    ("kernel.shmmax", ("ipc",)),
    ("kernel.msgmnb", ("ipc",)),
    ("kernel.sem", ("ipc",)),
    ("kernel.shm_rmid_forced", ("ipc",)),
    ("fs.mqueue.msg_max", ("ipc",)),
    ("net.ipv4.ip_forward", ("network",)),
    ("net.core.somaxconn", ("network",)),
    ("kernel.domainname", ("uts",)),
]


@pytest.mark.parametrize(("key", "needs"), SYSCTL_OK)
def test_sysctl_allowed_with_namespace(key: str, needs: tuple[str, ...]) -> None:
    spec = parse_spec(mutate(base(), ("linux", "sysctl"), {key: "1"}))
    assert spec.linux.sysctl == {key: "1"}


@pytest.mark.parametrize(("key", "needs"), SYSCTL_OK)
def test_sysctl_refused_without_namespace(key: str, needs: tuple[str, ...]) -> None:
    cfg = without_ns(mutate(base(), ("linux", "sysctl"), {key: "1"}), *needs)
    cfg.pop("hostname")
    assert invalid_field(cfg) == f"linux.sysctl.{key}"


@pytest.mark.parametrize(("key", "needs"), SYSCTL_OK)
def test_sysctl_allowed_with_joined_namespace(key: str, needs: tuple[str, ...]) -> None:
    """A namespace joined by path is still the container's own, not the host's."""
    cfg = mutate(base(), ("linux", "sysctl"), {key: "1"})
    for kind in needs:
        with_ns(cfg, kind, f"/proc/1/ns/{kind}")
    assert parse_spec(cfg).linux.sysctl == {key: "1"}


@pytest.mark.parametrize("key", ["kernel.hostname", "kernel.panic", "vm.swappiness", "fs.file-max",
                                 "kernel.shmmaxx", "netx.foo"])
def test_sysctl_refused_always(key: str) -> None:
    assert invalid_field(mutate(base(), ("linux", "sysctl"), {key: "1"})) == f"linux.sysctl.{key}"


def test_sysctl_hostname_points_at_hostname_field() -> None:
    with pytest.raises(InvalidSpec, match="hostname field"):
        parse_spec(mutate(base(), ("linux", "sysctl"), {"kernel.hostname": "x"}))


def test_sysctl_not_namespaced_says_so() -> None:
    with pytest.raises(InvalidSpec, match="not namespaced"):
        parse_spec(mutate(base(), ("linux", "sysctl"), {"kernel.panic": "1"}))


# --- parse_process (exec --process FILE) --------------------------------------

def test_parse_process_alone() -> None:
    proc = parse_process({"args": ["ls"], "cwd": "/tmp", "env": ["A=b"], "user": {"uid": 1, "gid": 2}})
    assert (proc.args, proc.cwd, proc.env, proc.user.uid, proc.user.gid) == (("ls",), "/tmp", ("A=b",), 1, 2)
    assert proc.capabilities is None and proc.terminal is False


@pytest.mark.parametrize(("raw", "field"), [
    ([], "process"),
    ("ls", "process"),
    ({}, "process.args"),
    ({"args": ["ls"], "cwd": "rel"}, "process.cwd"),
    ({"args": ["ls"], "env": ["X"]}, "process.env[0]"),
    ({"args": ["ls"], "user": {"uid": -5}}, "process.user.uid"),
])
def test_parse_process_invalid(raw: Any, field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_process(raw)
    assert info.value.field == field


def test_parse_process_path_prefix() -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_process({"args": ["ls"], "cwd": "rel"}, path="--process")
    assert info.value.field == "--process.cwd"


def test_invalid_spec_is_invalid_argument() -> None:
    """The CLI and CRI classify a bad config as the caller's fault."""
    with pytest.raises(InvalidArgument):
        parse_spec(mutate(base(), ("ociVersion",), "2.0"))

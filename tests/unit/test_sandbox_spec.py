"""cri/oci/sandbox_spec: PodSandboxConfig + pause image -> the pause container's config.json.

Same shape as test_container_spec: one row per CRI field or error on a full
valid base input; every spec is also run through the runtime's validators.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from cri_api.v1 import api_pb2
from test_container_spec import runtime_accepts  # the shared runtime checker (tests/unit is on sys.path)

from cri_messages import web_pod
from dockyard.cri.errors import InvalidArgument
from dockyard.cri.image.store import ImageRecord
from dockyard.cri.oci import defaults
from dockyard.cri.oci.sandbox_spec import sandbox_spec

MAPS = [api_pb2.IDMapping(host_id=100000, container_id=0, length=65536)]


@dataclass
class Inputs:
    config: api_pb2.PodSandboxConfig
    image: ImageRecord
    kw: dict[str, Any] = field(default_factory=dict)


def base() -> Inputs:
    config = web_pod(attempt=1, seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault))
    image = ImageRecord(id="sha256:" + "b" * 64, repo_tags=("registry.k8s.io/pause:3.10",),
                        entrypoint=("/catatonit", "-P"), user="65535:65535")
    kw: dict[str, Any] = dict(
        rootfs="/run/dockyard/p1/rootfs", netns_path="/run/dockyard/netns/p1",
        hostname_path="/run/dockyard/p1/hostname", hosts_path="/run/dockyard/p1/hosts",
        resolv_path="/run/dockyard/p1/resolv.conf", shm_path="/run/dockyard/p1/shm",
        cgroups_path="/dockyard/p1/pause", oom_score_adj=-998, sandbox_id="p1",
        read_image_file={}.get, machine="x86_64",
    )
    return Inputs(config, image, kw)


Mutate = Callable[[Inputs], None]
Check = Callable[[dict[str, Any]], None]


def _ns(**kw: Any) -> Mutate:
    def apply(inp: Inputs) -> None:
        inp.config.linux.security_context.namespace_options.CopyFrom(api_pb2.NamespaceOption(**kw))
    return apply


def _sec(**kw: Any) -> Mutate:
    def apply(inp: Inputs) -> None:
        sec = inp.config.linux.security_context
        for k, v in kw.items():
            if isinstance(v, list):
                getattr(sec, k).extend(v)
            elif hasattr(v, "CopyFrom"):
                getattr(sec, k).CopyFrom(v)
            else:
                setattr(sec, k, v)
    return apply


def _kw(**kw: Any) -> Mutate:
    return lambda inp: inp.kw.update(kw)


def _image(**kw: Any) -> Mutate:
    def apply(inp: Inputs) -> None:
        inp.image = replace(inp.image, **kw)
    return apply


def _sysctls(values: dict[str, str]) -> Mutate:
    return lambda inp: inp.config.linux.sysctls.update(values)


def _res(which: str, **kw: Any) -> Mutate:
    return lambda inp: getattr(inp.config.linux, which).CopyFrom(api_pb2.LinuxContainerResources(**kw))


def _eq(got: Any, want: Any) -> None:
    assert got == want


def ns_of(spec: dict[str, Any]) -> dict[str, str | None]:
    return {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}


def mount_at(spec: dict[str, Any], dest: str) -> dict[str, Any] | None:
    found = [m for m in spec["mounts"] if m["destination"] == dest]
    assert len(found) <= 1
    return found[0] if found else None


I64 = api_pb2.Int64Value

ROWS: list[tuple[str, Mutate, Check]] = [
    ("base", lambda inp: None, lambda s: _eq(
        (s["process"]["args"], s["process"]["user"], s["root"], s["process"]["noNewPrivileges"],
         s["process"]["capabilities"], s["hostname"], s["linux"]["cgroupsPath"], s["process"]["oomScoreAdj"]),
        (["/catatonit", "-P"], {"uid": 65535, "gid": 65535, "additionalGids": [65535]},
         {"path": "/run/dockyard/p1/rootfs", "readonly": True}, True,
         {"bounding": [], "effective": [], "permitted": []}, "web-pod", "/dockyard/p1/pause", -998))),
    ("entrypoint + cmd of the pause image", _image(entrypoint=("/pause",), cmd=("-v",)),
     lambda s: _eq(s["process"]["args"], ["/pause", "-v"])),
    ("namespaces", lambda inp: None, lambda s: _eq(ns_of(s), {
        "mount": None, "network": "/run/dockyard/netns/p1", "uts": None, "ipc": None, "pid": None})),
    ("pid POD is a new pid ns too", _ns(pid=api_pb2.POD), lambda s: _eq(ns_of(s)["pid"], None)),
    ("host pid", _ns(pid=api_pb2.NODE), lambda s: _eq("pid" in ns_of(s), False)),
    ("host network: no net/uts ns and no hostname", _ns(network=api_pb2.NODE),
     lambda s: _eq(("network" in ns_of(s), "uts" in ns_of(s), "hostname" in s), (False, False, False))),
    ("host ipc: no ipc ns, host /dev/shm", _ns(ipc=api_pb2.NODE),
     lambda s: _eq(("ipc" in ns_of(s), (mount_at(s, "/dev/shm") or {})["source"]), (False, "/dev/shm"))),
    ("user namespace", _ns(userns_options=api_pb2.UserNamespace(mode=api_pb2.POD, uids=MAPS, gids=MAPS)),
     lambda s: _eq((ns_of(s)["user"], s["linux"]["gidMappings"]),
                   (None, [{"containerID": 0, "hostID": 100000, "size": 65536}]))),
    ("userns NODE is none", _ns(userns_options=api_pb2.UserNamespace(mode=api_pb2.NODE)),
     lambda s: _eq("user" in ns_of(s), False)),
    ("shm from shm_path", lambda inp: None, lambda s: _eq(
        mount_at(s, "/dev/shm"), {"destination": "/dev/shm", "type": "bind", "source": "/run/dockyard/p1/shm",
                                  "options": ["rbind", "rprivate", "rw"]})),
    ("no shm_path: private 64 MiB tmpfs", _kw(shm_path=""),
     lambda s: _eq((mount_at(s, "/dev/shm") or {})["options"][-1], f"size={64 << 20}")),
    ("pod files read-only", lambda inp: None, lambda s: _eq(
        [(mount_at(s, d) or {}).get("options") for d in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")],
        [["rbind", "rprivate", "ro"]] * 3)),
    ("pod files left out when not given", _kw(hostname_path="", hosts_path=""),
     lambda s: _eq((mount_at(s, "/etc/hosts"), mount_at(s, "/etc/hostname")), (None, None))),
    ("oom_score_adj clamped", _kw(oom_score_adj_floor=0), lambda s: _eq(s["process"]["oomScoreAdj"], 0)),
    ("sysctls safe and unsafe", _sysctls({"net.ipv4.ip_unprivileged_port_start": "0",
                                                "kernel.shm_rmid_forced": "1"}),
     lambda s: _eq(s["linux"]["sysctl"], {"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "0"})),
    ("slash-spelled sysctl", _sysctls({"net/ipv4/ping_group_range": "0 1"}),
     lambda s: _eq(s["linux"]["sysctl"], {"net.ipv4.ping_group_range": "0 1"})),
    ("resources plus overhead", (lambda inp: (
        _res("resources", cpu_period=100000, cpu_quota=200000, cpu_shares=1024, memory_limit_in_bytes=256 << 20)(inp),
        _res("overhead", cpu_quota=10000, cpu_shares=100, memory_limit_in_bytes=16 << 20)(inp))),
     lambda s: _eq((s["linux"]["resources"]["cpu"], s["linux"]["resources"]["memory"],
                    s["annotations"]["io.kubernetes.cri.sandbox-memory"]),
                   ({"shares": 1124, "quota": 210000, "period": 100000}, {"limit": 272 << 20}, str(256 << 20)))),
    ("overhead alone sets no limit", _res("overhead", memory_limit_in_bytes=16 << 20),
     lambda s: _eq("memory" in s["linux"]["resources"], False)),
    ("run_as_user/group override the image", _sec(run_as_user=I64(value=0), run_as_group=I64(value=0)),
     lambda s: _eq(s["process"]["user"], {"uid": 0, "gid": 0, "additionalGids": [0]})),
    ("supplemental groups", _sec(supplemental_groups=[3]),
     lambda s: _eq(s["process"]["user"]["additionalGids"], [65535, 3])),
    ("seccomp RuntimeDefault", lambda inp: None, lambda s: _eq(s["linux"]["seccomp"]["defaultAction"],
                                                              "SCMP_ACT_ERRNO")),
    ("seccomp Unconfined", _sec(seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Unconfined)),
     lambda s: _eq("seccomp" in s["linux"], False)),
    ("privileged: no seccomp, no masked paths", _sec(privileged=True),
     lambda s: _eq(("seccomp" in s["linux"], s["linux"]["maskedPaths"]), (False, []))),
    ("masked and readonly defaults", lambda inp: None, lambda s: _eq(
        (s["linux"]["maskedPaths"], s["linux"]["readonlyPaths"]),
        (list(defaults.MASKED_PATHS), list(defaults.READONLY_PATHS)))),
    ("device rules deny all", lambda inp: None,
     lambda s: _eq(s["linux"]["resources"]["devices"], [{"allow": False, "access": "rwm"}])),
    ("annotations", lambda inp: None, lambda s: _eq(
        {k: v for k, v in s["annotations"].items() if "cpu" not in k and "memory" not in k}, {
            "io.kubernetes.cri.container-type": "sandbox", "io.kubernetes.cri.sandbox-id": "p1",
            "io.kubernetes.cri.sandbox-name": "web", "io.kubernetes.cri.sandbox-namespace": "default",
            "io.kubernetes.cri.sandbox-uid": "uid-1",
            "io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/default_web_uid-1",
            "io.kubernetes.cri.image-name": "registry.k8s.io/pause:3.10"})),
]


@pytest.mark.parametrize("mutate,check", [(m, c) for _, m, c in ROWS], ids=[r[0] for r in ROWS])
def test_field(mutate: Mutate, check: Check) -> None:
    inp = base()
    mutate(inp)
    spec = sandbox_spec(inp.config, image=inp.image, **inp.kw)
    runtime_accepts(spec)
    check(spec)


ERRORS: list[tuple[str, Mutate, str]] = [
    ("no name", lambda inp: inp.config.metadata.ClearField("name"), "config.metadata.name"),
    ("pause image with nothing to run", _image(entrypoint=(), cmd=()), "pause image registry.k8s.io/pause:3.10"),
    ("pause image user name without passwd", _image(user="nobody"), "config User"),
    ("net sysctl with host network", lambda inp: (_ns(network=api_pb2.NODE)(inp), _sysctls({"net.core.somaxconn": "1"})(inp)),
     "config.linux.sysctls['net.core.somaxconn']"),
    ("ipc sysctl with host ipc", lambda inp: (_ns(ipc=api_pb2.NODE)(inp), _sysctls({"kernel.msgmax": "1"})(inp)),
     "config.linux.sysctls['kernel.msgmax']"),
    ("non-namespaced sysctl", _sysctls({"vm.swappiness": "10"}), "config.linux.sysctls['vm.swappiness']"),
    ("pid TARGET for a sandbox", _ns(pid=api_pb2.TARGET), "config.linux.security_context.namespace_options.pid"),
    ("userns without mappings", _ns(userns_options=api_pb2.UserNamespace(mode=api_pb2.POD)),
     "config.linux.security_context.namespace_options.userns_options.uids"),
    ("userns CONTAINER mode", _ns(userns_options=api_pb2.UserNamespace(mode=api_pb2.CONTAINER)),
     "config.linux.security_context.namespace_options.userns_options.mode"),
    ("oom_score_adj out of range", _kw(oom_score_adj=-1001), "oom_score_adj"),
    ("run_as_group without user", _sec(run_as_group=I64(value=1)), "config.linux.security_context.run_as_group"),
    ("negative cpu shares", _res("resources", cpu_shares=-2), "config.linux.resources.cpu_shares"),
    ("seccomp localhost missing", _sec(seccomp=api_pb2.SecurityProfile(
        profile_type=api_pb2.SecurityProfile.Localhost, localhost_ref="/nonexistent/profile.json")),
     "config.linux.security_context.seccomp.localhost_ref"),
]


@pytest.mark.parametrize("mutate,field", [(m, f) for _, m, f in ERRORS], ids=[r[0] for r in ERRORS])
def test_error_names_field(mutate: Mutate, field: str) -> None:
    inp = base()
    mutate(inp)
    with pytest.raises(InvalidArgument) as info:
        sandbox_spec(inp.config, image=inp.image, **inp.kw)
    assert field in info.value.message

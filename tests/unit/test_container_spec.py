"""cri/oci/container_spec: CRI ContainerConfig + sandbox config + image -> config.json.

Each row changes one CRI field of a full, valid base input and checks the
part of the spec that field drives, or the error that names it.  Every
generated spec also goes through the runtime's own validators
(:func:`runtime_accepts`), so what the daemon writes is what dockyard-runc
takes.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from cri_messages import web_pod
from dockyard.cri.errors import InvalidArgument
from dockyard.cri.image.store import ImageRecord
from dockyard.cri.oci import defaults
from dockyard.cri.oci.container_spec import PodFiles, container_image_volumes, container_spec
from dockyard.runtime import seccomp as runtime_seccomp
from dockyard.runtime.kernel.capabilities import to_mask
from dockyard.runtime.cgroups import cpusets, device_rules, hugepages
from dockyard.runtime.cgroups.v1 import cpu as v1_cpu
from dockyard.runtime.cgroups.v1 import memory as v1_memory
from dockyard.runtime.rootfs.devices import parse_devices
from dockyard.runtime.rootfs.mountopts import parse_mount_options
from dockyard.runtime.spec import Spec, parse_spec

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1::/:/usr/sbin/nologin
app:x:1000:1001:App:/home/app:/bin/sh
nobody:x:65534:65534::/:/usr/sbin/nologin
"""
GROUP = """root:x:0:
wheel:x:10:app,root
audio:x:29:app
appgrp:x:1001:
video:x:44:daemon
"""
SANDBOX_PID = 4242
EXISTING = {"/var/lib/data", "/var/lib/logs", "/srv/shared"}


def runtime_accepts(spec: dict[str, Any]) -> Spec:
    """The checks dockyard-runc makes on a config.json, on this spec:
    parse_spec, the seccomp profile, devices, device rules, cgroup values,
    capability names and every mount's options."""
    raw = json.loads(json.dumps(spec))  # must be plain JSON
    parsed = parse_spec(raw)
    lx = raw.get("linux", {})
    if lx.get("seccomp") is not None:
        runtime_seccomp.validate(lx["seccomp"])
    parse_devices(lx.get("devices", []))
    res = lx.get("resources", {})
    device_rules.parse(res)
    v1_cpu.writes(res)
    v1_memory.writes(res)
    cpusets.writes(res)
    hugepages.limits(res)
    caps = raw["process"].get("capabilities") or {}
    for kind, names in caps.items():
        to_mask(names, f"process.capabilities.{kind}", 63)
    for i, m in enumerate(raw.get("mounts", [])):
        parse_mount_options(m.get("options", []), f"mounts[{i}].options")
    return parsed


@dataclass
class Inputs:
    config: api_pb2.ContainerConfig
    sandbox: api_pb2.PodSandboxConfig
    image: ImageRecord
    kw: dict[str, Any] = field(default_factory=dict)


def fake_stat(path: str) -> os.stat_result:
    nodes = {"/dev/fuse": (stat.S_IFCHR | 0o666, os.makedev(10, 229)),
             "/dev/loop0": (stat.S_IFBLK | 0o660, os.makedev(7, 0)),
             "/etc/passwd": (stat.S_IFREG | 0o644, 0)}
    if path not in nodes:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    mode, rdev = nodes[path]
    # os.stat_result takes the 10 visible fields plus a dict for the rest
    return os.stat_result((mode, 1, 1, 1, 0, 0, 0, 0, 0, 0), {"st_rdev": rdev})


HOST_FILES: dict[str, bytes] = {}


def fake_read_host(path: str) -> bytes:
    if path not in HOST_FILES:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    return HOST_FILES[path]


def base() -> Inputs:
    sandbox = web_pod(attempt=0)
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="app", attempt=0),
        image=api_pb2.ImageSpec(image="docker.io/library/busybox:latest"),
        envs=[api_pb2.KeyValue(key="MODE", value="test")],
        log_path="app/0.log",
        linux=api_pb2.LinuxContainerConfig(
            resources=api_pb2.LinuxContainerResources(cpu_shares=512, memory_limit_in_bytes=64 << 20,
                                                      oom_score_adj=100),
            security_context=api_pb2.LinuxContainerSecurityContext(
                namespace_options=api_pb2.NamespaceOption(network=api_pb2.POD, pid=api_pb2.CONTAINER,
                                                          ipc=api_pb2.POD),
                seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault))),
    )
    image = ImageRecord(id="sha256:" + "a" * 64, repo_tags=("docker.io/library/busybox:latest",),
                        entrypoint=(), cmd=("sh",), env=("PATH=/bin:/usr/bin", "IMG=1"), working_dir="",
                        user="", volumes=())
    files = {"/etc/passwd": PASSWD, "/etc/group": GROUP}
    kw: dict[str, Any] = dict(
        rootfs="/run/dockyard/c1/rootfs",
        sandbox_pid=SANDBOX_PID,
        netns_path="/run/dockyard/netns/p1",
        pod_files=PodFiles("/run/dockyard/p1/hostname", "/run/dockyard/p1/hosts",
                           "/run/dockyard/p1/resolv.conf", "/run/dockyard/p1/shm"),
        cgroups_path="/dockyard/p1/c1",
        container_id="c1",
        sandbox_id="p1",
        host_path_exists=lambda p: p in EXISTING,
        read_image_file=files.get,
        read_host_file=fake_read_host,
        stat_path=fake_stat,
        host_devices=lambda: [{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}],
        target_pid=lambda cid: {"c0": 777}[cid],
        machine="x86_64",
        node_hostname="node1",
    )
    return Inputs(config, sandbox, image, kw)


def build(inp: Inputs) -> dict[str, Any]:
    spec = container_spec(inp.config, inp.sandbox, image=inp.image, **inp.kw)
    runtime_accepts(spec)
    return spec


def sec(inp: Inputs) -> api_pb2.LinuxContainerSecurityContext:
    return inp.config.linux.security_context


def ns_of(spec: dict[str, Any]) -> dict[str, str | None]:
    return {n["type"]: n.get("path") for n in spec["linux"]["namespaces"]}


def mount_at(spec: dict[str, Any], dest: str) -> dict[str, Any] | None:
    found = [m for m in spec["mounts"] if m["destination"] == dest]
    assert len(found) <= 1, f"{dest} mounted twice"
    return found[0] if found else None


def env_of(spec: dict[str, Any]) -> dict[str, str]:
    return dict(e.split("=", 1) for e in spec["process"]["env"])


Mutate = Callable[[Inputs], None]
Check = Callable[[dict[str, Any]], None]


def _set(**kw: Any) -> Mutate:
    def apply(inp: Inputs) -> None:
        for path, value in kw.items():
            obj: Any = inp
            parts = path.split("__")
            for p in parts[:-1]:
                obj = getattr(obj, p)
            if isinstance(value, list):
                del getattr(obj, parts[-1])[:]
                getattr(obj, parts[-1]).extend(value)
            elif isinstance(value, dict):
                getattr(obj, parts[-1]).update(value)
            elif hasattr(value, "CopyFrom"):
                getattr(obj, parts[-1]).CopyFrom(value)
            else:
                setattr(obj, parts[-1], value)
    return apply


def _image(**kw: Any) -> Mutate:
    def apply(inp: Inputs) -> None:
        from dataclasses import replace
        inp.image = replace(inp.image, **kw)
    return apply


def _kw(**kw: Any) -> Mutate:
    def apply(inp: Inputs) -> None:
        inp.kw.update(kw)
    return apply


def _both(*muts: Mutate) -> Mutate:
    def apply(inp: Inputs) -> None:
        for m in muts:
            m(inp)
    return apply


def _mount(**kw: Any) -> Mutate:
    def apply(inp: Inputs) -> None:
        inp.config.mounts.append(api_pb2.Mount(**kw))
    return apply


def _sec(**kw: Any) -> Mutate:
    return _set(**{f"config__linux__security_context__{k}": v for k, v in kw.items()})


def _localhost(ref: str) -> api_pb2.SecurityProfile:
    return api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Localhost, localhost_ref=ref)


def _pod_sec(**kw: Any) -> Mutate:
    return _set(**{f"sandbox__linux__security_context__{k}": v for k, v in kw.items()})


def _res(**kw: Any) -> Mutate:
    return _set(**{f"config__linux__resources__{k}": v for k, v in kw.items()})


def _caps(spec: dict[str, Any]) -> set[str]:
    caps = spec["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    return set(caps["bounding"])


I64 = api_pb2.Int64Value
MAPS = [api_pb2.IDMapping(host_id=100000, container_id=0, length=65536)]


def _syscalls(spec: dict[str, Any]) -> set[str]:
    return {n for r in spec["linux"]["seccomp"]["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r
            for n in r["names"]}


# (id, mutate, check)
ROWS: list[tuple[str, Mutate, Check]] = [
    ("base", lambda inp: None, lambda s: _eq(
        (s["process"]["args"], s["root"], s["linux"]["cgroupsPath"], s["process"]["terminal"], "hostname" in s),
        (["sh"], {"path": "/run/dockyard/c1/rootfs", "readonly": False}, "/dockyard/p1/c1", False, False))),
    # --- process args: docker rules
    ("command overrides entrypoint and drops cmd",
     _both(_image(entrypoint=("/entry",), cmd=("default",)), _set(config__command=["/bin/true"])),
     lambda s: _eq(s["process"]["args"], ["/bin/true"])),
    ("args override cmd, entrypoint kept",
     _both(_image(entrypoint=("/entry",), cmd=("default",)), _set(config__args=["x", "y"])),
     lambda s: _eq(s["process"]["args"], ["/entry", "x", "y"])),
    ("command and args", _both(_image(entrypoint=("/entry",)), _set(config__command=["/c"], config__args=["a"])),
     lambda s: _eq(s["process"]["args"], ["/c", "a"])),
    ("entrypoint + cmd", _image(entrypoint=("/entry", "-v"), cmd=("run",)),
     lambda s: _eq(s["process"]["args"], ["/entry", "-v", "run"])),
    ("entrypoint [''] means none", _image(entrypoint=("",), cmd=("/bin/app",)),
     lambda s: _eq(s["process"]["args"], ["/bin/app"])),
    # --- env, cwd, tty
    ("env merged, container wins", _set(config__envs=[api_pb2.KeyValue(key="IMG", value="2")]),
     lambda s: _eq((env_of(s)["IMG"], env_of(s)["PATH"], env_of(s)["HOSTNAME"]), ("2", "/bin:/usr/bin", "web-pod"))),
    ("default PATH when the image has none", _image(env=()),
     lambda s: _eq(env_of(s)["PATH"], defaults.PATH_ENV.split("=", 1)[1])),
    ("tty sets terminal and TERM", _set(config__tty=True, config__stdin=True),
     lambda s: _eq((s["process"]["terminal"], env_of(s)["TERM"]), (True, "xterm"))),
    ("working dir from config", _both(_image(working_dir="/img"), _set(config__working_dir="/cfg")),
     lambda s: _eq(s["process"]["cwd"], "/cfg")),
    ("working dir from image", _image(working_dir="/img"), lambda s: _eq(s["process"]["cwd"], "/img")),
    ("working dir default /", lambda inp: None, lambda s: _eq(s["process"]["cwd"], "/")),
    ("hostname of a host-network pod without one is the node's",
     _both(_set(sandbox__hostname=""), _pod_sec(namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE)),
           _sec(namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE))),
     lambda s: _eq(env_of(s)["HOSTNAME"], "node1")),
    # --- user
    ("root by default", lambda inp: None, lambda s: _eq(s["process"]["user"], {"uid": 0, "gid": 0,
                                                                              "additionalGids": [0, 10]})),
    ("image user name", _image(user="app"), lambda s: _eq(s["process"]["user"],
                                                          {"uid": 1000, "gid": 1001, "additionalGids": [1001, 10, 29]})),
    ("image user uid with passwd entry", _image(user="1000"),
     lambda s: _eq((s["process"]["user"]["uid"], s["process"]["user"]["gid"]), (1000, 1001))),
    ("image user uid without entry -> gid 0", _image(user="4321"),
     lambda s: _eq(s["process"]["user"], {"uid": 4321, "gid": 0, "additionalGids": [0]})),
    ("image user uid:gid", _image(user="1000:44"),
     lambda s: _eq(s["process"]["user"], {"uid": 1000, "gid": 44, "additionalGids": [44, 10, 29]})),
    ("image user name:group", _image(user="app:video"),
     lambda s: _eq((s["process"]["user"]["uid"], s["process"]["user"]["gid"]), (1000, 44))),
    ("run_as_user overrides image", _both(_image(user="app"), _sec(run_as_user=I64(value=1))),
     lambda s: _eq(s["process"]["user"], {"uid": 1, "gid": 1, "additionalGids": [1, 44]})),
    ("run_as_username", _sec(run_as_username="app"),
     lambda s: _eq(s["process"]["user"]["uid"], 1000)),
    ("run_as_group", _sec(run_as_user=I64(value=1000), run_as_group=I64(value=5)),
     lambda s: _eq((s["process"]["user"]["gid"], s["process"]["user"]["additionalGids"][0]), (5, 5))),
    ("supplemental groups merge", _both(_image(user="app"), _sec(supplemental_groups=[7, 10])),
     lambda s: _eq(s["process"]["user"]["additionalGids"], [1001, 10, 29, 7])),
    ("supplemental groups strict", _both(_image(user="app"), _sec(supplemental_groups=[7],
                                                                  supplemental_groups_policy=api_pb2.Strict)),
     lambda s: _eq(s["process"]["user"]["additionalGids"], [1001, 7])),
    # --- mounts
    ("volume rw private", _mount(container_path="/data", host_path="/var/lib/data"),
     lambda s: _eq(mount_at(s, "/data"), {"destination": "/data", "type": "bind", "source": "/var/lib/data",
                                          "options": ["rbind", "rprivate", "rw"]})),
    ("volume readonly", _mount(container_path="/data", host_path="/var/lib/data", readonly=True),
     lambda s: _eq(_opts(s, "/data"), ["rbind", "rprivate", "ro"])),
    ("host-to-container -> rslave + rootfs rslave",
     _mount(container_path="/data", host_path="/var/lib/data", propagation=api_pb2.PROPAGATION_HOST_TO_CONTAINER),
     lambda s: _eq((_opts(s, "/data")[1], s["linux"]["rootfsPropagation"]), ("rslave", "rslave"))),
    ("bidirectional -> rshared + rootfs rshared",
     _both(_mount(container_path="/a", host_path="/var/lib/data", propagation=api_pb2.PROPAGATION_HOST_TO_CONTAINER),
           _mount(container_path="/b", host_path="/srv/shared", propagation=api_pb2.PROPAGATION_BIDIRECTIONAL)),
     lambda s: _eq((_opts(s, "/b")[1], s["linux"]["rootfsPropagation"]), ("rshared", "rshared"))),
    ("selinux_relabel accepted", _mount(container_path="/data", host_path="/var/lib/data", selinux_relabel=True),
     lambda s: _eq(_opts(s, "/data"), ["rbind", "rprivate", "rw"])),
    ("recursive read-only -> rro",
     _mount(container_path="/data", host_path="/var/lib/data", readonly=True, recursive_read_only=True),
     lambda s: _eq(_opts(s, "/data"), ["rbind", "rprivate", "ro", "rro"])),
    ("mount idmap", _mount(container_path="/data", host_path="/var/lib/data", uidMappings=MAPS, gidMappings=MAPS),
     lambda s: _eq(mount_at(s, "/data")["uidMappings"],  # type: ignore[index]
                   [{"containerID": 0, "hostID": 100000, "size": 65536}])),
    ("mounts sorted parent first",
     _both(_mount(container_path="/data/logs", host_path="/var/lib/logs"),
           _mount(container_path="/data", host_path="/var/lib/data")),
     lambda s: _eq([m["destination"] for m in s["mounts"] if m["destination"].startswith("/data")],
                   ["/data", "/data/logs"])),
    ("pod files and shm", lambda inp: None, lambda s: _eq(
        [(mount_at(s, d) or {}).get("source") for d in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm")],
        ["/run/dockyard/p1/hostname", "/run/dockyard/p1/hosts", "/run/dockyard/p1/resolv.conf",
         "/run/dockyard/p1/shm"])),
    ("pod files ro with a readonly rootfs", _sec(readonly_rootfs=True),
     lambda s: _eq((s["root"]["readonly"], _opts(s, "/etc/hosts")[-1], _opts(s, "/dev/shm")[-1]), (True, "ro", "rw"))),
    ("CRI mount of /etc/hosts replaces the pod's", _mount(container_path="/etc/hosts", host_path="/srv/shared"),
     lambda s: _eq(mount_at(s, "/etc/hosts")["source"], "/srv/shared")),  # type: ignore[index]
    ("host IPC binds the host's /dev/shm",
     _both(_pod_sec(namespace_options=api_pb2.NamespaceOption(ipc=api_pb2.NODE, pid=api_pb2.CONTAINER)),
           _sec(namespace_options=api_pb2.NamespaceOption(ipc=api_pb2.NODE, pid=api_pb2.CONTAINER))),
     lambda s: _eq((mount_at(s, "/dev/shm")["source"], "ipc" in ns_of(s)), ("/dev/shm", False))),  # type: ignore[index]
    ("default mounts", lambda inp: None, lambda s: _eq(
        [(m["destination"], m["type"]) for m in s["mounts"][:6]],
        [("/proc", "proc"), ("/dev", "tmpfs"), ("/dev/pts", "devpts"), ("/dev/mqueue", "mqueue"), ("/sys", "sysfs"),
         ("/sys/fs/cgroup", "cgroup")]) and _eq(_opts(s, "/sys")[-1], "ro")),
    ("a CRI /dev mount drops the /dev defaults, the pod's shm goes on top",
     _mount(container_path="/dev", host_path="/srv/shared"),
     lambda s: _eq([m["destination"] for m in s["mounts"] if m["destination"].startswith("/dev")],
                   ["/dev", "/dev/shm"])),
    ("image volumes as anonymous dirs",
     _both(_image(volumes=("/var/cache", "/data")), _kw(volumes_dir="/var/lib/dockyard/c1/volumes"),
           _mount(container_path="/data", host_path="/var/lib/data")),
     lambda s: _eq((mount_at(s, "/var/cache")["source"].startswith("/var/lib/dockyard/c1/volumes/"),  # type: ignore[index]
                    mount_at(s, "/data")["source"]), (True, "/var/lib/data"))),  # type: ignore[index]
    # --- devices
    ("device", _set(config__devices=[api_pb2.Device(container_path="/dev/fuse", host_path="/dev/fuse",
                                                    permissions="rw")]),
     lambda s: _eq((s["linux"]["devices"], s["linux"]["resources"]["devices"]),
                   ([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}],
                    [defaults_deny(), {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}]))),
    ("block device renamed, default permissions",
     _set(config__devices=[api_pb2.Device(container_path="/dev/xvda", host_path="/dev/loop0")]),
     lambda s: _eq((s["linux"]["devices"][0]["path"], s["linux"]["resources"]["devices"][1]["access"]),
                   ("/dev/xvda", "rwm"))),
    # --- resources
    ("cpu and cpuset", _res(cpu_period=100000, cpu_quota=50000, cpu_shares=256, cpuset_cpus="0-1", cpuset_mems="0"),
     lambda s: _eq(s["linux"]["resources"]["cpu"], {"shares": 256, "quota": 50000, "period": 100000, "cpus": "0-1",
                                                    "mems": "0"})),
    ("memory and swap", _res(memory_limit_in_bytes=1 << 30, memory_swap_limit_in_bytes=2 << 30),
     lambda s: _eq(s["linux"]["resources"]["memory"], {"limit": 1 << 30, "swap": 2 << 30})),
    ("hugepages", _res(hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB", limit=4 << 20)]),
     lambda s: _eq(s["linux"]["resources"]["hugepageLimits"], [{"pageSize": "2MB", "limit": 4 << 20}])),
    ("unified passed through", _set(config__linux__resources__unified={"memory.high": "1000000"}),
     lambda s: _eq(s["linux"]["resources"]["unified"], {"memory.high": "1000000"})),
    ("zero values left out", _res(cpu_shares=0, memory_limit_in_bytes=0),
     lambda s: _eq(("cpu" in s["linux"]["resources"], "memory" in s["linux"]["resources"]), (False, False))),
    ("oom_score_adj", _res(oom_score_adj=-500), lambda s: _eq(s["process"]["oomScoreAdj"], -500)),
    ("oom_score_adj clamped to the floor", _both(_res(oom_score_adj=-997), _kw(oom_score_adj_floor=0)),
     lambda s: _eq(s["process"]["oomScoreAdj"], 0)),
    ("oom_score_adj above the floor kept", _both(_res(oom_score_adj=900), _kw(oom_score_adj_floor=0)),
     lambda s: _eq(s["process"]["oomScoreAdj"], 900)),
    # --- namespaces
    ("pod namespaces joined, own pid", lambda inp: None, lambda s: _eq(ns_of(s), {
        "mount": None, "network": "/run/dockyard/netns/p1", "uts": f"/proc/{SANDBOX_PID}/ns/uts",
        "ipc": f"/proc/{SANDBOX_PID}/ns/ipc", "pid": None})),
    ("no netns path -> the sandbox's", _kw(netns_path=""),
     lambda s: _eq(ns_of(s)["network"], f"/proc/{SANDBOX_PID}/ns/net")),
    ("pid POD", _sec(namespace_options=api_pb2.NamespaceOption(pid=api_pb2.POD)),
     lambda s: _eq(ns_of(s)["pid"], f"/proc/{SANDBOX_PID}/ns/pid")),
    ("pid NODE", _both(_pod_sec(namespace_options=api_pb2.NamespaceOption(pid=api_pb2.NODE)),
                       _sec(namespace_options=api_pb2.NamespaceOption(pid=api_pb2.NODE))),
     lambda s: _eq("pid" in ns_of(s), False)),
    ("pid TARGET", _sec(namespace_options=api_pb2.NamespaceOption(pid=api_pb2.TARGET, target_id="c0")),
     lambda s: _eq(ns_of(s)["pid"], "/proc/777/ns/pid")),
    ("host network: no net/uts ns", _both(
        _pod_sec(namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE)),
        _sec(namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE))),
     lambda s: _eq(("network" in ns_of(s), "uts" in ns_of(s)), (False, False))),
    ("user namespace from the pod", _pod_sec(namespace_options=api_pb2.NamespaceOption(
        pid=api_pb2.CONTAINER, userns_options=api_pb2.UserNamespace(mode=api_pb2.POD, uids=MAPS, gids=MAPS))),
     lambda s: _eq((ns_of(s)["user"], s["linux"]["uidMappings"]),
                   (f"/proc/{SANDBOX_PID}/ns/user", [{"containerID": 0, "hostID": 100000, "size": 65536}]))),
    ("cgroup namespace on request", _kw(private_cgroupns=True), lambda s: _eq(ns_of(s)["cgroup"], None)),
    # --- security context
    ("default caps", lambda inp: None, lambda s: _eq(_caps(s), set(defaults.DEFAULT_CAPABILITIES))),
    ("cap add/drop with and without prefix", _sec(capabilities=api_pb2.Capability(
        add_capabilities=["sys_admin", "CAP_NET_ADMIN"], drop_capabilities=["chown", "CAP_KILL"])),
     lambda s: _eq(_caps(s), set(defaults.DEFAULT_CAPABILITIES) - {"CAP_CHOWN", "CAP_KILL"}
                   | {"CAP_SYS_ADMIN", "CAP_NET_ADMIN"})),
    ("drop ALL, add one", _sec(capabilities=api_pb2.Capability(add_capabilities=["NET_BIND_SERVICE"],
                                                               drop_capabilities=["ALL"])),
     lambda s: _eq(_caps(s), {"CAP_NET_BIND_SERVICE"})),
    ("add ALL, drop one", _sec(capabilities=api_pb2.Capability(add_capabilities=["ALL"], drop_capabilities=["CHOWN"])),
     lambda s: _eq(_caps(s), set(defaults.ALL_CAPABILITIES) - {"CAP_CHOWN"})),
    ("ambient", _sec(capabilities=api_pb2.Capability(add_ambient_capabilities=["NET_RAW"])),
     lambda s: _eq(s["process"]["capabilities"]["ambient"], ["CAP_NET_RAW"])),
    ("privileged", _both(_pod_sec(privileged=True), _sec(privileged=True)), lambda s: _eq(
        (_caps(s) == set(defaults.ALL_CAPABILITIES), "seccomp" in s["linux"], s["linux"]["maskedPaths"],
         s["linux"]["readonlyPaths"], _opts(s, "/sys")[-1], _opts(s, "/sys/fs/cgroup")[-1],
         s["linux"]["devices"][0]["path"], s["linux"]["resources"]["devices"]),
        (True, False, [], [], "rw", "rw", "/dev/sda", [{"allow": True, "access": "rwm"}]))),
    ("readonly rootfs", _sec(readonly_rootfs=True), lambda s: _eq(s["root"]["readonly"], True)),
    ("no_new_privs", _sec(no_new_privs=True), lambda s: _eq(s["process"]["noNewPrivileges"], True)),
    ("default masked/readonly paths", lambda inp: None, lambda s: _eq(
        (s["linux"]["maskedPaths"], s["linux"]["readonlyPaths"]),
        (list(defaults.MASKED_PATHS), list(defaults.READONLY_PATHS)))),
    ("masked/readonly paths from config", _sec(masked_paths=["/proc/x"], readonly_paths=["/proc/y"]),
     lambda s: _eq((s["linux"]["maskedPaths"], s["linux"]["readonlyPaths"]), (["/proc/x"], ["/proc/y"]))),
    ("seccomp RuntimeDefault", lambda inp: None, lambda s: _eq(
        (s["linux"]["seccomp"]["defaultAction"], s["linux"]["seccomp"]["architectures"],
         "mount" in _syscalls(s), "read" in _syscalls(s)),
        ("SCMP_ACT_ERRNO", ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], False, True))),
    ("seccomp RuntimeDefault opens mount to CAP_SYS_ADMIN",
     _sec(capabilities=api_pb2.Capability(add_capabilities=["SYS_ADMIN"])),
     lambda s: _eq("mount" in _syscalls(s), True)),
    ("seccomp on arm64", _kw(machine="aarch64"),
     lambda s: _eq(s["linux"]["seccomp"]["architectures"], ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])),
    ("seccomp Unconfined", _sec(seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Unconfined)),
     lambda s: _eq("seccomp" in s["linux"], False)),
    ("seccomp unset is unconfined", lambda inp: inp.config.linux.security_context.ClearField("seccomp"),
     lambda s: _eq("seccomp" in s["linux"], False)),
    ("seccomp legacy runtime/default",
     _both(lambda inp: inp.config.linux.security_context.ClearField("seccomp"),
           _sec(seccomp_profile_path="runtime/default")),
     lambda s: _eq(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO")),
    ("seccomp Localhost (docker format)", _sec(seccomp=_localhost("/etc/seccomp/custom.json")),
     lambda s: _eq(s["linux"]["seccomp"], {
         "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
         "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]})),
    ("apparmor runtime/default without AppArmor: none",
     _sec(apparmor=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault)),
     lambda s: _eq("apparmorProfile" in s["process"], False)),
    ("apparmor runtime/default with AppArmor", _kw(apparmor_enabled=True),
     lambda s: _eq(s["process"]["apparmorProfile"], "dockyard-default")),
    ("apparmor localhost with AppArmor", _both(_kw(apparmor_enabled=True), _sec(apparmor=_localhost("localhost/my-prof"))),
     lambda s: _eq(s["process"]["apparmorProfile"], "my-prof")),
    ("apparmor localhost, loaded", _both(_kw(apparmor_enabled=True, apparmor_loaded=frozenset({"my-prof"})),
                                         _sec(apparmor=_localhost("my-prof"))),
     lambda s: _eq(s["process"]["apparmorProfile"], "my-prof")),
    ("apparmor unconfined", _both(_kw(apparmor_enabled=True), _sec(apparmor_profile="unconfined")),
     lambda s: _eq("apparmorProfile" in s["process"], False)),
    ("selinux label with SELinux", _both(_kw(selinux_enabled=True), _sec(selinux_options=api_pb2.SELinuxOption(
        user="system_u", role="system_r", type="container_t", level="s0:c1,c2"))),
     lambda s: _eq(s["process"]["selinuxLabel"], "system_u:system_r:container_t:s0:c1,c2")),
    ("selinux options ignored without SELinux", _sec(selinux_options=api_pb2.SELinuxOption(type="container_t")),
     lambda s: _eq("selinuxLabel" in s["process"], False)),
    # --- annotations
    ("annotations", lambda inp: None, lambda s: _eq(s["annotations"], {
        "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.sandbox-id": "p1", "io.kubernetes.cri.sandbox-name": "web",
        "io.kubernetes.cri.sandbox-namespace": "default", "io.kubernetes.cri.sandbox-uid": "uid-1",
        "io.kubernetes.cri.image-name": "docker.io/library/busybox:latest"})),
]

HOST_FILES["/etc/seccomp/custom.json"] = json.dumps({
    "defaultAction": "SCMP_ACT_ERRNO",
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["arm_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
    ],
}).encode()
HOST_FILES["/etc/seccomp/bad.json"] = b'{"defaultAction": "SCMP_ACT_BOGUS"}'
HOST_FILES["/etc/seccomp/notjson.json"] = b"{"


def defaults_deny() -> dict[str, Any]:
    return {"allow": False, "access": "rwm"}


def _opts(spec: dict[str, Any], dest: str) -> list[str]:
    m = mount_at(spec, dest)
    assert m is not None, f"no mount at {dest}"
    return list(m["options"])


def _eq(got: Any, want: Any) -> bool:
    assert got == want
    return True


@pytest.mark.parametrize("mutate,check", [(m, c) for _, m, c in ROWS], ids=[r[0] for r in ROWS])
def test_field(mutate: Mutate, check: Check) -> None:
    inp = base()
    mutate(inp)
    check(build(inp))


# (id, mutate, the field the error must name)
ERRORS: list[tuple[str, Mutate, str]] = [
    ("nothing to run", _image(cmd=()), "config.command"),
    ("no metadata name", _set(config__metadata=api_pb2.ContainerMetadata(name="")), "config.metadata.name"),
    ("env without key", _set(config__envs=[api_pb2.KeyValue(key="", value="x")]), "config.envs[0].key"),
    ("relative working dir", _set(config__working_dir="rel"), "config.working_dir"),
    ("missing host path", _both(_mount(container_path="/data", host_path="/var/lib/data"),
                                _mount(container_path="/gone", host_path="/nonexistent")),
     "config.mounts[1].host_path"),
    ("relative container path", _mount(container_path="data", host_path="/var/lib/data"),
     "config.mounts[0].container_path"),
    ("rro needs readonly", _mount(container_path="/d", host_path="/var/lib/data", recursive_read_only=True),
     "config.mounts[0].recursive_read_only"),
    ("rro needs private", _mount(container_path="/d", host_path="/var/lib/data", readonly=True, recursive_read_only=True,
                                 propagation=api_pb2.PROPAGATION_HOST_TO_CONTAINER),
     "config.mounts[0].recursive_read_only"),
    ("mount uid maps without gid maps", _mount(container_path="/d", host_path="/var/lib/data", uidMappings=MAPS),
     "config.mounts[0]"),
    ("image mount", _mount(container_path="/d", image=api_pb2.ImageSpec(image="busybox")), "config.mounts[0].image"),
    ("unknown user name", _image(user="ghost"), "config User"),
    ("unknown group name", _image(user="app:ghosts"), "config User"),
    ("unknown run_as_username", _sec(run_as_username="ghost"), "config.linux.security_context.run_as_username"),
    ("negative run_as_user", _sec(run_as_user=I64(value=-1)), "config.linux.security_context.run_as_user"),
    ("run_as_group without user", _sec(run_as_group=I64(value=5)), "config.linux.security_context.run_as_group"),
    ("negative supplemental group", _sec(supplemental_groups=[-3]),
     "config.linux.security_context.supplemental_groups[0]"),
    ("device missing", _set(config__devices=[api_pb2.Device(container_path="/dev/x", host_path="/dev/nothing")]),
     "config.devices[0].host_path"),
    ("device not a device", _set(config__devices=[api_pb2.Device(container_path="/dev/x", host_path="/etc/passwd")]),
     "config.devices[0].host_path"),
    ("device bad permissions", _set(config__devices=[api_pb2.Device(container_path="/dev/fuse",
                                                                    host_path="/dev/fuse", permissions="rwx")]),
     "config.devices[0].permissions"),
    ("negative cpu shares", _res(cpu_shares=-1), "config.linux.resources.cpu_shares"),
    ("negative memory", _res(memory_limit_in_bytes=-5), "config.linux.resources.memory_limit_in_bytes"),
    ("swap below memory", _res(memory_limit_in_bytes=100 << 20, memory_swap_limit_in_bytes=50 << 20),
     "config.linux.resources.memory_swap_limit_in_bytes"),
    ("hugepage without size", _res(hugepage_limits=[api_pb2.HugepageLimit(limit=1)]),
     "config.linux.resources.hugepage_limits[0].page_size"),
    ("oom_score_adj out of range", _res(oom_score_adj=1001), "config.linux.resources.oom_score_adj"),
    ("privileged in an unprivileged pod", _sec(privileged=True), "config.linux.security_context.privileged"),
    ("unknown capability", _sec(capabilities=api_pb2.Capability(add_capabilities=["CAP_FLY"])),
     "config.linux.security_context.capabilities.add_capabilities[0]"),
    ("unknown capability dropped", _sec(capabilities=api_pb2.Capability(drop_capabilities=["ALL", "nope"])),
     "config.linux.security_context.capabilities.drop_capabilities[1]"),
    ("seccomp localhost missing", _sec(seccomp=_localhost("/etc/seccomp/none.json")),
     "config.linux.security_context.seccomp.localhost_ref"),
    ("seccomp localhost relative", _sec(seccomp=_localhost("custom.json")),
     "config.linux.security_context.seccomp.localhost_ref"),
    ("seccomp localhost invalid", _sec(seccomp=_localhost("/etc/seccomp/bad.json")),
     "config.linux.security_context.seccomp.localhost_ref"),
    ("seccomp localhost not JSON", _sec(seccomp=_localhost("/etc/seccomp/notjson.json")),
     "config.linux.security_context.seccomp.localhost_ref"),
    ("seccomp legacy unknown", _both(lambda inp: inp.config.linux.security_context.ClearField("seccomp"),
                                     _sec(seccomp_profile_path="strict")),
     "config.linux.security_context.seccomp_profile_path"),
    ("seccomp legacy localhost missing", _both(lambda inp: inp.config.linux.security_context.ClearField("seccomp"),
                                               _sec(seccomp_profile_path="localhost//etc/seccomp/none.json")),
     "config.linux.security_context.seccomp_profile_path"),
    ("apparmor localhost without AppArmor", _sec(apparmor=_localhost("my-prof")),
     "config.linux.security_context.apparmor.localhost_ref"),
    ("apparmor localhost not loaded", _both(_kw(apparmor_enabled=True, apparmor_loaded=frozenset({"dockyard-default"})),
                                            _sec(apparmor=_localhost("localhost/not-loaded"))),
     "config.linux.security_context.apparmor.localhost_ref"),
    ("masked path relative", _sec(masked_paths=["proc/x"]), "config.linux.security_context.masked_paths[0]"),
    ("pid POD when the pod uses the host's", _both(
        _pod_sec(namespace_options=api_pb2.NamespaceOption(pid=api_pb2.NODE)),
        _sec(namespace_options=api_pb2.NamespaceOption(pid=api_pb2.POD))),
     "config.linux.security_context.namespace_options.pid"),
    ("TARGET without target id", _sec(namespace_options=api_pb2.NamespaceOption(pid=api_pb2.TARGET)),
     "config.linux.security_context.namespace_options.target_id"),
    ("TARGET without resolver", _both(_kw(target_pid=None), _sec(namespace_options=api_pb2.NamespaceOption(
        pid=api_pb2.TARGET, target_id="c0"))), "config.linux.security_context.namespace_options.target_id"),
    ("userns without mappings", _pod_sec(namespace_options=api_pb2.NamespaceOption(
        userns_options=api_pb2.UserNamespace(mode=api_pb2.POD))),
     "sandbox_config.linux.security_context.namespace_options.userns_options.uids"),
    ("userns with host network", _pod_sec(namespace_options=api_pb2.NamespaceOption(
        network=api_pb2.NODE, userns_options=api_pb2.UserNamespace(mode=api_pb2.POD, uids=MAPS, gids=MAPS))),
     "sandbox_config.linux.security_context.namespace_options.network"),
    ("zero-length id mapping", _pod_sec(namespace_options=api_pb2.NamespaceOption(
        userns_options=api_pb2.UserNamespace(mode=api_pb2.POD, uids=[api_pb2.IDMapping(length=0)], gids=MAPS))),
     "userns_options.uids[0].length"),
    ("bad sandbox pid", _kw(sandbox_pid=0), "sandbox_pid"),
]


@pytest.mark.parametrize("mutate,field", [(m, f) for _, m, f in ERRORS], ids=[r[0] for r in ERRORS])
def test_error_names_field(mutate: Mutate, field: str) -> None:
    inp = base()
    mutate(inp)
    with pytest.raises(InvalidArgument) as info:
        container_spec(inp.config, inp.sandbox, image=inp.image, **inp.kw)
    assert field in info.value.message


def test_image_volumes_for_the_caller() -> None:
    """The volumes the caller must create are the ones the spec binds, and
    a CRI mount at a VOLUME path takes its place."""
    inp = base()
    _both(_image(volumes=("/var/cache", "/data", "relative")), _mount(container_path="/data/", host_path="/var/lib/data"))(inp)
    vols = container_image_volumes(inp.config, inp.image, "/v")
    assert [v.container_path for v in vols] == ["/var/cache"]
    spec = container_spec(inp.config, inp.sandbox, image=inp.image, volumes_dir="/v", **inp.kw)
    assert mount_at(spec, "/var/cache") == {"destination": "/var/cache", "type": "bind", "source": vols[0].host_path,
                                            "options": ["rbind", "rprivate", "rw"]}
    assert container_image_volumes(inp.config, inp.image, "") == []


def test_default_profile_compiles() -> None:
    """RuntimeDefault compiles with the installed libseccomp (every name
    resolves or is skipped, and the program fits the kernel's limit)."""
    pytest.importorskip("ctypes")
    inp = base()
    spec = build(inp)
    compiled = runtime_seccomp.compile_filter(spec["linux"]["seccomp"])
    assert compiled.program and len(compiled.program) % 8 == 0

"""config.json (OCI runtime spec 1.2, Linux) -> frozen dataclasses.

Parsing is pure: a dict goes in, a :class:`Spec` comes out, or an
:class:`InvalidSpec` that names the field (``process.user.uid``,
``mounts[3].destination``).  Sections that another module owns are kept as
plain dicts here and validated there: ``linux.resources`` by
``runtime.cgroups``, ``linux.seccomp`` by ``runtime.seccomp``,
``linux.devices`` by ``runtime.rootfs.devices``, ``process.rlimits`` by
``runtime.rlimits``.
"""

from __future__ import annotations

from .kernel.errors import InvalidSpec
from .kernel.lean.records import Record, field

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
PROPAGATIONS = ("", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable")
class IDMap(Record):
    container_id: int
    host_id: int
    size: int
class User(Record):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()
class Capabilities(Record):
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()
class Process(Record):
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: User = User()
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    capabilities: Capabilities | None = None
    rlimits: tuple[dict[str, Any], ...] = ()
    no_new_privileges: bool = False
    apparmor_profile: str = ""
    selinux_label: str = ""
    oom_score_adj: int | None = None
class Root(Record):
    path: str
    readonly: bool = False
class Mount(Record):
    destination: str
    type: str = ""
    source: str = ""
    options: tuple[str, ...] = ()
    uid_mappings: tuple[IDMap, ...] = ()
    gid_mappings: tuple[IDMap, ...] = ()
class Namespace(Record):
    type: str
    path: str = ""
class Hook(Record):
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None
class Hooks(Record):
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()
class Linux(Record):
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IDMap, ...] = ()
    gid_mappings: tuple[IDMap, ...] = ()
    devices: tuple[dict[str, Any], ...] = ()
    cgroups_path: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    rootfs_propagation: str = ""
    seccomp: dict[str, Any] | None = None
    sysctl: dict[str, str] = field(default_factory=dict)
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    mount_label: str = ""
    personality: dict[str, Any] | None = None
    time_offsets: dict[str, dict[str, int]] = field(default_factory=dict)

    def namespace(self, kind: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == kind:
                return ns
        return None
class Spec(Record):
    oci_version: str
    root: Root
    process: Process | None = None
    hostname: str = ""
    domainname: str = ""
    mounts: tuple[Mount, ...] = ()
    hooks: Hooks = Hooks()
    linux: Linux = Linux()
    annotations: dict[str, str] = field(default_factory=dict)


# --- field readers -----------------------------------------------------------
# Each reader takes the parent object, the key and the dotted path of the
# parent, so an error names the full field.


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidSpec(path, f"must be an object, not {type(value).__name__}")
    return value


def _get_obj(parent: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    return _obj(value, _join(path, key))


def _get_list(parent: dict[str, Any], key: str, path: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidSpec(_join(path, key), f"must be an array, not {type(value).__name__}")
    return value


def _get_str(parent: dict[str, Any], key: str, path: str, default: str = "", *, required: bool = False) -> str:
    value = parent.get(key)
    if value is None:
        if required:
            raise InvalidSpec(_join(path, key), "is required")
        return default
    if not isinstance(value, str):
        raise InvalidSpec(_join(path, key), f"must be a string, not {type(value).__name__}")
    return value


def _get_int(parent: dict[str, Any], key: str, path: str, default: int | None = None, *,
             required: bool = False, minimum: int | None = None, maximum: int | None = None) -> int | None:
    value = parent.get(key)
    if value is None:
        if required:
            raise InvalidSpec(_join(path, key), "is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(_join(path, key), f"must be an integer, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidSpec(_join(path, key), f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidSpec(_join(path, key), f"must be <= {maximum}, got {value}")
    return value


def _req_int(parent: dict[str, Any], key: str, path: str, **kw: Any) -> int:
    value = _get_int(parent, key, path, required=True, **kw)
    assert value is not None
    return value


def _get_bool(parent: dict[str, Any], key: str, path: str) -> bool:
    value = parent.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidSpec(_join(path, key), f"must be a boolean, not {type(value).__name__}")
    return value


def _get_strs(parent: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
    items = _get_list(parent, key, path)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidSpec(_join(_join(path, key), i), "must be a string")
    return tuple(items)


def _get_str_map(parent: dict[str, Any], key: str, path: str) -> dict[str, str]:
    value = _get_obj(parent, key, path)
    if value is None:
        return {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise InvalidSpec(_join(_join(path, key), k), "must be a string")
    return dict(value)


U32 = 0xFFFFFFFF


def _idmaps(parent: dict[str, Any], key: str, path: str) -> tuple[IDMap, ...]:
    out = []
    for i, raw in enumerate(_get_list(parent, key, path)):
        where = _join(_join(path, key), i)
        m = _obj(raw, where)
        out.append(IDMap(
            container_id=_req_int(m, "containerID", where, minimum=0, maximum=U32),
            host_id=_req_int(m, "hostID", where, minimum=0, maximum=U32),
            size=_req_int(m, "size", where, minimum=1, maximum=U32),
        ))
    return tuple(out)


# --- sections ------------------------------------------------------------------

# execve(2) refuses any one argument or environment string longer than
# MAX_ARG_STRLEN (32 pages, 128 KiB, counting its NUL) with E2BIG, and a C
# string ends at its first NUL: such a process could never start, so the
# spec is refused before anything is made for it.
MAX_ARG_STRLEN = 32 * 4096


def _check_exec_strings(items: tuple[str, ...], field: str) -> None:
    for i, item in enumerate(items):
        if "\0" in item:
            raise InvalidSpec(f"{field}[{i}]", "contains a NUL byte")
        if len(item) >= MAX_ARG_STRLEN // 4 and len(item.encode("utf-8", "surrogateescape")) >= MAX_ARG_STRLEN:
            raise InvalidSpec(f"{field}[{i}]", f"is longer than {MAX_ARG_STRLEN - 1} bytes, the most execve(2) takes")


def _parse_process(raw: dict[str, Any], path: str = "process") -> Process:
    args = _get_strs(raw, "args", path)
    if not args or not args[0]:
        raise InvalidSpec(_join(path, "args"), "must name the program to run")
    _check_exec_strings(args, _join(path, "args"))
    cwd = _get_str(raw, "cwd", path, "/")
    if not cwd.startswith("/"):
        raise InvalidSpec(_join(path, "cwd"), f"must be an absolute path, got {cwd!r}")
    env = _get_strs(raw, "env", path)
    _check_exec_strings(env, _join(path, "env"))
    for i, item in enumerate(env):
        if "=" not in item:
            raise InvalidSpec(f"{path}.env[{i}]", f"must be KEY=VALUE, got {item!r}")
    user_raw = _get_obj(raw, "user", path) or {}
    upath = _join(path, "user")
    gids = _get_list(user_raw, "additionalGids", upath)
    for i, g in enumerate(gids):
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g <= U32:
            raise InvalidSpec(f"{upath}.additionalGids[{i}]", "must be a gid (0..4294967295)")
    user = User(
        uid=_get_int(user_raw, "uid", upath, 0, minimum=0, maximum=U32) or 0,
        gid=_get_int(user_raw, "gid", upath, 0, minimum=0, maximum=U32) or 0,
        umask=_get_int(user_raw, "umask", upath, None, minimum=0, maximum=0o777),
        additional_gids=tuple(gids),
    )
    console = None
    cs = _get_obj(raw, "consoleSize", path)
    if cs is not None:
        cpath = _join(path, "consoleSize")
        console = (_req_int(cs, "height", cpath, minimum=0, maximum=0xFFFF),
                   _req_int(cs, "width", cpath, minimum=0, maximum=0xFFFF))
    caps = None
    caps_raw = _get_obj(raw, "capabilities", path)
    if caps_raw is not None:
        cpath = _join(path, "capabilities")
        caps = Capabilities(*(_get_strs(caps_raw, k, cpath)
                              for k in ("bounding", "effective", "inheritable", "permitted", "ambient")))
    rlimits = []
    for i, r in enumerate(_get_list(raw, "rlimits", path)):
        rlimits.append(_obj(r, f"{path}.rlimits[{i}]"))
    return Process(
        args=args,
        env=env,
        cwd=cwd,
        user=user,
        terminal=_get_bool(raw, "terminal", path),
        console_size=console,
        capabilities=caps,
        rlimits=tuple(rlimits),
        no_new_privileges=_get_bool(raw, "noNewPrivileges", path),
        apparmor_profile=_get_str(raw, "apparmorProfile", path),
        selinux_label=_get_str(raw, "selinuxLabel", path),
        oom_score_adj=_get_int(raw, "oomScoreAdj", path, None, minimum=-1000, maximum=1000),
    )


def parse_process(raw: Any, path: str = "process") -> Process:
    """Parse a process object on its own (``exec --process FILE``)."""
    return _parse_process(_obj(raw, path), path)


def _parse_mounts(raw: dict[str, Any]) -> tuple[Mount, ...]:
    out = []
    for i, item in enumerate(_get_list(raw, "mounts", "")):
        where = f"mounts[{i}]"
        m = _obj(item, where)
        dest = _get_str(m, "destination", where, required=True)
        if not dest.startswith("/"):
            raise InvalidSpec(_join(where, "destination"), f"must be an absolute path, got {dest!r}")
        out.append(Mount(
            destination=dest,
            type=_get_str(m, "type", where),
            source=_get_str(m, "source", where),
            options=_get_strs(m, "options", where),
            uid_mappings=_idmaps(m, "uidMappings", where),
            gid_mappings=_idmaps(m, "gidMappings", where),
        ))
    return tuple(out)


def _parse_hooks(raw: dict[str, Any]) -> Hooks:
    hooks_raw = _get_obj(raw, "hooks", "") or {}
    parsed: dict[str, tuple[Hook, ...]] = {}
    for kind in HOOK_KINDS:
        items = []
        for i, h in enumerate(_get_list(hooks_raw, kind, "hooks")):
            where = f"hooks.{kind}[{i}]"
            hd = _obj(h, where)
            hpath = _get_str(hd, "path", where, required=True)
            if not hpath.startswith("/"):
                raise InvalidSpec(_join(where, "path"), f"must be an absolute path, got {hpath!r}")
            items.append(Hook(hpath, _get_strs(hd, "args", where), _get_strs(hd, "env", where),
                              _get_int(hd, "timeout", where, None, minimum=1)))
        parsed[kind] = tuple(items)
    return Hooks(parsed["prestart"], parsed["createRuntime"], parsed["createContainer"],
                 parsed["startContainer"], parsed["poststart"], parsed["poststop"])


def _parse_linux(raw: dict[str, Any]) -> Linux:
    lx = _get_obj(raw, "linux", "") or {}
    path = "linux"
    namespaces = []
    seen: set[str] = set()
    for i, item in enumerate(_get_list(lx, "namespaces", path)):
        where = f"linux.namespaces[{i}]"
        ns = _obj(item, where)
        kind = _get_str(ns, "type", where, required=True)
        if kind not in NAMESPACE_TYPES:
            raise InvalidSpec(_join(where, "type"), f"unknown namespace type {kind!r} (known: {', '.join(NAMESPACE_TYPES)})")
        if kind in seen:
            raise InvalidSpec(_join(where, "type"), f"namespace {kind!r} is listed twice")
        seen.add(kind)
        nspath = _get_str(ns, "path", where)
        if nspath and not nspath.startswith("/"):
            raise InvalidSpec(_join(where, "path"), f"must be an absolute path, got {nspath!r}")
        namespaces.append(Namespace(kind, nspath))
    devices = tuple(_obj(d, f"linux.devices[{i}]") for i, d in enumerate(_get_list(lx, "devices", path)))
    prop = _get_str(lx, "rootfsPropagation", path)
    if prop not in PROPAGATIONS:
        raise InvalidSpec("linux.rootfsPropagation", f"unknown propagation {prop!r}")
    personality = _get_obj(lx, "personality", path)
    if personality is not None:
        domain = _get_str(personality, "domain", "linux.personality", required=True)
        if domain not in ("LINUX", "LINUX32"):
            raise InvalidSpec("linux.personality.domain", f"must be LINUX or LINUX32, got {domain!r}")
    time_offsets: dict[str, dict[str, int]] = {}
    for clock, off in (_get_obj(lx, "timeOffsets", path) or {}).items():
        where = f"linux.timeOffsets.{clock}"
        if clock not in ("monotonic", "boottime"):
            raise InvalidSpec(where, "only monotonic and boottime clocks can be offset")
        o = _obj(off, where)
        time_offsets[clock] = {"secs": _get_int(o, "secs", where, 0) or 0,
                               "nanosecs": _get_int(o, "nanosecs", where, 0, minimum=0, maximum=999_999_999) or 0}
    uid_maps = _idmaps(lx, "uidMappings", path)
    gid_maps = _idmaps(lx, "gidMappings", path)
    for name, maps in (("uidMappings", uid_maps), ("gidMappings", gid_maps)):
        if maps and "user" not in seen:
            raise InvalidSpec(f"linux.{name}", "id mappings need a user namespace in linux.namespaces")
    return Linux(
        namespaces=tuple(namespaces),
        uid_mappings=uid_maps,
        gid_mappings=gid_maps,
        devices=devices,
        cgroups_path=_get_str(lx, "cgroupsPath", path),
        resources=_get_obj(lx, "resources", path) or {},
        rootfs_propagation=prop,
        seccomp=_get_obj(lx, "seccomp", path),
        sysctl=_get_str_map(lx, "sysctl", path),
        masked_paths=_get_strs(lx, "maskedPaths", path),
        readonly_paths=_get_strs(lx, "readonlyPaths", path),
        mount_label=_get_str(lx, "mountLabel", path),
        personality=personality,
        time_offsets=time_offsets,
    )


def parse_spec(raw: Any) -> Spec:
    """Validate a decoded config.json and return the typed :class:`Spec`."""
    top = _obj(raw, "config.json")
    version = _get_str(top, "ociVersion", "", required=True)
    if not version.startswith("1."):
        raise InvalidSpec("ociVersion", f"unsupported version {version!r} (1.x is supported)")
    root_raw = _get_obj(top, "root", "")
    if root_raw is None:
        raise InvalidSpec("root", "is required")
    root = Root(_get_str(root_raw, "path", "root", required=True), _get_bool(root_raw, "readonly", "root"))
    if not root.path:
        raise InvalidSpec("root.path", "must not be empty")
    proc_raw = _get_obj(top, "process", "")
    linux = _parse_linux(top)
    spec = Spec(
        oci_version=version,
        root=root,
        process=None if proc_raw is None else _parse_process(proc_raw),
        hostname=_get_str(top, "hostname", ""),
        domainname=_get_str(top, "domainname", ""),
        mounts=_parse_mounts(top),
        hooks=_parse_hooks(top),
        linux=linux,
        annotations=_get_str_map(top, "annotations", ""),
    )
    for name, value in (("hostname", spec.hostname), ("domainname", spec.domainname)):
        if value and linux.namespace("uts") is None:
            raise InvalidSpec(name, f"setting the {name} needs a private uts namespace in linux.namespaces")
    for key in linux.sysctl:
        _check_sysctl(key, linux)
    return spec


# Only these sysctls are per-namespace; any other would change the host.
_IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                          "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})


def _private(linux: Linux, kind: str) -> bool:
    ns = linux.namespace(kind)
    return ns is not None and not ns.path


def _check_sysctl(key: str, linux: Linux) -> None:
    field = f"linux.sysctl.{key}"
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        if linux.namespace("ipc") is None:
            raise InvalidSpec(field, "is an ipc sysctl and needs an ipc namespace in linux.namespaces")
        return
    if key.startswith("net."):
        if linux.namespace("network") is None:
            raise InvalidSpec(field, "is a network sysctl and needs a network namespace in linux.namespaces")
        return
    if key == "kernel.domainname":
        if linux.namespace("uts") is None:
            raise InvalidSpec(field, "needs a uts namespace in linux.namespaces")
        return
    if key == "kernel.hostname":
        raise InvalidSpec(field, "set the hostname with the top-level hostname field instead")
    raise InvalidSpec(field, "is not namespaced: setting it would change the host")

"""CDI (Container Device Interface) devices -> edits of the OCI spec.

A container asks for devices by fully qualified name, ``vendor.com/class=name``,
in ``config.CDI_devices`` or in annotations whose key starts ``cdi.k8s.io/``
(the value a comma-separated list; device plugins and DRA drivers use both).
Spec files (``*.json``, ``*.yaml``) in the configured directories
(``cdi_spec_dirs``, by default /etc/cdi then /var/run/cdi) describe each
device: a ``kind`` (``vendor.com/class``), its ``devices`` by name, each with
``containerEdits``, and file-wide ``containerEdits`` applied once whenever
any of its devices is used.

Rules this module follows (the CDI specification, and the reference
library's behaviour where the specification is silent):

* A later directory has priority: a device defined in /var/run/cdi hides the
  same name in /etc/cdi.  Two files of one directory defining the same device
  make it unresolvable (a conflict, named with both files).
* A spec file that does not parse or validate is skipped; asking for one of
  the devices it would define reports that file's error.
* Edits: ``env`` entries replace the same variable or are appended;
  ``deviceNodes`` become ``linux.devices`` (type, major and minor filled in
  from the host node at ``hostPath``, default ``path``, unless the spec gives
  them) with an allow rule in ``linux.resources.devices`` (permissions
  default ``rwm``, ``none`` for no access), owned by the process's uid/gid
  when the spec names none; ``mounts`` replace a mount at the same
  destination and all mounts are then ordered by depth; ``hooks`` are added
  to ``hooks.<hookName>``; ``additionalGids`` join the user's (0 ignored).
* ``intelRdt`` and ``netDevices`` have no support in this runtime: asking for
  a device that needs them is InvalidArgument, not a container silently
  without them.

Pure except for :func:`load_spec_dirs` (reads files) and the injected stat.
Errors name the CRI field that asked for the device.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import InvalidArgument, shorten
from .process_args import merge_env

DEFAULT_SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")
ANNOTATION_PREFIX = "cdi.k8s.io/"
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
SPEC_SUFFIXES = (".json", ".yaml")
_VENDOR = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?")
_CLASS = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?")
_DEVICE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?")
_VERSION = re.compile(r"\d+\.\d+\.\d+")
_NODE_TYPES = {"b": "b", "c": "c", "u": "c", "p": "p"}

StatPath = Callable[[str], os.stat_result]


@dataclass(frozen=True, slots=True)
class Device:
    """One device as its spec file defines it."""

    kind: str
    name: str
    edits: Mapping[str, Any]
    spec_edits: Mapping[str, Any]  # the file-wide containerEdits
    source: str  # the spec file

    @property
    def qualified(self) -> str:
        return f"{self.kind}={self.name}"


@dataclass(slots=True)
class Registry:
    """The devices of every valid spec file, and why the others were skipped."""

    devices: dict[str, Device] = field(default_factory=dict)
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # name -> the files that clash
    broken: dict[str, str] = field(default_factory=dict)  # file -> why it was skipped
    dirs: tuple[str, ...] = ()


def parse_qualified(name: str, where: str) -> tuple[str, str]:
    """``vendor.com/class=name`` -> (kind, name); InvalidArgument naming ``where``."""
    kind, sep, device = name.partition("=")
    vendor, slash, klass = kind.partition("/")
    if not sep or not slash or not _VENDOR.fullmatch(vendor) or not _CLASS.fullmatch(klass) \
            or not _DEVICE.fullmatch(device):
        raise InvalidArgument(f"{where}: {shorten(name)!r} is not a qualified CDI device name "
                              "(vendor.com/class=name)")
    return kind, device


def requested_devices(cdi_devices: Sequence[str], annotations: Mapping[str, str],
                      field_name: str = "config.CDI_devices") -> list[tuple[str, str]]:
    """The devices a container asks for, in order, each once: (qualified name, the field that asked)."""
    wanted: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(name: str, where: str) -> None:
        parse_qualified(name, where)
        if name not in seen:
            seen.add(name)
            wanted.append((name, where))

    for i, name in enumerate(cdi_devices):
        add(name, f"{field_name}[{i}].name")
    for key in sorted(annotations):
        if key.startswith(ANNOTATION_PREFIX):
            for name in (n.strip() for n in annotations[key].split(",")):
                if name:
                    add(name, f"config.annotations[{key}]")
    return wanted


def _check_edits(edits: object, where: str) -> Mapping[str, Any]:
    if edits is None:
        return {}
    if not isinstance(edits, Mapping):
        raise ValueError(f"{where}: not an object")
    for i, env in enumerate(edits.get("env") or []):
        if not isinstance(env, str) or "=" not in env or env.startswith("="):
            raise ValueError(f"{where}.env[{i}]: {env!r} is not NAME=VALUE")
    for i, node in enumerate(edits.get("deviceNodes") or []):
        here = f"{where}.deviceNodes[{i}]"
        if not isinstance(node, Mapping) or not str(node.get("path", "")).startswith("/"):
            raise ValueError(f"{here}.path: must be an absolute path")
        if node.get("type", "") not in ("", *_NODE_TYPES):
            raise ValueError(f"{here}.type: {node.get('type')!r} is not b, c, u or p")
        perms = node.get("permissions", "")
        if perms != "none" and not set(perms) <= set("rwm"):
            raise ValueError(f"{here}.permissions: {perms!r} is not made of r, w and m (or 'none')")
    for i, mount in enumerate(edits.get("mounts") or []):
        here = f"{where}.mounts[{i}]"
        if not isinstance(mount, Mapping) or not mount.get("hostPath") or \
                not str(mount.get("containerPath", "")).startswith("/"):
            raise ValueError(f"{here}: needs hostPath and an absolute containerPath")
    for i, hook in enumerate(edits.get("hooks") or []):
        here = f"{where}.hooks[{i}]"
        if not isinstance(hook, Mapping) or hook.get("hookName") not in HOOK_NAMES:
            raise ValueError(f"{here}.hookName: one of {', '.join(HOOK_NAMES)}")
        if not str(hook.get("path", "")).startswith("/"):
            raise ValueError(f"{here}.path: must be an absolute path")
    return edits


def parse_spec(doc: object, source: str) -> list[Device]:
    """A spec file's parsed document -> its devices; ValueError saying what is wrong."""
    if not isinstance(doc, Mapping):
        raise ValueError("not a CDI spec (an object with cdiVersion, kind, devices)")
    version = doc.get("cdiVersion")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValueError(f"cdiVersion: {version!r} is not a version like 0.6.0")
    kind = doc.get("kind")
    vendor, slash, klass = str(kind).partition("/")
    if not isinstance(kind, str) or not slash or not _VENDOR.fullmatch(vendor) or not _CLASS.fullmatch(klass):
        raise ValueError(f"kind: {kind!r} is not vendor.com/class")
    spec_edits = _check_edits(doc.get("containerEdits"), "containerEdits")
    devices = doc.get("devices")
    if not isinstance(devices, list) or not devices:
        raise ValueError("devices: a spec file defines at least one device")
    out: list[Device] = []
    names: set[str] = set()
    for i, dev in enumerate(devices):
        name = dev.get("name") if isinstance(dev, Mapping) else None
        if not isinstance(name, str) or not _DEVICE.fullmatch(name):
            raise ValueError(f"devices[{i}].name: {name!r} is not a device name")
        if name in names:
            raise ValueError(f"devices[{i}].name: {name!r} is defined twice")
        names.add(name)
        edits = _check_edits(dev.get("containerEdits"), f"devices[{i}].containerEdits")
        out.append(Device(kind, name, edits, spec_edits, source))
    return out


def build_registry(files_by_dir: Sequence[tuple[str, Mapping[str, object]]]) -> Registry:
    """(directory, {file: parsed document or the Exception reading it}) in priority order, lowest
    first -> the registry (pure)."""
    registry = Registry(dirs=tuple(d for d, _ in files_by_dir))
    for _, files in files_by_dir:
        here: dict[str, Device] = {}
        clashes: dict[str, list[str]] = {}
        for path in sorted(files):
            doc = files[path]
            if isinstance(doc, Exception):
                registry.broken[path] = str(doc)
                continue
            try:
                devices = parse_spec(doc, path)
            except ValueError as err:
                registry.broken[path] = str(err)
                continue
            for dev in devices:
                held = here.get(dev.qualified)
                if held is not None:
                    clashes.setdefault(dev.qualified, [held.source]).append(path)
                else:
                    here[dev.qualified] = dev
        for name, dev in here.items():  # a later directory hides an earlier one
            registry.devices[name] = dev
            registry.conflicts.pop(name, None)
        for name, paths in clashes.items():
            registry.devices.pop(name, None)
            registry.conflicts[name] = paths
    return registry


def resolve(registry: Registry, wanted: Iterable[tuple[str, str]]) -> list[Device]:
    """The requested devices; InvalidArgument naming the field for one that is unknown or in conflict."""
    found = []
    for name, where in wanted:
        dev = registry.devices.get(name)
        if dev is not None:
            found.append(dev)
            continue
        if name in registry.conflicts:
            raise InvalidArgument(f"{where}: CDI device {name!r} is defined by more than one spec file: "
                                  f"{', '.join(registry.conflicts[name])}")
        kind = name.partition("=")[0]
        why = "".join(f"; {path} was skipped: {err}" for path, err in sorted(registry.broken.items()))
        known = sorted(n for n in registry.devices if n.startswith(kind + "="))
        hint = f" (kind {kind} has: {', '.join(known[:8])})" if known else f" (no spec file defines kind {kind})"
        raise InvalidArgument(f"{where}: CDI device {name!r} is not defined in "
                              f"{', '.join(registry.dirs) or 'any spec directory'}{hint}{why}")
    return found


def _device_node(node: Mapping[str, Any], process_user: Mapping[str, Any], stat_path: StatPath,
                 where: str) -> dict[str, Any]:
    path = str(node["path"])
    host = str(node.get("hostPath") or path)
    kind = _NODE_TYPES.get(str(node.get("type", "")), "")
    major, minor = node.get("major"), node.get("minor")
    mode = node.get("fileMode")
    given = bool(kind) and (bool(major) or kind == "p")
    try:
        st = stat_path(host)
    except OSError as err:
        if not given:
            raise InvalidArgument(f"{where}: host device {host} of the CDI spec: {err.strerror}") from err
        st = None
    if st is not None:
        if stat.S_ISBLK(st.st_mode):
            host_kind = "b"
        elif stat.S_ISCHR(st.st_mode):
            host_kind = "c"
        elif stat.S_ISFIFO(st.st_mode):
            host_kind = "p"
        else:
            raise InvalidArgument(f"{where}: {host} of the CDI spec is not a device node")
        if mode is None:
            mode = stat.S_IMODE(st.st_mode)
        if not given:
            if kind and kind != host_kind:
                raise InvalidArgument(f"{where}: the CDI spec says {path} is type {kind}, {host} is {host_kind}")
            kind, major, minor = host_kind, os.major(st.st_rdev), os.minor(st.st_rdev)
    out: dict[str, Any] = {"path": path, "type": kind, "major": int(major or 0), "minor": int(minor or 0)}
    if mode is not None:
        out["fileMode"] = int(mode)
    uid, gid = node.get("uid"), node.get("gid")
    if uid is None and int(process_user.get("uid", 0)) > 0:
        uid = process_user["uid"]
    if gid is None and int(process_user.get("gid", 0)) > 0:
        gid = process_user["gid"]
    if uid is not None:
        out["uid"] = int(uid)
    if gid is not None:
        out["gid"] = int(gid)
    return out


def _depth(dest: str) -> int:
    return len([p for p in dest.split("/") if p])


def apply_devices(spec: dict[str, Any], devices: Sequence[Device], wanted: Sequence[tuple[str, str]],
                  stat_path: StatPath = os.lstat) -> dict[str, Any]:
    """``spec`` with each device's edits and each spec file's common edits (once) applied (pure but
    for ``stat_path``; ``spec`` is modified and returned)."""
    where_of = dict(wanted)
    batches: list[tuple[Mapping[str, Any], str]] = []
    done_files: set[str] = set()
    for dev in devices:
        where = where_of.get(dev.qualified, "config.CDI_devices")
        if dev.source not in done_files:
            done_files.add(dev.source)
            batches.append((dev.spec_edits, where))
        batches.append((dev.edits, where))
    process = spec.setdefault("process", {})
    user = process.setdefault("user", {})
    linux = spec.setdefault("linux", {})
    mounts_changed = False
    for edits, where in batches:
        for unsupported in ("intelRdt", "netDevices"):
            if edits.get(unsupported):
                raise InvalidArgument(f"{where}: the CDI device needs {unsupported}, which this runtime does not support")
        if edits.get("env"):
            process["env"] = merge_env(process.get("env") or [], edits["env"])
        for node in edits.get("deviceNodes") or []:
            dev_node = _device_node(node, user, stat_path, where)
            linux["devices"] = [d for d in linux.get("devices") or [] if d.get("path") != dev_node["path"]]
            linux["devices"].append(dev_node)
            if dev_node["type"] in ("b", "c"):
                perms = node.get("permissions") or "rwm"
                rules = linux.setdefault("resources", {}).setdefault("devices", [])
                rules.append({"allow": True, "type": dev_node["type"], "major": dev_node["major"],
                              "minor": dev_node["minor"], "access": "" if perms == "none" else perms})
        for m in edits.get("mounts") or []:
            dest = os.path.normpath(str(m["containerPath"]))
            options = [str(o) for o in m.get("options") or []]
            kind = str(m.get("type") or "")
            if {"bind", "rbind"} & set(options):
                kind = "bind"  # the type of a bind mount is a dummy ("none" in many spec files)
            elif kind in ("", "bind", "none"):
                kind = "bind"
                options.insert(0, "rbind")
            mount: dict[str, Any] = {"destination": dest, "source": str(m["hostPath"]), "type": kind,
                                     "options": options}
            spec["mounts"] = [x for x in spec.get("mounts") or [] if x.get("destination") != dest] + [mount]
            mounts_changed = True
        for hook in edits.get("hooks") or []:
            entry: dict[str, Any] = {"path": hook["path"]}
            for key in ("args", "env"):
                if hook.get(key):
                    entry[key] = list(hook[key])
            if hook.get("timeout"):
                entry["timeout"] = int(hook["timeout"])
            spec.setdefault("hooks", {}).setdefault(hook["hookName"], []).append(entry)
        for gid in edits.get("additionalGids") or []:
            gids = user.setdefault("additionalGids", [])
            if int(gid) and int(gid) not in gids:
                gids.append(int(gid))
    if mounts_changed:
        spec["mounts"] = sorted(spec["mounts"], key=lambda m: _depth(m["destination"]))
    return spec


def load_spec_dirs(dirs: Sequence[str]) -> Registry:
    """Read every spec file of ``dirs`` (I/O); a missing directory has no devices."""
    by_dir: list[tuple[str, dict[str, object]]] = []
    for d in dirs:
        files: dict[str, object] = {}
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            names = []
        for name in names:
            if not name.endswith(SPEC_SUFFIXES):
                continue
            path = os.path.join(d, name)
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read(4 << 20)
                files[path] = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
            except (OSError, ValueError, yaml.YAMLError) as err:
                files[path] = ValueError(f"cannot read it: {err}")
        by_dir.append((d, files))
    return build_registry(by_dir)

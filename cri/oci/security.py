"""The security context's knobs: capabilities, seccomp, AppArmor, SELinux,
masked and read-only paths.

Capabilities follow containerd: start from the default set (or every
capability for a privileged container); "ALL" in add or drop is applied
first, so ``add: [ALL], drop: [CHOWN]`` is everything but CAP_CHOWN; then
the named adds, then the named drops.  Names are case-insensitive and the
``CAP_`` prefix is optional.  The sets are bounding, effective and permitted;
ambient (and, as the kernel requires for ambient, inheritable) only holds
``add_ambient_capabilities``.

Seccomp and AppArmor accept the structured ``SecurityProfile`` field and the
older string field (``runtime/default``, ``docker/default``, ``unconfined``,
``localhost/<path or name>``).  Unset means unconfined for seccomp (kubelet
sends RuntimeDefault itself when its SeccompDefault feature is on) and the
runtime default for AppArmor; a privileged container gets neither unless a
Localhost AppArmor profile is named.  On a host without AppArmor (this one)
an AppArmor request is ignored, except that naming a Localhost profile is an
error, since the caller asked for confinement that cannot be given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from cri_api.v1 import api_pb2

from ..errors import InvalidArgument, shorten
from .defaults import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    READONLY_PATHS,
)
from .seccomp_default import runtime_default
from .seccomp_localhost import from_profile_json

ReadHostFile = Callable[[str], bytes]

RUNTIME_DEFAULT = api_pb2.SecurityProfile.RuntimeDefault
UNCONFINED = api_pb2.SecurityProfile.Unconfined
LOCALHOST = api_pb2.SecurityProfile.Localhost

# The AppArmor profile the daemon loads when AppArmor is enabled.
APPARMOR_DEFAULT = "dockyard-default"  # cri/apparmor.py writes and loads it


def cap_name(raw: str, field: str) -> str:
    name = raw.strip().upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in ALL_CAPABILITIES:
        raise InvalidArgument(f"{field}: unknown capability {raw!r}")
    return name


def capabilities(caps: api_pb2.Capability | None, *, privileged: bool, field: str,
                 held: Sequence[str] = ALL_CAPABILITIES) -> dict[str, list[str]]:
    """``held`` is what the daemon itself may pass on (its bounding set):
    "all capabilities" (privileged, or add ALL) means those, as containerd
    does.  Asking the kernel for one the runtime lacks fails capset with
    EPERM; on this project's VM root has no CAP_SYS_RESOURCE, for example."""
    every = [c for c in ALL_CAPABILITIES if c in set(held)]
    base = set(every if privileged else DEFAULT_CAPABILITIES)
    ambient: list[str] = []
    if caps is not None:
        adds = list(caps.add_capabilities)
        drops = list(caps.drop_capabilities)
        if any(a.upper() == "ALL" for a in adds):
            base = set(every)
        if any(d.upper() == "ALL" for d in drops):
            base = set()
        for i, raw in enumerate(adds):
            if raw.upper() != "ALL":
                base.add(cap_name(raw, f"{field}.add_capabilities[{i}]"))
        for i, raw in enumerate(drops):
            if raw.upper() != "ALL":
                base.discard(cap_name(raw, f"{field}.drop_capabilities[{i}]"))
        for i, raw in enumerate(caps.add_ambient_capabilities):
            name = cap_name(raw, f"{field}.add_ambient_capabilities[{i}]")
            base.add(name)  # an ambient capability must also be permitted
            ambient.append(name)
    ordered = [c for c in ALL_CAPABILITIES if c in base]
    out = {"bounding": ordered, "effective": list(ordered), "permitted": list(ordered)}
    if ambient:
        amb = [c for c in ALL_CAPABILITIES if c in set(ambient)]
        out["ambient"] = amb
        out["inheritable"] = list(amb)
    return out


def _legacy_profile(text: str, field: str) -> tuple[int, str] | None:
    """The old string fields -> (profile type, localhost ref), None = unset."""
    if not text:
        return None
    if text in ("runtime/default", "docker/default"):
        return RUNTIME_DEFAULT, ""
    if text == "unconfined":
        return UNCONFINED, ""
    if text.startswith("localhost/"):
        return LOCALHOST, text[len("localhost/"):]
    raise InvalidArgument(f"{field}: unknown profile {text!r}")


def _chosen(profile: api_pb2.SecurityProfile | None, legacy: str, field: str,
            legacy_field: str) -> tuple[int, str, str] | None:
    """(type, localhost ref, field of the ref) of whichever field is set."""
    if profile is not None:
        return profile.profile_type, profile.localhost_ref, f"{field}.localhost_ref"
    picked = _legacy_profile(legacy, legacy_field)
    if picked is None:
        return None
    return picked[0], picked[1], legacy_field


def seccomp(profile: api_pb2.SecurityProfile | None, legacy: str, *, privileged: bool, caps: Sequence[str],
            machine: str, read_host_file: ReadHostFile, field: str, legacy_field: str) -> dict[str, Any] | None:
    """``linux.seccomp``, or None for unconfined."""
    if privileged:
        return None
    chosen = _chosen(profile, legacy, field, legacy_field)
    if chosen is None:
        return None
    kind, ref, ref_field = chosen
    if kind == UNCONFINED:
        return None
    if kind == RUNTIME_DEFAULT:
        return runtime_default(caps, machine)
    if kind != LOCALHOST:
        raise InvalidArgument(f"{field}.profile_type: unknown value {kind}")
    if not ref.startswith("/"):
        raise InvalidArgument(f"{ref_field}: {ref!r} must be an absolute path to a seccomp profile")
    try:
        raw = read_host_file(ref)
    except FileNotFoundError as err:
        raise InvalidArgument(f"{ref_field}: seccomp profile {ref} does not exist") from err
    except OSError as err:
        raise InvalidArgument(f"{ref_field}: cannot read seccomp profile {ref}: {err.strerror}") from err
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise InvalidArgument(f"{ref_field}: seccomp profile {ref} is not JSON: {err}") from err
    return from_profile_json(doc, machine=machine, caps=caps, field=f"{ref_field} ({ref})")


def apparmor(profile: api_pb2.SecurityProfile | None, legacy: str, *, privileged: bool, enabled: bool,
             field: str, legacy_field: str, loaded: frozenset[str] | None = None) -> str:
    """``process.apparmorProfile`` ("" for none).  ``loaded``, when given, is
    what the kernel has loaded: a Localhost profile must be among them."""
    chosen = _chosen(profile, legacy, field, legacy_field)
    kind, ref, ref_field = chosen if chosen is not None else (RUNTIME_DEFAULT, "", "")
    if kind == LOCALHOST:
        name = ref.removeprefix("localhost/")
        if not name:
            raise InvalidArgument(f"{ref_field}: a Localhost AppArmor profile needs a name")
        if not enabled:
            raise InvalidArgument(f"{ref_field}: AppArmor profile {shorten(name)!r} asked for, "
                                  "but AppArmor is not enabled on this host")
        if loaded is not None and name not in loaded:
            raise InvalidArgument(f"{ref_field}: AppArmor profile {shorten(name)!r} is not loaded on this node "
                                  "(load it with apparmor_parser first)")
        return name
    if not enabled or privileged or kind == UNCONFINED:
        return ""
    return APPARMOR_DEFAULT


def selinux_label(opts: api_pb2.SELinuxOption | None, *, enabled: bool) -> str:
    """``user:role:type:level`` when the host enforces SELinux; ignored
    otherwise, as containerd ignores it on such hosts."""
    if not enabled or opts is None:
        return ""
    parts = [opts.user, opts.role, opts.type, opts.level]
    if not any(parts):
        return ""
    return ":".join(parts)


def masked_and_readonly(masked: Sequence[str], readonly: Sequence[str], *, privileged: bool,
                        field: str) -> tuple[list[str], list[str]]:
    """The config's lists, else containerd's defaults; none when privileged."""
    if privileged:
        return [], []
    for name, paths in (("masked_paths", masked), ("readonly_paths", readonly)):
        for i, p in enumerate(paths):
            if not p.startswith("/"):
                raise InvalidArgument(f"{field}.{name}[{i}]: {p!r} must be an absolute path")
    return (list(masked) if len(masked) else list(MASKED_PATHS),
            list(readonly) if len(readonly) else list(READONLY_PATHS))

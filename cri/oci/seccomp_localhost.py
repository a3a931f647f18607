"""A Localhost seccomp profile file -> OCI ``linux.seccomp``.

Profiles on nodes are written in docker's JSON format, which is the OCI
shape plus conveniences that depend on the host: ``archMap`` (the native
architecture and its compat ABIs; only the native entry is used), ``name``
as well as ``names`` in a rule, and ``includes``/``excludes`` that keep a
rule only for some capabilities or architectures.  Resolving those needs the
container's capability set and the machine, which is why this happens here
and not in the runtime.  The result is checked with the runtime's own
seccomp profile parser (dockyard.runtime.kernel.seccomp_profile) so a bad
profile fails CreateContainer, naming the file, rather than the container start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dockyard.runtime.kernel import seccomp_profile
from dockyard.runtime.kernel.errors import InvalidSpec, Unsupported

from ..errors import InvalidArgument

# uname -m -> the GOARCH name docker profiles use in includes/excludes.arches
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386",
           "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "amd64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
           "arm64": "SCMP_ARCH_AARCH64"}

_RULE_KEYS = ("action", "errnoRet", "args")


def _applies(cond: Any, caps: set[str], goarch: str, *, include: bool) -> bool:
    if not isinstance(cond, dict):
        return True
    want_caps = [c for c in cond.get("caps") or [] if isinstance(c, str)]
    want_arches = [a for a in cond.get("arches") or [] if isinstance(a, str)]
    if include:
        return all(c in caps for c in want_caps) and (not want_arches or goarch in want_arches)
    excluded = any(c in caps for c in want_caps) or goarch in want_arches
    return not excluded


def from_profile_json(doc: Any, *, machine: str, caps: Sequence[str], field: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{field}: a seccomp profile must be a JSON object")
    goarch = _GOARCH.get(machine, machine)
    cap_set = set(caps)
    out: dict[str, Any] = {k: doc[k] for k in ("defaultAction", "defaultErrnoRet", "flags", "listenerPath",
                                                "listenerMetadata") if k in doc}
    arches = list(doc.get("architectures") or [])
    if not arches and isinstance(doc.get("archMap"), list):
        native = _NATIVE.get(machine)
        for entry in doc["archMap"]:
            if isinstance(entry, dict) and entry.get("architecture") == native:
                arches = [native, *(entry.get("subArchitectures") or [])]
    if arches:
        out["architectures"] = arches
    rules = []
    raw_rules = doc.get("syscalls") or []
    if not isinstance(raw_rules, list):
        raise InvalidArgument(f"{field}: syscalls must be a list")
    for raw in raw_rules:
        if not isinstance(raw, dict):
            raise InvalidArgument(f"{field}: every entry of syscalls must be an object")
        if not _applies(raw.get("includes"), cap_set, goarch, include=True):
            continue
        if not _applies(raw.get("excludes"), cap_set, goarch, include=False):
            continue
        names = list(raw.get("names") or [])
        if isinstance(raw.get("name"), str):
            names.append(raw["name"])
        rule: dict[str, Any] = {"names": names}
        rule.update({k: raw[k] for k in _RULE_KEYS if k in raw})
        rules.append(rule)
    if rules:
        out["syscalls"] = rules
    try:
        seccomp_profile.parse(out)
    except (InvalidSpec, Unsupported) as err:
        raise InvalidArgument(f"{field}: {err}") from err
    return out

"""Network config files: which one is in force, and noticing when that changes.

The pure half (``parse_network``, ``choose``) turns file names and bytes into
a validated ``NetworkConfig`` plus the reasons the other files were rejected.
The I/O half (``ConfDir``) lists the directory on every call and re-reads it
only when the listing's fingerprint (names, sizes, mtimes, inodes) moved:
one ``scandir`` per call, so a conflist that appears or is edited is in force
on the next RPC without a restart (containerd's CRI needed a restart or an
inotify loop that could miss events; a stat per call cannot).

The rule is libcni's: files ending ``.conflist``, ``.conf`` or ``.json``, in
lexical order of their names; the first valid one wins.  A ``.conf``/``.json``
holds a single plugin and is wrapped into a one-plugin list.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .protocol import SUPPORTED_VERSIONS, highest_version

EXTENSIONS = (".conflist", ".conf", ".json")
# The spec's rule for network names (CNI 1.0 "name").
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
# A plugin type becomes a file name in a bin dir; nothing path-like.
_TYPE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
MAX_FILE_BYTES = 1 << 20


class ConfigInvalid(ValueError):
    """One file is not a usable network config; the message says why."""


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """A validated network config list; ``raw`` is what plugins are fed from."""

    source: str                 # file name inside the conf dir
    name: str
    cni_version: str
    plugin_types: tuple[str, ...]
    disable_check: bool
    raw: Mapping[str, Any] = field(compare=False)


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of reading a conf dir: the config in force (if any) and
    every file that was rejected, with the reason."""

    config: NetworkConfig | None
    rejected: tuple[tuple[str, str], ...]

    def rejected_text(self) -> str:
        return "; ".join(f"{name}: {why}" for name, why in self.rejected)


def parse_network(name: str, data: bytes) -> NetworkConfig:
    """Validate one file's bytes; raise ConfigInvalid saying what is wrong."""
    if not name.endswith(EXTENSIONS):
        raise ConfigInvalid(f"not a network config file (want {', '.join(EXTENSIONS)})")
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigInvalid(f"not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise ConfigInvalid("not a JSON object")
    if name.endswith(".conflist"):
        raw = value
    else:
        # A single-plugin config: the list's fields come from the plugin's.
        raw = {"cniVersion": value.get("cniVersion"), "name": value.get("name"), "plugins": [value]}
        if "disableCheck" in value:
            raw["disableCheck"] = value["disableCheck"]

    net_name = raw.get("name")
    if not isinstance(net_name, str) or not _NAME.match(net_name):
        raise ConfigInvalid(f"name must match {_NAME.pattern}, got {net_name!r}")
    version = raw.get("cniVersion")
    versions = raw.get("cniVersions")
    if versions is not None:
        # CNI 1.1: the list names every version it supports; use the highest we speak.
        if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
            raise ConfigInvalid(f"cniVersions must be a list of version strings, got {versions!r}")
        chosen = highest_version(versions)
        if chosen is not None:
            version = chosen
            raw = {**raw, "cniVersion": chosen}
    if version not in SUPPORTED_VERSIONS:
        raise ConfigInvalid(f"cniVersion {version!r} is not one of {', '.join(SUPPORTED_VERSIONS)}")
    disable_check = raw.get("disableCheck", False)
    if not isinstance(disable_check, bool):
        raise ConfigInvalid(f"disableCheck must be a boolean, got {disable_check!r}")
    plugins = raw.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise ConfigInvalid("plugins must be a non-empty list")
    types: list[str] = []
    for index, plugin in enumerate(plugins):
        where = f"plugins[{index}]"
        if not isinstance(plugin, dict):
            raise ConfigInvalid(f"{where} is not an object")
        kind = plugin.get("type")
        if not isinstance(kind, str) or not _TYPE.match(kind):
            raise ConfigInvalid(f"{where}.type must be a plugin name, got {kind!r}")
        caps = plugin.get("capabilities", {})
        if not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values()):
            raise ConfigInvalid(f"{where}.capabilities must map names to booleans")
        # A capability the runtime has no value for is passed no value, as
        # libcni does (ips, mac, a pod without host ports): not an error.
        types.append(kind)
    return NetworkConfig(source=name, name=net_name, cni_version=version, plugin_types=tuple(types),
                         disable_check=disable_check, raw=raw)


def choose(files: Iterable[tuple[str, bytes]]) -> Selection:
    """The first valid config in lexical order of file name, plus the rejected ones.

    Files after the chosen one are not judged: they are not in force, and a
    broken spare must not make a working node look degraded.
    """
    rejected: list[tuple[str, str]] = []
    for name, data in sorted(files):
        try:
            return Selection(parse_network(name, data), tuple(rejected))
        except ConfigInvalid as err:
            rejected.append((name, str(err)))
    return Selection(None, tuple(rejected))


def is_config_name(name: str) -> bool:
    return name.endswith(EXTENSIONS) and not name.startswith(".")


# --- I/O: the directory ----------------------------------------------------

Fingerprint = tuple[tuple[str, int, int, int], ...]


class ConfDir:
    """The conf dir, re-read whenever its listing or a file in it changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()   # guards _fingerprint and _selection
        self._fingerprint: Fingerprint | None = None
        self._selection = Selection(None, ())
        self._error = ""

    def current(self) -> tuple[Selection, str]:
        """(selection, error reading the directory itself or "")."""
        fingerprint, error = self._fingerprint_now()
        with self._lock:
            if fingerprint != self._fingerprint or error != self._error:
                if error:
                    self._selection = Selection(None, ())
                else:
                    files, unreadable = self._read(fingerprint)
                    chosen = choose(files)
                    self._selection = Selection(chosen.config, tuple(sorted(chosen.rejected + unreadable)))
                self._fingerprint = fingerprint
                self._error = error
            return self._selection, self._error

    def _fingerprint_now(self) -> tuple[Fingerprint, str]:
        entries: list[tuple[str, int, int, int]] = []
        try:
            with os.scandir(self.path) as it:
                for entry in it:
                    if not is_config_name(entry.name):
                        continue
                    try:
                        st = entry.stat()  # follows symlinks: configs are often links
                    except FileNotFoundError:
                        continue  # removed between listing and stat
                    entries.append((entry.name, st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            return (), f"network config dir {self.path} does not exist"
        except OSError as err:
            return (), f"cannot read network config dir {self.path}: {err.strerror}"
        return tuple(sorted(entries)), ""

    def _read(self, fingerprint: Fingerprint) -> tuple[list[tuple[str, bytes]], tuple[tuple[str, str], ...]]:
        files: list[tuple[str, bytes]] = []
        unreadable: list[tuple[str, str]] = []
        for name, _, size, _ in fingerprint:
            if size > MAX_FILE_BYTES:
                unreadable.append((name, f"larger than {MAX_FILE_BYTES} bytes"))
                continue
            try:
                with open(os.path.join(self.path, name), "rb") as f:
                    files.append((name, f.read(MAX_FILE_BYTES)))
            except FileNotFoundError:
                continue  # removed since the listing; the next call sees a new fingerprint
            except OSError as err:
                unreadable.append((name, f"unreadable: {err.strerror}"))
        return files, tuple(unreadable)

"""Device nodes of a container: the OCI defaults and ``linux.devices``.

Pure data and validation; creating the nodes (mknod, or a bind mount of the
host node when mknod is not allowed, as in a user namespace) is the rootfs
setup's job.  Facts:

* The runtime spec requires /dev/null, zero, full, random, urandom, tty,
  console (set up with the terminal) and ptmx, plus the /dev/fd, stdin,
  stdout, stderr links.  /dev/ptmx is a link to pts/ptmx so that it uses the
  container's own devpts instance (mounted with ``newinstance``), not the
  host's multiplexer.
* Type "u" (unbuffered character device) is the same inode type as "c"; "p"
  is a FIFO and has no major/minor.
* The device cgroup allow-list has to admit these same devices, or the
  container can create the nodes but not open them.
"""

from __future__ import annotations

import stat

from ..kernel.errors import InvalidSpec
from ..kernel.lean.records import Record

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any
class Device(Record):
    path: str
    type: str  # "c", "b", "u" or "p"
    major: int
    minor: int
    file_mode: int  # permission bits only
    uid: int
    gid: int


def _char(path: str, major: int, minor: int) -> Device:
    return Device(path, "c", major, minor, 0o666, 0, 0)


DEFAULT_DEVICES: tuple[Device, ...] = (
    _char("/dev/null", 1, 3),
    _char("/dev/zero", 1, 5),
    _char("/dev/full", 1, 7),
    _char("/dev/random", 1, 8),
    _char("/dev/urandom", 1, 9),
    _char("/dev/tty", 5, 0),
)

# (link path, target); /dev/core -> /proc/kcore is left out on purpose: it
# only exists with CONFIG_PROC_KCORE and nothing in a container needs it.
DEFAULT_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
    ("/dev/ptmx", "pts/ptmx"),
)

# The device cgroup rules that let a container use these defaults are
# runtime/cgroups/device_rules.py's RUNC_DEFAULT_RULES.


_TYPES = ("c", "b", "u", "p")
_MAX_ID = 2**32 - 1


def _int(entry: dict[str, Any], key: str, field: str, default: int | None, limit: int) -> int:
    value = entry.get(key, default)
    if value is None:
        raise InvalidSpec(f"{field}.{key}", "required for this device type")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpec(f"{field}.{key}", f"must be an integer, not {type(value).__name__}")
    if not 0 <= value <= limit:
        raise InvalidSpec(f"{field}.{key}", f"{value} is out of range 0..{limit}")
    return value


def parse_devices(devices: list[dict[str, Any]], field: str = "linux.devices") -> tuple[Device, ...]:
    """Validate ``linux.devices`` and return them as :class:`Device` values.

    ``fileMode`` defaults to 0666 and ``uid``/``gid`` to 0.  Type bits in
    ``fileMode`` (some generators send ``S_IFCHR|0666``) are dropped: the
    type comes from ``type``.  A path may appear only once.
    """
    if not isinstance(devices, list):
        raise InvalidSpec(field, "must be a list")
    out: list[Device] = []
    seen: set[str] = set()
    for i, entry in enumerate(devices):
        here = f"{field}[{i}]"
        if not isinstance(entry, dict):
            raise InvalidSpec(here, "must be an object")
        path = entry.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidSpec(f"{here}.path", f"must be an absolute path, not {path!r}")
        if path in seen:
            raise InvalidSpec(f"{here}.path", f"{path} is listed twice")
        seen.add(path)
        kind = entry.get("type")
        if kind not in _TYPES:
            raise InvalidSpec(f"{here}.type", f"must be one of c, b, u, p, not {kind!r}")
        if kind == "p":
            major = minor = 0
        else:
            major = _int(entry, "major", here, None, _MAX_ID)
            minor = _int(entry, "minor", here, None, _MAX_ID)
        mode = _int(entry, "fileMode", here, 0o666, 0o177777) & 0o7777
        uid = _int(entry, "uid", here, 0, _MAX_ID)
        gid = _int(entry, "gid", here, 0, _MAX_ID)
        out.append(Device(path, kind, major, minor, mode, uid, gid))
    return tuple(out)


def mknod_mode(dev: Device) -> int:
    """The ``mode`` argument of mknod(2) for ``dev``: inode type | permissions."""
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[dev.type]
    return kind | (dev.file_mode & 0o7777)

"""What the runtime remembers about a container between invocations.

Layout under ``--root`` (default ``/run/dockyard-runc``)::

    <root>/<id>/state.json   versioned record, written atomically
    <root>/<id>/config.json  the spec as create saw it (the bundle may change later)
    <root>/<id>/exec.fifo    exists from create until start
    <root>/<id>/lock         flock'd by every verb that changes the container

Writes go to a temporary file renamed over the target, so a runtime that
dies mid-write, or a reader racing it, sees the old or the new record, never
half of one.  They are not fsync'd, as runc's are not: every record here
describes processes, mounts and cgroups that a reboot ends, so durability
across a power loss buys nothing, and the four fsyncs cost ~1 ms of every
create.  A record a power loss did tear is refused by ``load`` (corrupt
state) and removed by ``delete --force``.
"""

from __future__ import annotations

import errno
import fcntl

from .kernel.errors import AlreadyExists, InvalidArgument, InvalidSpec, NotFound, SyscallError
from .kernel.lean import jsonfast, leanos
from .kernel.lean.records import Record, field, to_dict
from .status import Status

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

STATE_VERSION = 2
# 1: no "cgroups" (a record of an older runtime: its manager is worked out
# from the host again, as then).  2: "cgroups", the manager's description
# (cgroups/restore.py).
_READABLE_VERSIONS = (1, 2)
DEFAULT_ROOT = "/run/dockyard-runc"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def validate_id(container_id: str) -> str:
    """Container ids become directory names: only [A-Za-z0-9_.-], never '.' or '..'."""
    if not container_id:
        raise InvalidArgument("validate container id", repr(container_id), "must not be empty")
    if container_id in (".", "..") or not set(container_id) <= _ID_CHARS or len(container_id) > 1024:
        raise InvalidArgument("validate container id", repr(container_id),
                              "may contain only letters, digits, '_', '.' and '-', and must not be '.' or '..'")
    return container_id
class ContainerState(Record):
    id: str
    bundle: str
    rootfs: str
    pid: int
    pid_start: int           # /proc/<pid>/stat starttime: tells a reused pid from ours
    created: str             # RFC 3339 with nanoseconds, UTC
    cgroup_path: str         # the cgroupsPath the manager was built from
    owner: str = ""
    oci_version: str = "1.2.0"
    annotations: dict[str, str] = field(default_factory=dict)
    private_pidns: bool = True
    cgroups: dict[str, Any] = field(default_factory=dict)  # manager.describe(); {} in version 1
    version: int = STATE_VERSION

    def to_json(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_json(cls, raw: object, where: str) -> ContainerState:
        if not isinstance(raw, dict):
            raise InvalidSpec(where, f"malformed state record: a JSON object was expected, not {type(raw).__name__}")
        version = raw.get("version")
        if type(version) is not int or version not in _READABLE_VERSIONS:  # JSON true == 1 in Python
            raise InvalidSpec(f"{where}.version", f"unsupported state version {raw.get('version')!r}")
        try:
            return cls(**raw)
        except TypeError as err:
            raise InvalidSpec(where, f"malformed state record: {err}") from err


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    try:
        from .kernel import durable  # only create and update write; start, kill and delete only read

        durable.write_atomic(path, data, mode, sync=False)
    except OSError as err:
        raise SyscallError("write", path, err.errno or 0) from err


def process_start_time(pid: int) -> tuple[int, str] | None:
    """(starttime, state letter) of a pid from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: split after the last ')'
    rest = raw[raw.rindex(b")") + 2:].split()
    return int(rest[19]), rest[0].decode()


class ContainerLock:
    """An exclusive flock on <root>/<id>/lock for the span of a ``with``.

    A class rather than contextlib.contextmanager: contextlib stays off the
    hot paths (runtime/kernel/lean/README.md)."""

    __slots__ = ("container_id", "fd", "path")

    def __init__(self, path: str, container_id: str) -> None:
        self.path = path
        self.container_id = container_id
        self.fd = -1

    def __enter__(self) -> None:
        try:
            fd = leanos.open(self.path, leanos.O_RDWR | leanos.O_CREAT | leanos.O_CLOEXEC, 0o600)
        except FileNotFoundError as err:
            raise NotFound("find container", self.container_id, "container does not exist") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            leanos.close(fd)
            raise
        self.fd = fd

    def __exit__(self, *exc: object) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            leanos.close(fd)


class Store:
    def __init__(self, root: str) -> None:
        self.root = leanos.path.abspath(root)

    def dir(self, container_id: str) -> str:
        return leanos.path.join(self.root, validate_id(container_id))

    def fifo(self, container_id: str) -> str:
        return leanos.path.join(self.dir(container_id), "exec.fifo")

    def create_dir(self, container_id: str) -> str:
        path = self.dir(container_id)
        leanos.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            leanos.mkdir(path, 0o711)
        except FileExistsError as err:
            raise AlreadyExists("create container", container_id, "a container with this id exists") from err
        return path

    def remove_dir(self, container_id: str) -> None:
        # The state dir holds only flat files (state.json, config.json,
        # exec.fifo, lock); shutil would cost an import of bz2 and lzma.
        path = self.dir(container_id)
        try:
            names = leanos.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                leanos.unlink(leanos.path.join(path, name))
            except IsADirectoryError:
                leanos.rmdir(leanos.path.join(path, name))
            except FileNotFoundError:
                pass
        try:
            leanos.rmdir(path)
        except FileNotFoundError:
            pass

    def save(self, state: ContainerState) -> None:
        write_atomic(leanos.path.join(self.dir(state.id), "state.json"), jsonfast.dumps(state.to_json()).encode())

    def load(self, container_id: str) -> ContainerState:
        path = leanos.path.join(self.dir(container_id), "state.json")
        try:
            raw = jsonfast.load_file(path)
        except FileNotFoundError as err:
            raise NotFound("find container", container_id, "container does not exist") from err
        except ValueError as err:
            raise InvalidSpec(path, f"corrupt state record: {err}") from err
        return ContainerState.from_json(raw, path)

    def save_config(self, container_id: str, raw: dict[str, Any]) -> None:
        write_atomic(leanos.path.join(self.dir(container_id), "config.json"), jsonfast.dumps(raw).encode())

    def load_config(self, container_id: str) -> dict[str, Any]:
        path = leanos.path.join(self.dir(container_id), "config.json")
        try:
            raw: dict[str, Any] = jsonfast.load_file(path)
        except FileNotFoundError as err:
            raise NotFound("find container config", container_id) from err
        return raw

    def ids(self) -> list[str]:
        try:
            names = sorted(leanos.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in names if leanos.path.exists(leanos.path.join(self.root, n, "state.json"))]

    def lock(self, container_id: str) -> ContainerLock:
        """``with store.lock(id):`` holds the container's flock (NotFound on entry if it is gone)."""
        return ContainerLock(leanos.path.join(self.dir(container_id), "lock"), container_id)

    def status(self, state: ContainerState, frozen: bool) -> Status:
        """Derive the status (see runtime.status for why it is not stored)."""
        if state.pid <= 0:
            return Status.STOPPED
        proc = process_start_time(state.pid)
        if proc is None or proc[0] != state.pid_start or proc[1] in ("Z", "X"):
            return Status.STOPPED
        if frozen:
            return Status.PAUSED
        try:
            leanos.stat(self.fifo(state.id))
        except OSError as err:
            if err.errno != errno.ENOENT:
                raise
            return Status.RUNNING
        return Status.CREATED

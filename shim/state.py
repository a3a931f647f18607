"""What the shim persists, so a daemon learns exits it did not see.

Layout under the shim's directory (``<state_dir>/shims/<pod_id>/``)::

    shim.pid                  the serving shim's pid
    shim.sock                 the API socket
    shim.log                  the shim's own diagnostics
    containers/<id>.json      one versioned record per container

A record is rewritten (temp file, fsync, rename) at every change of state:
create, start, exit.  A daemon that finds the shim dead (its socket refuses
connections) reads these records: a container whose last record says
created or running lost its shim, and the daemon marks it exited with that
reason.  The shim itself never reads them back: its live state is in memory
and dies with it, together with the container's stdio.  So a restarted shim
never meets a record of its own, and nothing ever deletes a container from
the runtime twice on a record's word: ``runtime_deleted`` is what the shim
knew when it wrote it.

Versions: 1 had no ``runtime_deleted``; 2 adds it (true once the runtime's
``delete`` of the container succeeded, which the shim runs as soon as the
init's exit is recorded: shim/service.py).  ``parse`` reads both; a version 1
record means false (its shim deleted containers only when told to).
"""

from __future__ import annotations

from dockyard.api.shim import CONTAINERS_DIR, PID_FILE
from dockyard.runtime.kernel.lean import jsonfast, leanos

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

RECORD_VERSION = 2
READABLE_VERSIONS = (1, 2)
FIELDS = ("container_id", "bundle", "pid", "status", "exit_status", "created_at", "started_at",
          "exited_at", "log_path", "tty", "stdin", "oom_killed", "runtime_deleted")


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    fd = leanos.open(tmp, leanos.O_WRONLY | leanos.O_CREAT | leanos.O_TRUNC | leanos.O_CLOEXEC, 0o600)
    try:
        leanos.write(fd, data)
        leanos.fsync(fd)
    finally:
        leanos.close(fd)
    leanos.rename(tmp, path)


def record_path(shim_dir: str, container_id: str) -> str:
    return f"{shim_dir}/{CONTAINERS_DIR}/{container_id}.json"


def save(shim_dir: str, record: dict[str, Any]) -> None:
    # Keys sorted, as json.dumps(sort_keys=True) wrote them (the values are all scalars).
    body = dict(sorted({"version": RECORD_VERSION, **{k: record[k] for k in FIELDS}}.items()))
    write_atomic(record_path(shim_dir, record["container_id"]), jsonfast.dumps(body).encode())


def forget(shim_dir: str, container_id: str) -> None:
    try:
        leanos.unlink(record_path(shim_dir, container_id))
    except FileNotFoundError:
        pass


def load_all(shim_dir: str) -> list[dict[str, Any]]:
    """Every container record in a shim's directory (for a daemon whose shim died)."""
    folder = f"{shim_dir}/{CONTAINERS_DIR}"
    try:
        names = sorted(leanos.listdir(folder))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if not name.endswith(".json"):
            continue
        with open(f"{folder}/{name}", "rb") as f:
            out.append(parse(jsonfast.loads(f.read()), f"{folder}/{name}"))
    return out


def parse(rec: dict[str, Any], where: str) -> dict[str, Any]:
    """A record as the current version has it (pure); an unknown version raises ValueError naming ``where``."""
    version = rec.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ValueError(f"{where}: record version {version!r}, expected one of {READABLE_VERSIONS}")
    if version == 1:
        rec = {**rec, "version": RECORD_VERSION, "runtime_deleted": False}
    return rec


def read_pid(shim_dir: str) -> int:
    """The pid the shim wrote at start (0 if none)."""
    try:
        with open(f"{shim_dir}/{PID_FILE}") as f:
            return int(f.read().strip() or 0)
    except FileNotFoundError:
        return 0

"""Crash-safe file replacement: write a temp file, fsync it, rename, fsync the dir.

Shared by the runtime (container state) and the daemon (stores, content).

Facts this relies on (ext4/xfs with default mount options):

* ``rename(2)`` within one directory is atomic: after a crash the name points
  at either the old file or the new one, never at a mix.
* The rename is durable only once the *directory* has been fsynced; and the
  new file's data is guaranteed to be there only if the file was fsynced
  before the rename (otherwise a crash can leave a zero-length file under the
  new name, the classic ext4 delayed-allocation trap).
* Temp names start with a dot and carry a random suffix so that concurrent
  writers never share one and a startup scan can recognise leftovers.
"""

from __future__ import annotations

from .lean import leanos

TEMP_PREFIX = ".tmp-"


def fsync_dir(path: str) -> None:
    """fsync a directory so that renames and creations inside it are durable."""
    fd = leanos.open(path, leanos.O_RDONLY | leanos.O_DIRECTORY | leanos.O_CLOEXEC)
    try:
        leanos.fsync(fd)
    finally:
        leanos.close(fd)


def temp_name(final: str) -> str:
    """A sibling temp path for ``final``, unique to this call."""
    head, tail = leanos.path.split(final)
    return leanos.path.join(head, f"{TEMP_PREFIX}{tail}-{leanos.urandom(6).hex()}")


def write_atomic(path: str, data: bytes, mode: int = 0o600, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new content.

    ``sync=False`` keeps the rename's atomicity against a writer that dies
    and against concurrent readers, but not against a power loss: for
    records whose subject does not outlive a reboot anyway."""
    tmp = temp_name(path)
    fd = leanos.open(tmp, leanos.O_WRONLY | leanos.O_CREAT | leanos.O_EXCL | leanos.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[leanos.write(fd, view):]
        if sync:
            leanos.fsync(fd)
    except BaseException:
        leanos.close(fd)
        leanos.unlink(tmp)
        raise
    leanos.close(fd)
    try:
        leanos.rename(tmp, path)
    except BaseException:
        leanos.unlink(tmp)
        raise
    if sync:
        fsync_dir(leanos.path.dirname(path) or ".")


def remove_temporaries(directory: str) -> int:
    """Delete leftovers of interrupted write_atomic calls in ``directory``; return how many."""
    removed = 0
    try:
        names = leanos.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if name.startswith(TEMP_PREFIX):
            try:
                leanos.unlink(leanos.path.join(directory, name))
            except FileNotFoundError:
                continue
            removed += 1
    return removed

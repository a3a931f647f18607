"""File I/O on a cgroup filesystem, every failure a typed error.

Facts about cgroupfs that shape these functions:

* A control file takes one value per ``write(2)``; the value is parsed from
  that one buffer.  So each value is written with a single ``os.write``, never
  through a buffered file object that might split it.
* Control files cannot be created: opening a missing one fails with ENOENT,
  which is how a missing controller or an old kernel shows.  Files are opened
  without O_CREAT so a fake tree in a test behaves the same way.
* A cgroup directory is removed with ``rmdir`` although it lists files; it
  fails with EBUSY while a process is still in it (or a zombie not yet
  reaped), which is why removal retries for a short while.
* ``cgroup.procs`` lists the processes of one cgroup only, not of its
  children; the tree is walked to collect all of them.
* A cgroup can be removed between the ``open`` of one of its files and the
  ``read``: the read then fails with ENODEV, not ENOENT.  systemd does this
  to a scope as soon as its last process exits, so a reader that treats a
  missing file as a gone cgroup must treat ENODEV the same way.
"""

from __future__ import annotations

import errno
import time

from ..errors import SyscallError
from ..lean import leanos

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable

    Sleep = Callable[[float], None]
    Rmdir = Callable[[str], None]  # also the shape of mkdir


def read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as err:
        raise SyscallError("read cgroup file", path, err.errno or 0) from err


def read_optional(path: str) -> str | None:
    """The file's text, or None if the kernel does not provide the file,
    or its cgroup went away while it was being read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ENODEV:
            return None
        raise SyscallError("read cgroup file", path, err.errno or 0) from err


def write(path: str, value: str, detail: str = "") -> None:
    try:
        fd = leanos.open(path, leanos.O_WRONLY | leanos.O_TRUNC | leanos.O_CLOEXEC)
    except OSError as err:
        raise SyscallError("open cgroup file", path, err.errno or 0, detail) from err
    try:
        leanos.write(fd, value.encode())
    except OSError as err:
        raise SyscallError(f"write {value!r} to cgroup file", path, err.errno or 0, detail) from err
    finally:
        leanos.close(fd)


def mkdir(path: str) -> None:
    leanos.mkdir(path, 0o755)


def make_dirs(path: str, *, mkdir: Rmdir = mkdir) -> list[str]:
    """``mkdir -p``; returns the directories it created, outermost first."""
    missing: list[str] = []
    probe = path
    while not leanos.path.isdir(probe):
        missing.append(probe)
        parent = leanos.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    missing.reverse()
    for d in missing:
        try:
            mkdir(d)
        except FileExistsError:
            continue
        except OSError as err:
            raise SyscallError("mkdir cgroup", d, err.errno or 0) from err
    return missing


def _dirs_under(path: str, *, leaves_first: bool = False) -> list[str]:
    """``path`` and the directories below it, parents first or leaves first:
    os.walk's order without os (runtime/kernel/lean/README.md).  A directory that cannot
    be listed (gone meanwhile) is left out, with what is below it."""
    out: list[str] = []
    try:
        with leanos.scandir(path) as entries:
            subs = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return out
    if not leaves_first:
        out.append(path)
    for sub in subs:
        out += _dirs_under(sub, leaves_first=leaves_first)
    if leaves_first:
        out.append(path)
    return out


def pids_in_tree(path: str) -> list[int]:
    """Every pid in the cgroup at ``path`` and its descendants."""
    pids: set[int] = set()
    for dirpath in _dirs_under(path):
        text = read_optional(leanos.path.join(dirpath, "cgroup.procs"))
        if text is None:
            continue
        pids.update(int(tok) for tok in text.split())
    return sorted(pids)


def remove_tree(path: str, *, rmdir: Rmdir = leanos.rmdir, sleep: Sleep = time.sleep,
                timeout: float = 2.0) -> None:
    """rmdir ``path`` and its child cgroups, leaves first.

    A missing directory is success, so destroy is idempotent.  EBUSY is
    retried until ``timeout``: a killed process leaves its cgroup only when
    it has been reaped, a moment after the kill.
    """
    # The usual cgroup is one empty leaf: one rmdir, no walk (delete pays
    # this for each of a dozen v1 hierarchies).  Children or a process not
    # yet reaped make it EBUSY: then leaves first, with the retries.
    try:
        rmdir(path)
        return
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError:
        pass
    if not leanos.path.isdir(path):
        return
    dirs = _dirs_under(path, leaves_first=True)
    delay = 0.005
    waited = 0.0
    for d in dirs:
        while True:
            try:
                rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if err.errno != errno.EBUSY or waited >= timeout:
                    raise SyscallError("rmdir cgroup", d, err.errno or 0) from err
                sleep(delay)
                waited += delay
                delay = min(delay * 2, 0.1)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, cgroup.events) -> dict."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and _is_int(parts[1]):
            result[parts[0]] = int(parts[1])
    return result


def parse_int(text: str | None) -> int:
    """A single-number file; ``max`` (v2's "no limit") reads as UINT64_MAX,
    as runc reports it."""
    if text is None:
        return 0
    value = text.strip()
    if value == "max":
        return (1 << 64) - 1
    return int(value) if _is_int(value) else 0


def _is_int(tok: str) -> bool:
    return tok.lstrip("-").isdigit()

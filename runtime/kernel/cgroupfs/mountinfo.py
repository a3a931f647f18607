"""Where the cgroup hierarchies are mounted, and where this process sits in them.

Pure parsers over the text of ``/proc/self/mountinfo`` and
``/proc/self/cgroup``; the callers do the reading.

Facts about these files:

* A mountinfo line is ``ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS...] -
  FSTYPE SOURCE SUPEROPTS``.  The number of optional tags before ``-`` varies,
  so the line is split on the separator, not by column count.  Paths escape
  space, tab, newline and backslash as three-digit octal (``\\040``).
* For a cgroup v1 mount the controllers are in SUPEROPTS, mixed with plain
  options (``rw``, ``xattr``, ``release_agent=...``).  A named hierarchy
  without controllers shows ``name=systemd``.  cpu and cpuacct may share one
  hierarchy (``cpu,cpuacct``) or, as on this project's test machine, be two.
* ROOT is the part of the hierarchy visible at MOUNTPOINT; it is not ``/``
  inside a container with a cgroup namespace or a bind-mounted cgroup.
* ``/proc/self/cgroup`` lines are ``ID:CONTROLLERS:PATH``; the cgroup2 line is
  ``0::PATH``.  PATH is relative to the hierarchy's root, not to ROOT above.
* A mount point can hold several mounts, the later on top (lines come in
  mount order): a node that mounts a tmpfs over /sys/fs/cgroup and the
  hierarchies again (a cgroup namespace's view, as hack/run-node-e2e.sh does,
  or a nested node) lists every hierarchy twice.  Only the top one is
  reachable by path, so only it is reported.
"""

from __future__ import annotations

from ..lean.records import Record

# Every v1 controller the kernel has had; anything else in SUPEROPTS is an
# option, not a controller.
V1_CONTROLLERS = frozenset({
    "blkio", "cpu", "cpuacct", "cpuset", "debug", "devices", "freezer",
    "hugetlb", "memory", "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma",
})

_OCTAL_DIGITS = frozenset("01234567")
class CgroupMount(Record):
    mountpoint: str
    root: str
    fstype: str  # "cgroup" (v1) or "cgroup2"
    controllers: tuple[str, ...]  # v1 only: ("cpu",), ("name=systemd",), ...


def _unescape(path: str) -> str:
    """Decode each backslash followed by three octal digits; any other
    backslash stays as it is.  (Plain string code: ``re`` stays off the hot
    paths, ../lean/README.md.)"""
    if "\\" not in path:
        return path
    out: list[str] = []
    i = 0
    while True:
        j = path.find("\\", i)
        if j < 0:
            out.append(path[i:])
            return "".join(out)
        digits = path[j + 1:j + 4]
        if len(digits) == 3 and all(d in _OCTAL_DIGITS for d in digits):
            out.append(path[i:j])
            out.append(chr(int(digits, 8)))
            i = j + 4
        else:
            # Not an escape: keep the backslash and look again from the
            # next character, which may itself start an escape.
            out.append(path[i:j + 1])
            i = j + 1


def cgroup_mounts(mountinfo_text: str) -> list[CgroupMount]:
    """Every cgroup and cgroup2 mount reachable by its path (the top one of a
    mount point that holds several), in mountinfo order."""
    found: list[CgroupMount] = []
    for line in mountinfo_text.splitlines():
        head, sep, tail = line.partition(" - ")
        if not sep:
            continue
        fields = head.split()
        rest = tail.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        fstype = rest[0]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        controllers: tuple[str, ...] = ()
        if fstype == "cgroup":
            controllers = tuple(
                opt for opt in rest[2].split(",")
                if opt in V1_CONTROLLERS or opt.startswith("name=")
            )
        found.append(CgroupMount(_unescape(fields[4]), _unescape(fields[3]), fstype, controllers))
    top = {m.mountpoint: i for i, m in enumerate(found)}
    return [m for i, m in enumerate(found) if top[m.mountpoint] == i]


def v1_mounts(mountinfo_text: str) -> list[tuple[str, str]]:
    """(mountpoint, comma-joined controllers) of each cgroup v1 hierarchy,
    for example ``("/sys/fs/cgroup/cpu", "cpu")`` or
    ``("/sys/fs/cgroup/systemd", "name=systemd")``."""
    return [
        (m.mountpoint, ",".join(m.controllers))
        for m in cgroup_mounts(mountinfo_text)
        if m.fstype == "cgroup" and m.controllers
    ]


def own_cgroups(proc_cgroup_text: str) -> dict[str, str]:
    """This process's cgroup per hierarchy, keyed by each controller name
    (``"cpu"``, ``"name=systemd"``); the cgroup2 path is under ``""``."""
    result: dict[str, str] = {}
    for line in proc_cgroup_text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            result[""] = path
            continue
        for name in controllers.split(","):
            result[name] = path
    return result

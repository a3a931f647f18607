"""The cgroup parsers that used regular expressions until ``re`` was dropped
from the runtime's imports: cpu lists, hugepage sizes, unified keys and
mountinfo's octal escapes.

Each table states what is accepted; test_same_verdicts_as_the_old_regex
checks every row against the regex the plain string code replaced, so a
row that disagrees with it is a behaviour change, not a typo.
"""

from __future__ import annotations

import re

import pytest
from dockyard.runtime.cgroups import cpusets, hugepages, unified
from dockyard.runtime.kernel.cgroupfs.mountinfo import cgroup_mounts
from dockyard.runtime.kernel.errors import InvalidSpec

OLD_CPU_LIST = re.compile(r"^\s*\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*\s*$")
OLD_PAGE_SIZE = re.compile(r"^[1-9][0-9]*(KB|MB|GB)$")
OLD_UNIFIED_KEY = re.compile(r"^[a-z0-9_]+\.[a-z0-9_.]+$")
OLD_OCTAL = re.compile(r"\\([0-7]{3})")

# value -> what cpu_list returns (spaces dropped), None when refused
CPU_LISTS: list[tuple[str, str | None]] = [
    ("0", "0"),
    ("0-3", "0-3"),
    ("0-3,5,7-8", "0-3,5,7-8"),
    ("0-1, 3", "0-1,3"),
    (" 0 , 1 ", "0,1"),
    ("\t1\t", "\t1\t"),  # only spaces are removed, as before
    ("0-3\n", "0-3\n"),
    ("007", "007"),
    ("2-2", "2-2"),
    ("\u0663", "\u0663"),  # ARABIC-INDIC DIGIT THREE: \d took any decimal digit
    ("a", None),
    (",", None),
    ("0,", None),
    (",0", None),
    ("0,,1", None),
    ("0-", None),
    ("-1", None),
    ("0--1", None),
    ("0-1-2", None),
    ("0 -1", None),
    ("0- 1", None),
    ("1 2", None),
    ("0x1", None),
    ("+1", None),
    ("1_0", None),
    ("\u00b2", None),  # SUPERSCRIPT TWO is a digit but not a decimal
    ("   ", None),
    ("3-1", None),  # well formed, but runs backwards
]


@pytest.mark.parametrize(("value", "expected"), CPU_LISTS, ids=repr)
def test_cpu_list(value: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidSpec) as err:
            cpusets.cpu_list({"cpus": value}, "cpus")
        assert err.value.field == "linux.resources.cpu.cpus"
    else:
        assert cpusets.cpu_list({"cpus": value}, "cpus") == expected


PAGE_SIZES: list[tuple[str, bool]] = [
    ("2MB", True),
    ("1GB", True),
    ("64KB", True),
    ("16GB", True),
    # The old regex's $ also matched before one final newline; the write to
    # "hugetlb.2MB\n.limit_in_bytes" then fails, naming that file.
    ("2MB\n", True),
    ("2MB\n\n", False),
    ("0MB", False),
    ("02MB", False),
    ("2mb", False),
    ("2kB", False),
    ("2 MB", False),
    (" 2MB", False),
    ("2MB ", False),
    ("MB", False),
    ("2M", False),
    ("2TB", False),
    ("2MBMB", False),
    ("\u0663MB", False),
    ("hugepages-2048kB", False),
    ("", False),
]


@pytest.mark.parametrize(("size", "accepted"), PAGE_SIZES, ids=repr)
def test_page_size(size: str, accepted: bool) -> None:
    resources = {"hugepageLimits": [{"pageSize": size, "limit": 1}]}
    if accepted:
        assert hugepages.limits(resources) == [(size, 1)]
    else:
        with pytest.raises(InvalidSpec) as err:
            hugepages.limits(resources)
        assert err.value.field == "linux.resources.hugepageLimits[0].pageSize"


UNIFIED_KEYS: list[tuple[str, bool]] = [
    ("memory.high", True),
    ("io.latency", True),
    ("cpu.max.burst", True),
    ("a_b.c_d", True),
    ("memory.high.", True),
    ("memory.high\n", True),  # as for page sizes: the old $ allowed it
    ("memory", False),
    ("memory.", False),
    (".high", False),
    ("memory..high", False),
    ("Memory.high", False),
    ("hugetlb.2MB.max", False),  # upper case is refused
    ("memory.high ", False),
    ("memory-x.high", False),
    ("memory/high", False),
    ("../memory.max", False),
    ("memory.high\n\n", False),
    ("", False),
]


@pytest.mark.parametrize(("key", "accepted"), UNIFIED_KEYS, ids=repr)
def test_unified_key(key: str, accepted: bool) -> None:
    resources = {"unified": {key: "1"}}
    if accepted:
        assert unified.entries(resources) == [(key, "1")]
    else:
        with pytest.raises(InvalidSpec) as err:
            unified.entries(resources)
        assert err.value.field == f"linux.resources.unified[{key!r}]"


# mountinfo field as the kernel writes it -> the decoded path
ESCAPED_PATHS: list[tuple[str, str]] = [
    ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu"),
    ("/mnt/with\\040space", "/mnt/with space"),
    ("/a\\011b\\012c", "/a\tb\nc"),
    ("/back\\134slash", "/back\\slash"),
    ("/x\\134040", "/x\\040"),  # a decoded backslash does not start another escape
    ("/x\\\\040", "/x\\ "),  # a lone backslash stays; the next one starts an escape
    ("/x\\0400", "/x 0"),
    ("/x\\04", "/x\\04"),
    ("/x\\080", "/x\\080"),
    ("/x\\", "/x\\"),
    ("/x\\377", "/x\xff"),
]


@pytest.mark.parametrize(("field", "path"), ESCAPED_PATHS, ids=repr)
def test_mountinfo_unescapes_octal(field: str, path: str) -> None:
    line = f"50 23 0:40 {field} {field} rw - cgroup cgroup rw,cpu"
    [mount] = cgroup_mounts(line)
    assert (mount.mountpoint, mount.root) == (path, path)


def test_same_verdicts_as_the_old_regex() -> None:
    for value, listed in CPU_LISTS:
        assert bool(OLD_CPU_LIST.match(value)) == (listed is not None or value == "3-1"), value
    for size, accepted in PAGE_SIZES:
        assert bool(OLD_PAGE_SIZE.match(size)) == accepted, size
    for key, accepted in UNIFIED_KEYS:
        old = "/" not in key and ".." not in key and bool(OLD_UNIFIED_KEY.match(key))
        assert old == accepted, key
    for field, path in ESCAPED_PATHS:
        assert OLD_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field) == path, field


def test_only_the_top_mount_of_a_mount_point_counts() -> None:
    """A node that mounts a tmpfs over /sys/fs/cgroup and each hierarchy again (its cgroup
    namespace's view) lists every hierarchy twice; only the later, reachable one is reported.
    dockyard-runc bound both into a container's /sys/fs/cgroup, the second on top of the first,
    and with a shared root that mount propagated onto the node's own cgroup directory (EBUSY on
    its removal, and the mounts doubled with each later container of the pod)."""
    from dockyard.runtime.kernel.cgroupfs.mountinfo import v1_mounts

    text = "\n".join([
        "52 51 0:28 / /sys/fs/cgroup rw shared:6 - tmpfs tmpfs rw,mode=755",
        "53 52 0:29 / /sys/fs/cgroup/cpu rw shared:7 - cgroup cgroup rw,cpu",
        "61 52 0:37 / /sys/fs/cgroup/systemd rw shared:15 - cgroup cgroup rw,name=systemd",
        "62 52 0:38 / /sys/fs/cgroup/unified rw shared:16 - cgroup2 cgroup2 rw",
        "77 52 0:42 / /sys/fs/cgroup rw shared:29 - tmpfs tmpfs rw,mode=755",
        "78 77 0:29 /run1 /sys/fs/cgroup/cpu rw shared:30 - cgroup cgroup rw,cpu",
        "86 77 0:37 /run1 /sys/fs/cgroup/systemd rw shared:38 - cgroup cgroup rw,name=systemd",
        "87 77 0:38 /run1/init /sys/fs/cgroup/unified rw shared:39 - cgroup2 cgroup2 rw",
    ])
    assert [(m.mountpoint, m.root) for m in cgroup_mounts(text)] == [
        ("/sys/fs/cgroup/cpu", "/run1"), ("/sys/fs/cgroup/systemd", "/run1"), ("/sys/fs/cgroup/unified", "/run1/init")]
    assert v1_mounts(text) == [("/sys/fs/cgroup/cpu", "cpu"), ("/sys/fs/cgroup/systemd", "name=systemd")]

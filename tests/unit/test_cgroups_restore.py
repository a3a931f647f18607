"""A manager rebuilt from its state record's description (cgroups/restore.py)
is the manager create built: same class, same dirs; bad descriptions name the field."""

from __future__ import annotations

from typing import Any

import pytest
from dockyard.runtime import jsonfast
from dockyard.runtime.cgroups import V1Manager, V2Manager, restore_manager
from dockyard.runtime.errors import InvalidSpec

V1_DIRS = {"cpu": "/sys/fs/cgroup/cpu,cpuacct/dy/c1", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/dy/c1",
           "memory": "/sys/fs/cgroup/memory/dy/c1", "name=systemd": "/sys/fs/cgroup/systemd/dy/c1"}

MANAGERS = {
    "v1": lambda: V1Manager(V1_DIRS),
    "hybrid": lambda: V1Manager(V1_DIRS, unified=("/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/dy/c1")),
    "v2": lambda: V2Manager("/sys/fs/cgroup/dy/c1", root="/sys/fs/cgroup"),
    "v2 unenforced devices": lambda: V2Manager("/sys/fs/cgroup/dy/c1", root="/sys/fs/cgroup",
                                               allow_unenforced_devices=True),
}


@pytest.mark.parametrize("name", MANAGERS)
def test_round_trip_through_the_record(name: str) -> None:
    built = MANAGERS[name]()
    # the description travels in state.json: through JSON, tuples become lists
    desc = jsonfast.loads(jsonfast.dumps(built.describe()))
    restored = restore_manager(desc)
    assert type(restored) is type(built)
    assert restored.paths() == built.paths()
    assert restored.cgroup2_dir() == built.cgroup2_dir()
    assert restored.describe() == desc
    assert vars_of(restored) == vars_of(built)


def vars_of(manager: Any) -> dict[str, Any]:
    return {k: getattr(manager, k) for k in ("_dirs", "_unified", "path", "root", "_allow_unenforced_devices")
            if hasattr(manager, k)}


BAD: list[tuple[dict[str, Any], str]] = [
    ({}, "cgroups.layout"),
    ({"layout": "v3"}, "cgroups.layout"),
    ({"layout": "v1"}, "cgroups.dirs"),
    ({"layout": "v1", "dirs": {"cpu": "relative/c1"}}, "cgroups.dirs"),
    ({"layout": "v1", "dirs": {"cpu": 5}}, "cgroups.dirs"),
    ({"layout": "v1", "dirs": {}, "unified": ["/sys/fs/cgroup/unified"]}, "cgroups.unified"),
    ({"layout": "v1", "dirs": {}, "unified": ["/u", "rel"]}, "cgroups.unified[1]"),
    ({"layout": "v2", "root": "/sys/fs/cgroup"}, "cgroups.path"),
    ({"layout": "v2", "path": "/sys/fs/cgroup/c1", "root": None}, "cgroups.root"),
]


@pytest.mark.parametrize(("desc", "field"), BAD)
def test_bad_description_names_the_field(desc: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        restore_manager(desc)
    assert info.value.field == field

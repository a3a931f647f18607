"""A manager rebuilt from its state record's description (cgroups/restore.py)
is the manager create built: same class, same dirs; bad descriptions name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dockyard.runtime.kernel.lean import jsonfast
from dockyard.runtime.cgroups import V1Manager, V2Manager, restore_manager
from dockyard.runtime.cgroups.restore import is_frozen
from dockyard.runtime.kernel.errors import InvalidSpec

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


@pytest.mark.parametrize(("desc", "field"), [(d, f) for d, f in BAD if f != "cgroups.root"])
def test_frozen_check_refuses_the_same_descriptions(desc: dict[str, Any], field: str) -> None:
    """The status reads the freezer from the description (is_frozen) before any
    manager is built: a bad description is refused there alike."""
    with pytest.raises(InvalidSpec) as info:
        is_frozen(desc)
    assert info.value.field == field


def _v1_tree(tmp_path: Path, state: str | None) -> dict[str, Any]:
    freezer = tmp_path / "freezer" / "dy" / "c1"
    freezer.mkdir(parents=True)
    if state is not None:
        (freezer / "freezer.state").write_text(state + "\n")
    return {"layout": "v1", "dirs": {"freezer": str(freezer), "memory": str(tmp_path / "memory" / "dy" / "c1")},
            "unified": None}


def _v2_tree(tmp_path: Path, events: str | None) -> dict[str, Any]:
    path = tmp_path / "dy" / "c1"
    path.mkdir(parents=True)
    if events is not None:
        (path / "cgroup.events").write_text(events)
    return {"layout": "v2", "path": str(path), "root": str(tmp_path), "allow_unenforced_devices": True}


@pytest.mark.parametrize(("make", "content", "frozen"), [
    (_v1_tree, "FROZEN", True),
    (_v1_tree, "THAWED", False),
    (_v1_tree, "FREEZING", False),  # not frozen until the kernel says FROZEN
    (_v1_tree, None, False),        # the cgroup is gone
    (_v2_tree, "populated 1\nfrozen 1\n", True),
    (_v2_tree, "populated 1\nfrozen 0\n", False),
    (_v2_tree, "populated 0\n", False),
    (_v2_tree, None, False),
])
def test_is_frozen_matches_the_managers(tmp_path: Path, make: Any, content: str | None, frozen: bool) -> None:
    """is_frozen reads what the rebuilt manager's is_frozen reads, and agrees with it."""
    desc = make(tmp_path, content)
    assert is_frozen(desc) is frozen
    if content is not None:
        assert restore_manager(desc).is_frozen() is frozen


def test_v1_without_a_freezer_is_not_frozen(tmp_path: Path) -> None:
    assert is_frozen({"layout": "v1", "dirs": {"memory": str(tmp_path)}, "unified": None}) is False

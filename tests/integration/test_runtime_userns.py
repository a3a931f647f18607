"""User namespaces, idmapped mounts and recursive read-only mounts, read from inside the container."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle import SUBREAPER, Bundle, runc_gap

pytestmark = pytest.mark.root

HOST_BASE = 100000
MAPS = [{"containerID": 0, "hostID": HOST_BASE, "size": 65536}]


@pytest.fixture
def traversable(tmp_path: Path) -> Iterator[None]:
    """The container's root is uid 100000 on the host; pytest's tmp dirs are
    0700, so open them for traversal (o+x) while the test runs."""
    changed: list[tuple[Path, int]] = []
    for path in [tmp_path, *tmp_path.parents]:
        if path == Path("/"):
            break
        mode = path.stat().st_mode & 0o7777
        if not mode & 0o001:
            changed.append((path, mode))
            path.chmod(mode | 0o001)
    yield
    for path, mode in changed:
        path.chmod(mode)


def _userns(bundle: Bundle) -> None:
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = MAPS
    bundle.config["linux"]["gidMappings"] = MAPS
    # device nodes cannot be made in a user namespace; the runtime binds the host's
    bundle.config["linux"]["resources"].pop("devices", None)


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    vol = tmp_path / "vol"
    vol.mkdir()
    vol.chmod(0o777)
    (vol / "owned-by-root").write_text("x")
    return vol


@pytest.mark.usefixtures("traversable")
def test_user_namespace_maps_ids(writable_bundle: Bundle) -> None:
    """With a user namespace the process is root inside and uid 100000 outside, and host-root files show as nobody."""
    _userns(writable_bundle)
    out = writable_bundle.run_ok("cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u /bin/busybox")
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["0", str(HOST_BASE), "65536"]
    assert lines[1] == ["0", str(HOST_BASE), "65536"]
    assert lines[2] == ["0"]
    assert lines[3] == ["65534"]


@runc_gap("runc 1.1 has no idmapped mounts")
@pytest.mark.usefixtures("traversable")
@pytest.mark.parametrize("how", ["idmap-option", "mount-mappings"])
def test_idmapped_bind_mount(writable_bundle: Bundle, volume: Path, how: str) -> None:
    """An idmapped bind mount shows host-root files as root inside, and files created through it are host root's."""
    _userns(writable_bundle)
    mount: dict[str, object] = {"destination": "/home", "type": "bind", "source": str(volume), "options": ["bind"]}
    if how == "idmap-option":
        mount["options"] = ["bind", "idmap"]
    else:
        mount["uidMappings"] = MAPS
        mount["gidMappings"] = MAPS
    writable_bundle.config["mounts"].append(mount)
    writable_bundle.config["mounts"].append(
        {"destination": "/var", "type": "bind", "source": str(volume), "options": ["bind"]})
    out = writable_bundle.run_ok("stat -c %u:%g /home/owned-by-root /var/owned-by-root; touch /home/made-inside")
    assert out.split() == ["0:0", "65534:65534"]
    made = (volume / "made-inside").stat()
    assert (made.st_uid, made.st_gid) == (0, 0)


@runc_gap("runc 1.1 has no idmapped mounts: it passes `idmap` to the filesystem")
def test_idmap_on_a_non_bind_mount_is_refused(bundle: Bundle) -> None:
    """idmap applies to bind mounts only: create fails with exit 1 naming the mount's field."""
    _userns(bundle)
    bundle.config["mounts"].append({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]})
    index = len(bundle.config["mounts"]) - 1
    bundle.sh("true")
    done = bundle.run()
    assert done.returncode == 1
    assert f"mounts[{index}].type" in done.stderr


@pytest.fixture
def tree_with_submount(tmp_path: Path) -> Iterator[Path]:
    top = tmp_path / "tree"
    (top / "sub").mkdir(parents=True)
    assert SUBREAPER.run(["mount", "-t", "tmpfs", "tmpfs", str(top / "sub")], timeout=10).returncode == 0
    try:
        yield top
    finally:
        assert SUBREAPER.run(["umount", str(top / "sub")], timeout=10).returncode == 0


@pytest.mark.parametrize(("options", "sub_writable"), [(["rbind", "ro"], True), (["rbind", "rro"], False)])
def test_recursive_read_only(bundle: Bundle, tree_with_submount: Path, options: list[str], sub_writable: bool) -> None:
    """`ro` makes only the top of an rbind read-only; `rro` (mount_setattr AT_RECURSIVE) covers the submounts too."""
    bundle.config["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": str(tree_with_submount), "options": options})
    out = bundle.run_ok("touch /mnt/top 2>/dev/null && echo top-rw || echo top-ro; "
                        "touch /mnt/sub/x 2>/dev/null && echo sub-rw || echo sub-ro")
    assert out.split() == ["top-ro", "sub-rw" if sub_writable else "sub-ro"]
    assert not (tree_with_submount / "top").exists()
    assert os.path.ismount(tree_with_submount / "sub")

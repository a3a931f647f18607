"""hostPath sources: the daemon's own directories are refused; a missing source is created."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dockyard.cri.errors import InvalidArgument
from dockyard.cri.oci.host_paths import Guarded, check, create_missing

LINKS = {"/srv/link": "/var/lib/dockyard/content", "/srv/up": "/run"}


def fake_resolve(path: str) -> str:
    """realpath over a table of symlinks: no file system."""
    path = os.path.normpath(path)
    for link, target in LINKS.items():
        if path == link or path.startswith(link + "/"):
            return target + path[len(link):]
    return path


GUARDED = Guarded.of_daemon("/var/lib/dockyard", "/run/dockyard", "/run/dockyard/dockyard.sock", fake_resolve)


@pytest.mark.parametrize(
    ("sources", "refused"),
    [
        (["/data", "/var/lib", "/run", "/var/lib/dockyardish", "/"], None),
        (["/data", "/var/lib/dockyard"], 1),
        (["/var/lib/dockyard/snapshots/3/fs"], 0),
        (["/data", "/x", "/run/dockyard/shims/abc/shim.sock"], 2),
        (["/var/lib/other/../dockyard/images"], 0),           # .. resolved before the check
        (["/srv/link/blobs"], 0),                            # a symlink into root_dir
        (["/srv/up/dockyard"], 0),                           # a symlinked parent of state_dir
        (["/run/dockyard/dockyard.sock"], None),             # the CRI socket: node agents mount it
        (["", "relative/path"], None),                        # left to the spec builder's own errors
    ],
)
def test_check(sources: list[str], refused: int | None) -> None:
    if refused is None:
        assert check(sources, GUARDED, fake_resolve) == [fake_resolve(s) if s.startswith("/") else s for s in sources]
        return
    with pytest.raises(InvalidArgument) as info:
        check(sources, GUARDED, fake_resolve)
    message = str(info.value)
    assert message.startswith(f"config.mounts[{refused}].host_path: {sources[refused]}")
    assert "dockyardd's own directory" in message


def test_a_resolved_path_is_named_both_ways() -> None:
    with pytest.raises(InvalidArgument) as info:
        check(["/srv/link/blobs"], GUARDED, fake_resolve)
    assert "/srv/link/blobs (resolves to /var/lib/dockyard/content/blobs)" in str(info.value)


def test_create_missing(tmp_path: Path) -> None:
    """Missing sources become 0755 directories with their parents; existing ones are left alone."""
    existing = tmp_path / "file"
    existing.write_text("x")
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    wanted = tmp_path / "a" / "b" / "c"
    made = create_missing([str(existing), str(wanted), "", str(dangling)])
    assert made == [str(wanted)]
    assert wanted.is_dir() and (wanted.stat().st_mode & 0o777) == 0o755 & ~_umask()
    assert existing.read_text() == "x" and dangling.is_symlink()


def test_create_missing_names_the_mount(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    with pytest.raises(InvalidArgument) as info:
        create_missing(["/tmp", str(blocker / "sub")])
    assert str(info.value).startswith(f"config.mounts[1].host_path: {blocker}/sub does not exist and cannot be created")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

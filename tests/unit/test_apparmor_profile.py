"""AppArmor on the node, the pure parts: the loaded-profiles list, and the
default profile's text, which Debian's apparmor_parser must compile."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.cri.apparmor import AppArmor, default_profile_text, parse_profiles


@pytest.mark.parametrize(("text", "names"), [
    ("", set()),
    ("dockyard-default (enforce)\n", {"dockyard-default"}),
    ("/usr/bin/man (enforce)\nman_filter (enforce)\ncri-validation (complain)\n",
     {"/usr/bin/man", "man_filter", "cri-validation"}),
    ("name with spaces (enforce)\ngarbage\n", {"name with spaces"}),
])
def test_parse_profiles(text: str, names: set[str]) -> None:
    assert parse_profiles(text) == names


@pytest.mark.skipif(shutil.which("apparmor_parser") is None, reason="apparmor_parser is not installed (Debian: apparmor)")
def test_default_profile_compiles(tmp_path: Path) -> None:
    """-Q: compile only, never load (this host's kernel may not have AppArmor on)."""
    profile = tmp_path / "dockyard-default"
    profile.write_text(default_profile_text())
    done = subprocess.run(["apparmor_parser", "-Q", "-K", str(profile)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_off_means_nothing_loaded(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.write_text("x (enforce)\n")
    assert AppArmor(enabled=False, profiles_file=str(profiles)).loaded() == frozenset()


def test_default_already_loaded_is_not_loaded_again(tmp_path: Path) -> None:
    """With the default profile listed, loaded() only reads the list (no
    apparmor_parser run: this host has no AppArmor to load into)."""
    profiles = tmp_path / "profiles"
    profiles.write_text("dockyard-default (enforce)\nx (complain)\n")
    assert AppArmor(enabled=True, profiles_file=str(profiles)).loaded() == {"dockyard-default", "x"}

"""Network config files: validation, which file is in force, and re-reading on change."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from dockyard.cri.network.conflist import ConfDir, ConfigInvalid, choose, parse_network

REPO = Path(__file__).resolve().parents[2]


def conflist(**overrides: Any) -> bytes:
    base: dict[str, Any] = {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge"}]}
    base.update(overrides)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_the_shipped_conflist_is_valid() -> None:
    path = REPO / "deploy" / "cni" / "10-dockyard.conflist"
    config = parse_network(path.name, path.read_bytes())
    assert config.name == "dockyard"
    assert config.plugin_types == ("bridge", "portmap")  # no loopback: dockyardd brings lo up itself
    plugins = config.raw["plugins"]
    assert plugins[0]["ipMasq"] is False and plugins[0]["ipam"]["ranges"] == [[{"subnet": "10.88.0.0/16"}]]


def test_a_single_plugin_conf_is_wrapped_into_a_list() -> None:
    data = json.dumps({"cniVersion": "0.4.0", "name": "lo", "type": "loopback", "disableCheck": True}).encode()
    config = parse_network("99-lo.conf", data)
    assert (config.name, config.cni_version, config.plugin_types, config.disable_check) == (
        "lo", "0.4.0", ("loopback",), True)
    assert config.raw["plugins"][0]["type"] == "loopback"


@pytest.mark.parametrize(
    ("name", "data", "match"),
    [
        ("a.txt", conflist(), "not a network config file"),
        ("a.conflist", b"{", "not valid JSON"),
        ("a.conflist", b"[]", "not a JSON object"),
        ("a.conflist", conflist(name=None), "name must match"),
        ("a.conflist", conflist(name="bad name"), "name must match"),
        ("a.conflist", conflist(cniVersion="0.2.0"), "cniVersion '0.2.0'"),
        ("a.conflist", conflist(cniVersion=None), "cniVersion None"),
        ("a.conflist", conflist(plugins=[]), "non-empty list"),
        ("a.conflist", conflist(plugins=None), "non-empty list"),
        ("a.conflist", conflist(plugins=["bridge"]), r"plugins\[0\] is not an object"),
        ("a.conflist", conflist(plugins=[{"type": "../../bin/sh"}]), r"plugins\[0\].type"),
        ("a.conflist", conflist(plugins=[{"type": "bridge"}, {}]), r"plugins\[1\].type"),
        ("a.conflist", conflist(plugins=[{"type": "x", "capabilities": {"portMappings": "yes"}}]), "booleans"),
        ("a.conflist", conflist(cniVersions="1.1.0"), "cniVersions must be a list"),
        ("a.conflist", conflist(cniVersion="2.0.0", cniVersions=["2.0.0", "1.9.0"]), "cniVersion '2.0.0'"),
        ("a.conflist", conflist(disableCheck="no"), "disableCheck"),
        ("a.conf", json.dumps({"cniVersion": "1.0.0", "name": "n"}).encode(), r"plugins\[0\].type"),
    ],
)
def test_invalid_configs_say_why(name: str, data: bytes, match: str) -> None:
    with pytest.raises(ConfigInvalid, match=match):
        parse_network(name, data)


@pytest.mark.parametrize("caps", [
    {"ips": True, "mac": True}, {"ipRanges": True}, {"portMappings": True, "bandwidth": True, "dns": True},
    {"io.example/made-up": True, "ips": False},
])
def test_any_declared_capability_is_accepted(caps: dict[str, bool]) -> None:
    """libcni's rule: a capability the runtime has no value for is passed no value; the list stays valid."""
    config = parse_network("a.conflist", conflist(cniVersion="1.1.0", plugins=[{"type": "x", "capabilities": caps}]))
    assert config.cni_version == "1.1.0" and config.raw["plugins"][0]["capabilities"] == caps


@pytest.mark.parametrize(
    ("version", "versions", "want"),
    [
        ("1.0.0", ["0.4.0", "1.1.0", "1.0.0"], "1.1.0"),   # the highest one known wins over cniVersion
        ("1.0.0", ["1.2.0", "9.9.9"], "1.0.0"),             # none known: cniVersion
        (None, ["0.3.1", "1.0.0"], "1.0.0"),
        ("1.1.0", None, "1.1.0"),
    ],
)
def test_cni_versions_pick_the_highest_known(version: str | None, versions: list[str] | None, want: str) -> None:
    config = parse_network("a.conflist", conflist(cniVersion=version, cniVersions=versions))
    assert config.cni_version == want and config.raw["cniVersion"] == want


def test_choose_takes_the_first_valid_file_in_lexical_order() -> None:
    selection = choose([
        ("20-b.conflist", conflist(name="b")),
        ("05-broken.conflist", b"{"),
        ("10-a.conflist", conflist(name="a")),
        ("30-broken.conf", b"{"),
    ])
    assert selection.config is not None and selection.config.name == "a"
    # files after the chosen one are not judged
    assert [name for name, _ in selection.rejected] == ["05-broken.conflist"]
    assert selection.rejected_text().startswith("05-broken.conflist: not valid JSON")


def test_choose_with_nothing_valid() -> None:
    selection = choose([("a.conflist", b"{}")])
    assert selection.config is None and selection.rejected[0][0] == "a.conflist"
    assert choose([]).config is None


def test_conf_dir_notices_new_changed_and_removed_files(tmp_path: Path) -> None:
    conf = ConfDir(str(tmp_path))
    assert conf.current()[0].config is None
    (tmp_path / "10-a.conflist").write_bytes(conflist(name="first"))
    selection, error = conf.current()
    assert error == "" and selection.config is not None and selection.config.name == "first"
    # Same size, new content: the mtime changes (forced, as a fast rewrite
    # can land in the same timestamp tick on a coarse-clock file system).
    path = tmp_path / "10-a.conflist"
    path.write_bytes(conflist(name="secnd"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    selection, _ = conf.current()
    assert selection.config is not None and selection.config.name == "secnd"
    (tmp_path / "05-b.conflist").write_bytes(conflist(name="earlier"))
    selection, _ = conf.current()
    assert selection.config is not None and selection.config.name == "earlier"
    (tmp_path / "05-b.conflist").unlink()
    (tmp_path / "10-a.conflist").unlink()
    assert conf.current()[0].config is None


def test_conf_dir_ignores_other_files_and_reports_broken_ones(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not a config")
    (tmp_path / ".10-a.conflist.swp").write_text("{")
    (tmp_path / "01-bad.conf").write_text("{")
    (tmp_path / "10-good.conflist").write_bytes(conflist())
    selection, _ = ConfDir(str(tmp_path)).current()
    assert selection.config is not None and selection.config.source == "10-good.conflist"
    assert [name for name, _ in selection.rejected] == ["01-bad.conf"]


def test_conf_dir_missing(tmp_path: Path) -> None:
    selection, error = ConfDir(str(tmp_path / "nope")).current()
    assert selection.config is None and "does not exist" in error


def test_conf_dir_does_not_reread_an_unchanged_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "10-a.conflist").write_bytes(conflist())
    conf = ConfDir(str(tmp_path))
    conf.current()
    reads: list[object] = []
    original = ConfDir._read

    def counting(self: ConfDir, fingerprint: Any) -> Any:
        reads.append(fingerprint)
        return original(self, fingerprint)

    monkeypatch.setattr(ConfDir, "_read", counting)
    for _ in range(3):
        conf.current()
    assert reads == []

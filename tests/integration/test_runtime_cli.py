"""The command line itself: --version, spec, features, --log, and usage errors."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from bundle import SUBREAPER, Bundle

pytestmark = pytest.mark.root


def cli(runtime: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return SUBREAPER.run(
        [str(runtime), *args],
        timeout=30,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def test_version_format(runtime: Path) -> None:
    """--version prints runc's lines: `NAME version X`, `commit: ...`, `spec: X.Y.Z`."""
    done = cli(runtime, "--version")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) >= 3
    assert re.fullmatch(r"\S+ version \S+", lines[0]), lines[0]
    assert lines[1].startswith("commit: "), lines[1]
    assert re.fullmatch(r"spec: \d+\.\d+\.\d+(-\S+)?", lines[2]), lines[2]


def test_spec_writes_a_valid_config(runtime: Path, tmp_path: Path) -> None:
    """spec writes a config.json that parses, runs `sh` in ./rootfs, with the usual namespaces."""
    done = cli(runtime, "spec", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["ociVersion"]
    assert config["process"]["args"] == ["sh"]
    assert config["root"]["path"] == "rootfs"
    kinds = {ns["type"] for ns in config["linux"]["namespaces"]}
    assert {"pid", "network", "ipc", "uts", "mount"} <= kinds
    assert any(m["destination"] == "/proc" for m in config["mounts"])


def test_spec_refuses_to_overwrite(runtime: Path, tmp_path: Path) -> None:
    """spec does not overwrite an existing config.json."""
    (tmp_path / "config.json").write_text("keep me")
    done = cli(runtime, "spec", cwd=tmp_path)
    assert done.returncode != 0
    assert (tmp_path / "config.json").read_text() == "keep me"


def test_spec_bundle_flag(runtime: Path, tmp_path: Path) -> None:
    """spec --bundle DIR writes DIR/config.json."""
    done = cli(runtime, "spec", "--bundle", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "config.json").read_text())["process"]["args"] == ["sh"]


def test_features(runtime: Path) -> None:
    """features prints JSON with the OCI version range, hooks, mount options and namespaces."""
    done = cli(runtime, "features")
    assert done.returncode == 0, done.stderr
    features = json.loads(done.stdout)
    assert features["ociVersionMin"] and features["ociVersionMax"]
    assert {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} <= set(
        features["hooks"]
    )
    assert {"ro", "rw", "nosuid", "nodev", "noexec", "bind", "rbind", "rprivate", "relatime"} <= set(
        features["mountOptions"]
    )
    linux = features["linux"]
    assert {"pid", "network", "mount", "ipc", "uts", "user", "cgroup"} <= set(linux["namespaces"])
    assert "CAP_SYS_ADMIN" in linux["capabilities"]
    assert linux["cgroup"]["v1"] is True
    assert linux["seccomp"]["enabled"] is True
    assert "SCMP_ACT_ERRNO" in linux["seccomp"]["actions"]


def test_unknown_verb_fails(runtime: Path) -> None:
    """an unknown subcommand is a usage error with a non-zero exit."""
    done = cli(runtime, "no-such-verb")
    assert done.returncode != 0


def test_state_of_unknown_container(bundle: Bundle) -> None:
    """state of a container that does not exist fails with exit 1 and an error on stderr."""
    done = bundle.invoke("state", bundle.id)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "exist" in done.stderr or "not found" in done.stderr


def test_log_file_json(bundle: Bundle, tmp_path: Path) -> None:
    """--log FILE --log-format json writes the error as a JSON line with level and msg."""
    log = tmp_path / "runtime.log"
    done = bundle.invoke("--log", str(log), "--log-format", "json", "state", bundle.id)
    assert done.returncode == 1
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors, entries
    assert errors[-1]["msg"]


def test_systemd_cgroup_flag_is_a_clear_error(bundle: Bundle) -> None:
    """--systemd-cgroup on a host it cannot work on (cgroup v1, no systemd as PID 1:
    this one) fails create naming systemd and leaves nothing; the driver itself
    is tested in the guest (tests/guest/test_systemd_cgroup.py)."""
    if bundle.runtime.name == "runc":
        pytest.skip("runc has its own answer on this host; the rule is dockyard-runc's")
    bundle.sh("true")
    bundle.write_config()
    done = bundle.invoke("--systemd-cgroup", "create", "--bundle", str(bundle.path), bundle.id)
    assert done.returncode == 1
    assert "systemd" in done.stderr.lower()
    assert not bundle.exists()

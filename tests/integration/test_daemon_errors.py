"""dockyardd under bad input and signals: each failure has its gRPC code and a
message naming the reference, the daemon stays healthy, and nothing is kept."""

from __future__ import annotations

import sys
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from bundle import SUBREAPER
from cri_api.v1 import api_pb2
from daemon_fixture import REPO, Daemon, daemon_factory, dockyardd, test_registry  # noqa: F401 (fixtures)

TLS_REGISTRY = "127.0.0.1:5443"
CA = REPO / "build" / "registry" / "ca" / "ca.crt"


def pull_error(d: Daemon, ref: str, auth: api_pb2.AuthConfig | None = None) -> grpc.RpcError:
    with d.channel() as ch, pytest.raises(grpc.RpcError) as info:
        d.images(ch).PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref), auth=auth), timeout=60)
    return info.value


def assert_healthy(d: Daemon) -> None:
    assert d.alive(), d.log_text()
    with d.channel() as ch:
        assert d.runtime(ch).Version(api_pb2.VersionRequest(), timeout=10).runtime_name == "dockyard"
    assert d.ingest_files() == []


@pytest.mark.parametrize("ref", ["Busybox:UPPER", "busybox@sha256:short", "a//b", "busybox:tag:extra"])
def test_bad_reference_is_invalid_argument(dockyardd: Daemon, ref: str) -> None:
    """A malformed reference is INVALID_ARGUMENT and the message names it."""
    err = pull_error(dockyardd, ref)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ref in err.details()
    assert_healthy(dockyardd)


def test_missing_image_is_not_found(dockyardd: Daemon, test_registry: str) -> None:
    """A tag the registry does not have is NOT_FOUND naming the reference; ImageStatus
    of an image never pulled is an empty answer, not an error."""
    ref = f"{test_registry}/busybox:no-such-tag"
    err = pull_error(dockyardd, ref)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "busybox:no-such-tag" in err.details()
    with dockyardd.channel() as ch:
        st = dockyardd.images(ch).ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref)), timeout=10)
    assert not st.HasField("image")
    assert_healthy(dockyardd)


def test_wrong_credentials_are_unauthenticated(daemon_factory: Any, test_registry: str) -> None:
    """Basic auth with a wrong password is UNAUTHENTICATED; the password never shows in
    the error or the log; the right one then pulls."""
    if not CA.exists():
        pytest.skip(f"TLS registry CA {CA} missing (hack/registry.sh start makes it)")
    d: Daemon = daemon_factory()
    host_dir = d.certs / TLS_REGISTRY
    host_dir.mkdir(parents=True)
    # Top-level settings apply to `server` (containerd's hosts.toml layout).
    (host_dir / "hosts.toml").write_text(f'server = "https://{TLS_REGISTRY}"\nca = "{CA}"\n')
    d.start()
    wrong = api_pb2.AuthConfig(username="dockyard", password="not-the-password-xyzzy")
    err = pull_error(d, f"{TLS_REGISTRY}/busybox:latest", wrong)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "xyzzy" not in err.details()
    assert f"{TLS_REGISTRY}/busybox" in err.details()
    assert_healthy(d)
    right = api_pb2.AuthConfig(username="dockyard", password="dockyard-test-password")
    assert d.pull(f"{TLS_REGISTRY}/busybox:latest", auth=right).startswith("sha256:")
    assert "xyzzy" not in d.log_text() and "dockyard-test-password" not in d.log_text()


def test_sigterm_during_pull_leaves_no_temp(daemon_factory: Any, test_registry: str) -> None:
    """SIGTERM while the big image downloads: the pull is cancelled, the daemon exits 0,
    and no ingest temp file nor partial blob remains."""
    d: Daemon = daemon_factory()
    d.start()
    errors: list[grpc.RpcError] = []

    def pull() -> None:
        try:
            d.pull(f"{test_registry}/big:latest", timeout=300)
        except grpc.RpcError as err:
            errors.append(err)

    puller = threading.Thread(target=pull)
    puller.start()
    deadline = time.monotonic() + 60
    while not d.ingest_files():
        assert time.monotonic() < deadline, "the pull never started writing"
        time.sleep(0.01)
    assert d.stop() == 0
    puller.join(60)
    assert errors, "the pull finished before SIGTERM; the test proves nothing"
    assert d.ingest_files() == []
    d.start()
    listed = d.crictl("images", "-q").stdout.split()
    assert listed == []


def test_bad_config_stops_startup_naming_the_key(tmp_path: Path) -> None:
    """An unknown or bad key stops dockyardd before it serves, naming the dotted key."""
    config = tmp_path / "bad.yaml"
    config.write_text("registry:\n  max_concurrent_downloads: 0\n")
    result = SUBREAPER.run([sys.executable, "-m", "dockyard.cri.daemon", "--config", str(config)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert result.returncode == 2
    assert "registry.max_concurrent_downloads" in result.stderr


def test_config_default_prints_deploy_file() -> None:
    """`dockyardd config default` prints deploy/dockyard.yaml."""
    result = SUBREAPER.run([sys.executable, "-m", "dockyard.cri.daemon", "config", "default"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (REPO / "deploy" / "dockyard.yaml").read_text()


def test_kill_9_during_pull_then_restart_recovers(daemon_factory: Any, test_registry: str) -> None:
    """kill -9 mid-pull: every blob under its digest name is complete and verified; the next
    start takes over the stale socket, removes the ingest leftovers and the blobs no image
    references, then serves."""
    import hashlib
    import signal as _signal

    d: Daemon = daemon_factory()
    d.start()
    puller = threading.Thread(target=lambda: pytest.raises(grpc.RpcError, d.pull, f"{test_registry}/big:latest", 300))
    puller.start()
    deadline = time.monotonic() + 60
    while not d.ingest_files():
        assert time.monotonic() < deadline, "the pull never started writing"
        time.sleep(0.01)
    assert d.proc is not None
    d.proc.send_signal(_signal.SIGKILL)
    d.stop()
    puller.join(60)
    blobs = d.root / "content" / "blobs" / "sha256"
    for blob in blobs.iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, f"partial blob {blob.name}"
    d.start()
    assert d.ingest_files() == []
    assert list(blobs.iterdir()) == []
    assert d.crictl("images", "-q").stdout.split() == []

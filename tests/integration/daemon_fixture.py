"""A dockyardd under test: a subprocess with its own root, state, socket and
registry config, plus crictl and gRPC clients pointed at it.

The hosts.toml directory maps docker.io, registry.k8s.io and 127.0.0.1:5000
to the plain-HTTP test registry on 127.0.0.1:5000 (hack/registry.sh), so no
test can reach a real registry.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from bundle import SUBREAPER
from cri_api.v1 import api_pb2, api_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
DOCKYARDD = [sys.executable, "-m", "dockyard.cri.daemon"]
CRICTL = REPO / "build" / "bin" / "crictl"
REGISTRY = "127.0.0.1:5000"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0

MIRRORED = ("docker.io", "registry.k8s.io", REGISTRY)


def write_hosts_dir(config_path: Path, registry: str = REGISTRY, hosts: tuple[str, ...] = MIRRORED) -> None:
    """containerd-style <config_path>/<host>/hosts.toml sending each of ``hosts`` to ``registry``."""
    for host in hosts:
        d = config_path / host
        d.mkdir(parents=True, exist_ok=True)
        (d / "hosts.toml").write_text(
            f'server = "http://{registry}"\n\n'
            f'[host."http://{registry}"]\n'
            '  capabilities = ["pull", "resolve"]\n'
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """One dockyardd process; ``start()`` waits until it is ready (recovery done)."""

    def __init__(self, tmp: Path, **overrides: Any) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.socket = tmp / "state" / "dockyard.sock"
        self.metrics_port = free_port()
        self.certs = tmp / "certs.d"
        write_hosts_dir(self.certs)
        registry: dict[str, Any] = {"config_path": str(self.certs), "request_timeout": "10s", "retries": 1}
        registry.update(overrides.pop("registry", {}))
        self.config: dict[str, Any] = {
            "socket": {"path": str(self.socket)},
            "root_dir": str(tmp / "root"),
            "state_dir": str(tmp / "state"),
            "metrics_address": f"127.0.0.1:{self.metrics_port}",
            "log_level": "debug",
            "registry": registry,
            **overrides,
        }
        self.config_file = tmp / "dockyard.yaml"
        self.log = tmp / "dockyardd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # Extra environment for the next start (a test arms a fault point with it).
        self.env: dict[str, str] = {}

    @property
    def root(self) -> Path:
        return Path(self.config["root_dir"])

    def start(self, wait_ready: bool = True) -> Daemon:
        self.config_file.write_text(yaml.safe_dump(self.config))
        ready = self.tmp / "ready"
        ready.unlink(missing_ok=True)
        # The session's subreaper thread reaps every zombie child it does not
        # own; a long-lived daemon must be registered under its lock or its
        # exit status (which the SIGTERM test checks) could be stolen.
        with open(self.log, "ab") as log, SUBREAPER._lock:
            self.proc = subprocess.Popen(
                [*DOCKYARDD, "--config", str(self.config_file), "--ready-file", str(ready)],
                stdout=log, stderr=log, cwd=REPO, env={**os.environ, **self.env},
            )
            SUBREAPER._owned.add(self.proc.pid)
        if wait_ready:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not ready.exists():
                if self.proc.poll() is not None:
                    raise AssertionError(f"dockyardd exited {self.proc.returncode}:\n{self.log_text()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"dockyardd not ready after {START_TIMEOUT_S}s:\n{self.log_text()}")
                time.sleep(0.05)
        return self

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"dockyardd ignored SIGTERM for {STOP_TIMEOUT_S}s:\n{self.log_text()}")
        code = self.proc.returncode
        with SUBREAPER._lock:
            SUBREAPER._owned.discard(self.proc.pid)
        self.proc = None
        return code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop_emptied(self) -> int:
        """Remove every pod (while the daemon still runs), then stop() it."""
        if self.alive():
            self.crictl("rmp", "-f", "-a", check=False)
        return self.stop()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    # --- clients ---

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"unix://{self.socket}")

    def images(self, channel: grpc.Channel) -> api_pb2_grpc.ImageServiceStub:
        return api_pb2_grpc.ImageServiceStub(channel)

    def runtime(self, channel: grpc.Channel) -> api_pb2_grpc.RuntimeServiceStub:
        return api_pb2_grpc.RuntimeServiceStub(channel)

    def pull(self, ref: str, timeout: float = 120.0, auth: api_pb2.AuthConfig | None = None) -> str:
        with self.channel() as ch:
            req = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=ref), auth=auth)
            return str(self.images(ch).PullImage(req, timeout=timeout).image_ref)

    def crictl(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        if not CRICTL.exists():
            pytest.skip(f"crictl not installed at {CRICTL} (run hack/install-crictl.sh)")
        endpoint = f"unix://{self.socket}"
        result = SUBREAPER.run(
            [str(CRICTL), "--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "--timeout", "60s", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"crictl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as resp:
            return str(resp.read().decode())

    def ingest_files(self) -> list[str]:
        ingest = self.root / "content" / "ingest"
        return sorted(os.listdir(ingest)) if ingest.exists() else []


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    """Make Daemons in this test's tmp dir; all are stopped (and their mounts gone) afterwards."""
    made: list[Daemon] = []

    def make(**overrides: Any) -> Daemon:
        d = Daemon(tmp_path / f"d{len(made)}", **overrides)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
        unmount_under(d.tmp)


@pytest.fixture
def dockyardd(daemon_factory: Any) -> Daemon:
    """A started dockyardd with default settings in a temp dir."""
    d: Daemon = daemon_factory()
    return d.start()


@pytest.fixture(scope="session")
def test_registry() -> str:
    """The plain-HTTP registry on 127.0.0.1:5000 with the test images pushed
    (hack/registry.sh and hack/push-test-images.sh; both are idempotent)."""
    for script in ("registry.sh", "push-test-images.sh"):
        argv = [str(REPO / "hack" / script)] + (["start"] if script == "registry.sh" else [])
        result = SUBREAPER.run(argv, timeout=900, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            pytest.fail(f"hack/{script} failed: {result.stderr[-2000:]}")
    return REGISTRY


def unmount_under(path: Path) -> None:
    """Lazily unmount everything below ``path``, deepest first: snapshots may be
    mounted by later issues' tests; leave no mount behind."""
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        SUBREAPER.run(["umount", "-l", target], timeout=30)

"""The CRI server under test for the e2e tests, and the helpers to set it up.

The endpoint is a dockyardd started for the module (the default), or Debian's
containerd 1.6 from hack/containerd-cri.sh when DOCKYARD_E2E_RUNTIME=containerd
(to check the harness itself against a runtime known to work).

Facts the fixtures rely on:
- Every image comes from the plain local registry (hack/build-critest-images.sh
  builds and pushes critest's set, which also serves the kubelet pods); the
  runtime reaches it through hosts.toml mirrors of the public registries, so no
  test touches the network.
- Until dockyardd's RuntimeService is in place (issue 4) it answers
  UNIMPLEMENTED; the dockyardd fixture then skips the module with that reason
  rather than report conformance failures that only say "not written yet".
- dockyardd runs with restrict_oom_score_adj: root here lacks
  CAP_SYS_RESOURCE, so the pause container's oom_score_adj of -998 (and
  kubelet's -997 for Guaranteed pods) cannot be written as is.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from bundle import SUBREAPER
from cri_api.v1 import api_pb2, api_pb2_grpc
from daemon_fixture import Daemon, unmount_under, write_hosts_dir  # noqa: F401 (Daemon and unmount_under re-exported)

BUILD = REPO / "build"
REGISTRY = "127.0.0.1:5000"
# Every registry host an image name in critest or the kubelet tests uses.
MIRRORED = ("registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io", "registry-1.docker.io",
            "quay.io", "public.ecr.aws", "ghcr.io", "mcr.microsoft.com", REGISTRY)
CNI_CONFLIST = REPO / "deploy" / "cni" / "10-dockyard.conflist"
CNI_BIN_DIRS = ["/usr/lib/cni", "/opt/cni/bin"]
SETUP_TIMEOUT_S = 900.0



@dataclass(frozen=True)
class CRIEndpoint:
    """A CRI server under test: its name, socket and log file."""

    name: str
    socket: Path
    log: Path
    state_dir: Path | None  # dockyardd's state dir (shims/<pod>), None for containerd

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def runtime(self, channel: grpc.Channel) -> api_pb2_grpc.RuntimeServiceStub:
        return api_pb2_grpc.RuntimeServiceStub(channel)

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.url)


def run_checked(argv: list[str], timeout: float = SETUP_TIMEOUT_S) -> str:
    """Run a setup command through the session subreaper; fail the test with its output if it fails."""
    result = SUBREAPER.run(argv, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-4000:]}")
    return str(result.stdout)


def runtime_service_missing(url: str) -> str | None:
    """Why the RuntimeService at ``url`` cannot run pods yet, or None when it answers.

    Version and ListPodSandbox are the first calls critest and kubelet make;
    UNIMPLEMENTED from either means the service is not there yet. Any other
    error is a real failure and propagates.
    """
    with grpc.insecure_channel(url) as ch:
        stub = api_pb2_grpc.RuntimeServiceStub(ch)
        for name, call in (("Version", lambda: stub.Version(api_pb2.VersionRequest(), timeout=10)),
                           ("ListPodSandbox", lambda: stub.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=10))):
            try:
                call()
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return f"dockyardd's RuntimeService answers UNIMPLEMENTED to {name} (issue 4 not merged yet): {err.details()}"
                raise
    return None


def write_mirrors(config_path: Path) -> None:
    """containerd-style hosts.toml for every MIRRORED host -> the local registry, no fallback."""
    write_hosts_dir(config_path, REGISTRY, MIRRORED)


def all_hierarchies() -> list[Path]:
    """v1 hierarchies and the cgroup2 mount (on a hybrid host cgroups are made there too)."""
    with open("/proc/self/mountinfo") as f:
        return sorted({Path(line.split()[4]) for line in f if " - cgroup " in line or " - cgroup2 " in line})


def remove_cgroup_tree(name: str) -> list[str]:
    """rmdir /<name> in every hierarchy, deepest first; the dirs that would not go (a cgroup
    still holding a process: something the run left behind)."""
    stuck = []
    for h in all_hierarchies():
        top = h / name.strip("/")
        if not top.exists():
            continue
        dirs = sorted((Path(p) for p, _, _ in os.walk(top)), key=lambda p: len(p.parts), reverse=True)
        for d in dirs:
            try:
                d.rmdir()
            except OSError as err:
                if err.errno != errno.ENOENT:
                    stuck.append(f"{d}: {err.strerror}")
    return stuck

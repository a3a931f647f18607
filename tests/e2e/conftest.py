"""Fixtures for the e2e tests: critest's images and the CRI server under test
(see e2e_endpoint.py for what the server is and the facts it relies on)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_endpoint import (
    CNI_BIN_DIRS,
    CNI_CONFLIST,
    REPO,
    CRIEndpoint,
    Daemon,
    remove_cgroup_tree,
    run_checked,
    runtime_service_missing,
    unmount_under,
    write_mirrors,
)


@pytest.fixture(scope="session")
def critest_images() -> None:
    """critest's images (also the kubelet pods' images) in the local registry; idempotent."""
    if os.geteuid() != 0:
        pytest.skip("the e2e tests need root: the runtime makes namespaces, mounts and cgroups")
    run_checked([str(REPO / "hack" / "build-critest-images.sh")])


@pytest.fixture(scope="module")
def cri_endpoint(critest_images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CRIEndpoint]:
    """The CRI server under test, running for this module; everything it made is gone afterwards."""
    which = os.environ.get("DOCKYARD_E2E_RUNTIME", "dockyardd")
    if which == "containerd":
        if shutil.which("containerd") is None:
            pytest.skip("containerd is not installed (apt-get install containerd)")
        script = str(REPO / "hack" / "containerd-cri.sh")
        run_checked([script, "start"])
        socket = Path(run_checked([script, "endpoint"]).strip().removeprefix("unix://"))
        try:
            yield CRIEndpoint("containerd", socket, socket.parent / "containerd.log", None)
        finally:
            run_checked([script, "stop"])
        return
    if which != "dockyardd":
        pytest.fail(f"DOCKYARD_E2E_RUNTIME={which!r}: expected dockyardd or containerd")

    tmp = tmp_path_factory.mktemp("dockyardd")
    # The shim's socket is <state_dir>/shims/<64-hex pod id>/shim.sock, and a
    # unix socket path has 107 bytes at most: pytest's tmp dirs are too deep.
    state_dir = Path(tempfile.mkdtemp(prefix="dye2e", dir="/tmp"))
    certs = tmp / "certs.d"
    write_mirrors(certs)
    cni_dir = tmp / "cni"
    cni_dir.mkdir()
    if not CNI_CONFLIST.exists():
        pytest.fail(f"{CNI_CONFLIST} is missing (the pod network config)")
    shutil.copy(CNI_CONFLIST, cni_dir / CNI_CONFLIST.name)
    # A cgroup parent of its own, removed afterwards: a cgroup left holding a
    # process fails the run, and the default /dockyard is left alone.
    cgroup_parent = f"/dockyard-e2e-{secrets.token_hex(4)}"
    daemon = Daemon(
        tmp,
        registry={"config_path": str(certs)},
        cni={"conf_dir": str(cni_dir), "bin_dirs": CNI_BIN_DIRS, "cache_dir": str(tmp / "cni-cache")},
        restrict_oom_score_adj=True,
        log_level="info",
        state_dir=str(state_dir),
        cgroup_parent=cgroup_parent,
    )
    daemon.start()
    try:
        reason = runtime_service_missing(f"unix://{daemon.socket}")
        if reason is not None:
            pytest.skip(reason)
        yield CRIEndpoint("dockyardd", daemon.socket, daemon.log, state_dir)
    finally:
        daemon.stop()
        unmount_under(tmp)
        unmount_under(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        stuck = remove_cgroup_tree(cgroup_parent)
        assert not stuck, f"cgroups left under {cgroup_parent}: {stuck}"

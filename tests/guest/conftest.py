"""Fixtures for the guest suite: tests that only a node's kernel can prove.

The suite runs inside the test guest (hack/guest: Debian's kernel under qemu,
cgroup v2 only, systemd as PID 1, AppArmor on), started by `make test-guest`
or tests/e2e/test_guest.py. Anywhere else every test skips and says why.

Facts the fixtures rely on:
- The guest's root is the host's root under a tmpfs overlay, so this checkout,
  its venv and the test images (build/bundles/busybox) sit at the same paths,
  and nothing written here reaches the host except through
  $DOCKYARD_GUEST_OUT.
- The suite runs as the systemd unit dockyard-guest-job.service (Delegate=yes);
  test containers' cgroups are made by the runtime under test at
  /sys/fs/cgroup/dockyard-test/<id> (the cgroupfs driver's absolute path), as
  in tests/integration.
- pytest is a child subreaper (bundle.Subreaper), as containerd's shim is.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from guest_env import CGROUP_ROOT, in_guest, remove_cgroup

from bundle import CGROUP_PARENT, SUBREAPER, Bundle, make_bundle, runtime_binary, shared_rootfs


@pytest.fixture(autouse=True)
def _only_in_guest() -> None:
    if not in_guest():
        pytest.skip("runs only inside the test guest (make test-guest boots it)")


@pytest.fixture(scope="session")
def guest_out() -> Path:
    """The directory shared with the host (results written here come back)."""
    return Path(os.environ.get("DOCKYARD_GUEST_OUT", "/nonexistent"))


@pytest.fixture(scope="session")
def runtime() -> Path:
    return runtime_binary()


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_rootfs(tmp_path_factory.mktemp("rootfs-cache"))


@pytest.fixture(scope="session", autouse=True)
def _subreaper() -> Iterator[None]:
    if not in_guest():
        yield
        return
    SUBREAPER.start()
    yield
    SUBREAPER.stop()
    try:
        (CGROUP_ROOT / CGROUP_PARENT).rmdir()
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise


BundleFactory = Callable[..., Bundle]


@pytest.fixture
def new_bundle(tmp_path: Path, rootfs: Path, runtime: Path, request: pytest.FixtureRequest) -> Iterator[BundleFactory]:
    """Make fresh bundles; afterwards each container must be gone, with its cgroup."""
    made: list[Bundle] = []

    def factory(*, writable: bool = False, runtime_path: Path | None = None) -> Bundle:
        b = make_bundle(tmp_path, rootfs, runtime_path or runtime, request.node.name, writable=writable)
        made.append(b)
        return b

    yield factory
    left = []
    for b in made:
        if b.state_root.is_dir() and any(b.state_root.iterdir()):
            left.append(f"container {b.id} still in --root")
            b.invoke("delete", "--force", b.id)
        # An empty path or a systemd slice:prefix:name one names no directory
        # here (and "" would be the root itself): those tests check their units.
        path = b.config["linux"].get("cgroupsPath") or ""
        cgroup = CGROUP_ROOT / path.lstrip("/")
        if path.strip("/") and ":" not in path and cgroup.is_dir():
            left.append(f"cgroup {cgroup}")
            remove_cgroup(cgroup)
    SUBREAPER.reap_adopted()
    assert not left, f"test left resources behind: {left}"


@pytest.fixture
def bundle(new_bundle: BundleFactory) -> Bundle:
    return new_bundle()


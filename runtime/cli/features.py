"""dockyard-runc features: what this runtime and this kernel support, in
runc's features JSON (OCI runtime-spec features.md)."""

from __future__ import annotations

import sys

from .. import cgroups, seccomp
from ..kernel.capabilities import CAPABILITIES, last_cap
from ..kernel.lean import jsonfast, leanos
from ..namespaces import CLONE_FLAGS
from ..rootfs.mountopts import SUPPORTED_OPTIONS
from ..spec import HOOK_KINDS
from .main import SPEC_VERSION, Context

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any


def _kernel_at_least(major: int, minor: int) -> bool:
    release = leanos.uname().release.split("-")[0].split(".")
    return (int(release[0]), int(release[1])) >= (major, minor)


def features() -> dict[str, Any]:
    last = last_cap()
    mode = cgroups.detect()
    apparmor = False
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            apparmor = f.read().strip() == "Y"
    except OSError:
        pass
    idmap = _kernel_at_least(5, 12)
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": list(SUPPORTED_OPTIONS),
        "linux": {
            "namespaces": list(CLONE_FLAGS),
            "capabilities": sorted((n for n, b in CAPABILITIES.items() if b <= last), key=CAPABILITIES.__getitem__),
            "cgroup": {"v1": mode != cgroups.Mode.V2, "v2": mode != cgroups.Mode.V1,
                       "systemd": True, "systemdUser": False, "rdma": False},
            "seccomp": seccomp.features(),
            "apparmor": {"enabled": apparmor},
            "selinux": {"enabled": leanos.path.exists("/sys/fs/selinux/enforce")},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": idmap}},
        },
        "annotations": {"org.opencontainers.runc.version": "dockyard-runc"},
    }


def run(ctx: Context, argv: list[str]) -> int:
    sys.stdout.write(jsonfast.dumps(features(), indent=4) + "\n")
    return 0

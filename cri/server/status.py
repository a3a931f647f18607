"""RuntimeService.Status: RuntimeReady, NetworkReady (from the CNI config dir), handlers.

The runtime is ready once the RPC gets here at all (instrument.py answers
UNAVAILABLE before recovery finishes).  NetworkReady follows the CNI conf
dir, re-read when it changes, so a conflist dropped in later turns the node
ready without a restart.  Each runtime handler is listed ("" is the default)
with its features, read from the runtime's own ``features`` output (OCI
runtime spec 1.1) the first time they are asked for: recursive read-only
mounts when it lists the "rro" mount option (dockyard-runc, and Debian's runc
1.1.5 too), user namespaces when it has idmapped mounts
(``linux.mountExtensions.idmap.enabled``: dockyard-runc; runc 1.1 has none).
A runtime without the command (Debian's crun 1.8.1) is claimed to have
neither.
"""

from __future__ import annotations

import json
import subprocess
from typing import Protocol

from cri_api.v1 import api_pb2

from dockyard.cri.config import Config

RUNTIME_READY = "RuntimeReady"
NETWORK_READY = "NetworkReady"
NETWORK_NOT_READY_REASON = "NetworkPluginNotReady"

FEATURES_TIMEOUT_S = 10.0


def features_from(doc: object) -> tuple[bool, bool]:
    """(recursive_read_only_mounts, user_namespaces) from an OCI runtime's
    ``features`` document (anything malformed counts as absent)."""
    if not isinstance(doc, dict):
        return False, False
    options = doc.get("mountOptions")
    rro = isinstance(options, list) and "rro" in options
    linux = doc.get("linux")
    extensions = linux.get("mountExtensions") if isinstance(linux, dict) else None
    idmap = extensions.get("idmap") if isinstance(extensions, dict) else None
    userns = isinstance(idmap, dict) and idmap.get("enabled") is True
    return rro, userns


_probed: dict[str, tuple[bool, bool]] = {}


def handler_features(binary: str) -> tuple[bool, bool]:
    """Run ``<binary> features`` once per binary and remember the answer."""
    if binary not in _probed:
        from dockyard.cri.shims import find_binary

        try:
            done = subprocess.run([find_binary(binary), "features"], capture_output=True, timeout=FEATURES_TIMEOUT_S,
                                  check=False, stdin=subprocess.DEVNULL)
            doc = json.loads(done.stdout) if done.returncode == 0 else None
        except (OSError, ValueError, subprocess.TimeoutExpired):
            doc = None
        _probed[binary] = features_from(doc)
    return _probed[binary]


class NetworkStatus(Protocol):
    def status(self) -> tuple[bool, str, str]: ...


def network_condition(cni: NetworkStatus | None) -> api_pb2.RuntimeCondition:
    if cni is None:
        return api_pb2.RuntimeCondition(
            type=NETWORK_READY, status=False, reason=NETWORK_NOT_READY_REASON,
            message="Network plugin returns error: no CNI configured",
        )
    ready, reason, message = cni.status()
    return api_pb2.RuntimeCondition(type=NETWORK_READY, status=ready, reason=reason, message=message)


def runtime_handlers(config: Config) -> list[api_pb2.RuntimeHandler]:
    out = []
    names = [""] + list(config.runtimes.handlers)
    for name in names:
        handler = config.runtimes.handlers[config.runtimes.default if name == "" else name]
        rro, userns = handler_features(handler.binary)
        out.append(api_pb2.RuntimeHandler(
            name=name, features=api_pb2.RuntimeHandlerFeatures(recursive_read_only_mounts=rro, user_namespaces=userns),
        ))
    return out


def status_response(
    config: Config, verbose: bool, cni: NetworkStatus | None = None, pod_cidr: str = ""
) -> api_pb2.StatusResponse:
    conditions = [api_pb2.RuntimeCondition(type=RUNTIME_READY, status=True), network_condition(cni)]
    info: dict[str, str] = {}
    if verbose:
        info["config"] = json.dumps(
            {
                "socket": config.socket_path,
                "rootDir": config.root_dir,
                "stateDir": config.state_dir,
                "sandboxImage": config.pause_image,
                "registryConfigPath": config.registry.config_path,
                "cni": {"confDir": config.cni.conf_dir, "binDirs": list(config.cni.bin_dirs)},
                "cgroupParent": config.cgroup_parent,
                "defaultRuntime": config.runtimes.default,
                "runtimes": {n: h.binary for n, h in config.runtimes.handlers.items()},
                "podCIDR": pod_cidr,  # from UpdateRuntimeConfig
            }
        )
    return api_pb2.StatusResponse(
        status=api_pb2.RuntimeStatus(conditions=conditions), info=info, runtime_handlers=runtime_handlers(config),
        # cri/oci/user.py resolves SupplementalGroupsPolicy Merge and Strict
        features=api_pb2.RuntimeFeatures(supplemental_groups_policy=True),
    )

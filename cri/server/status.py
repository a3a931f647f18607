"""RuntimeService.Status: RuntimeReady, NetworkReady (from the CNI config dir), handlers.

The runtime is ready once the RPC gets here at all (instrument.py answers
UNAVAILABLE before recovery finishes).  NetworkReady follows the CNI conf
dir, re-read when it changes, so a conflist dropped in later turns the node
ready without a restart.  Each runtime handler is listed ("" is the default)
with its features: recursive read-only mounts need the runtime to apply
MOUNT_ATTR_RDONLY with AT_RECURSIVE (mount_setattr); dockyard-runc does,
Debian's runc 1.1 does not (it came in runc 1.2) and crun 1.8 is not
claimed.  User namespaces are claimed for dockyard-runc, which joins and
creates them in the order a host-root runtime needs and makes idmapped bind
mounts; Debian's runc 1.1 and crun 1.8 have no idmapped mounts.
"""

from __future__ import annotations

import json
from typing import Protocol

from cri_api.v1 import api_pb2

from dockyard.cri.config import Config

RUNTIME_READY = "RuntimeReady"
NETWORK_READY = "NetworkReady"
NETWORK_NOT_READY_REASON = "NetworkPluginNotReady"

# handler binary's base name -> (recursive_read_only_mounts, user_namespaces)
HANDLER_FEATURES: dict[str, tuple[bool, bool]] = {
    "dockyard-runc": (True, True),
    "runc": (False, False),
    "crun": (False, False),
}


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
        rro, userns = HANDLER_FEATURES.get(handler.binary.rsplit("/", 1)[-1], (False, False))
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

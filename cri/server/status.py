"""RuntimeService.Status: the RuntimeReady and NetworkReady conditions.

The runtime is ready once the RPC gets here at all (instrument.py answers
UNAVAILABLE before recovery finishes).  There is no CNI yet, so the network is
reported not ready with the reason kubelet and containerd use for that state;
the RuntimeService issue replaces ``network_condition`` with a CNI check.
"""

from __future__ import annotations

import json

from cri_api.v1 import api_pb2

from dockyard.cri.config import Config

RUNTIME_READY = "RuntimeReady"
NETWORK_READY = "NetworkReady"
NETWORK_NOT_READY_REASON = "NetworkPluginNotReady"


def network_condition() -> api_pb2.RuntimeCondition:
    return api_pb2.RuntimeCondition(
        type=NETWORK_READY,
        status=False,
        reason=NETWORK_NOT_READY_REASON,
        message="Network plugin returns error: no CNI support in dockyardd yet",
    )


def status_response(config: Config, verbose: bool) -> api_pb2.StatusResponse:
    conditions = [api_pb2.RuntimeCondition(type=RUNTIME_READY, status=True), network_condition()]
    info: dict[str, str] = {}
    if verbose:
        info["config"] = json.dumps(
            {
                "socket": config.socket_path,
                "rootDir": config.root_dir,
                "stateDir": config.state_dir,
                "sandboxImage": config.pause_image,
                "registryConfigPath": config.registry.config_path,
            }
        )
    return api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=conditions), info=info)

"""PodSandboxStatus: state, network, namespaces, and verbose info (JSON).

With ``verbose`` the answer also carries the status of every container of
the pod and the time it was taken (containerd sends them too), taken after
the timestamp, so none looks newer than it says: what kubelet's evented
PLEG used (up to 1.35) to build a pod's status from one call.

Without ``verbose`` neither is set, on purpose.  A kubelet 1.37 with the
EventedPLEG gate calls PodSandboxStatus(verbose=false) and, whenever
``timestamp`` is set, takes the container statuses from this answer but
leaves its list of the active sandbox's containers empty
(kuberuntime_manager.go, GetPodStatus), and since 1.37 decides which init
container runs next from that list alone: it started a completed init
container again and again, and the pod never got past it.  With no
timestamp it asks ContainerStatus per container, as without the gate, and
the pod starts (tests/e2e/test_kubelet.py runs with the gate on and off)."""

from __future__ import annotations

import json

from cri_api.v1 import api_pb2

from ..store.container import ContainerState
from ..store.sandbox import Sandbox, SandboxState
from .container_status import container_status
from .cri_service import CriService, now_ns

CRI_SANDBOX_STATE: dict[SandboxState, api_pb2.PodSandboxState.ValueType] = {
    SandboxState.INIT: api_pb2.SANDBOX_NOTREADY,
    SandboxState.READY: api_pb2.SANDBOX_READY,
    SandboxState.NOTREADY: api_pb2.SANDBOX_NOTREADY,
}


def sandbox_status(cri: CriService, s: Sandbox) -> api_pb2.PodSandboxStatus:
    """The status, kept until one of its inputs changes (built_messages.py:
    copy it into an answer, never change it)."""
    inputs = (s.config_b64, s.state, s.created_at, s.runtime_handler, tuple(s.ips))
    return cri.kept.sandbox_status.get(s.id, inputs, lambda: build_sandbox_status(s))


def build_sandbox_status(s: Sandbox) -> api_pb2.PodSandboxStatus:
    """(pure)"""
    config = s.config
    status = api_pb2.PodSandboxStatus(
        id=s.id, metadata=config.metadata, state=CRI_SANDBOX_STATE[s.state], created_at=s.created_at,
        labels=config.labels, annotations=config.annotations, runtime_handler=s.runtime_handler,
    )
    if s.ips:
        status.network.ip = s.ips[0]
        for ip in s.ips[1:]:
            status.network.additional_ips.append(api_pb2.PodIP(ip=ip))
    status.linux.namespaces.options.CopyFrom(config.linux.security_context.namespace_options)
    return status


async def pod_sandbox_status(cri: CriService, request: api_pb2.PodSandboxStatusRequest) -> api_pb2.PodSandboxStatusResponse:
    s = cri.sandbox(request.pod_sandbox_id)
    resp = api_pb2.PodSandboxStatusResponse(status=sandbox_status(cri, s))
    if request.verbose:
        resp.timestamp = now_ns()
        for c in cri.containers.of_sandbox(s.id):
            if c.state is not ContainerState.CREATING:  # not yet listed either (container_list.py)
                resp.containers_statuses.append(container_status(cri, c))
        update = s.resources_update
        info = {
            "pid": s.pid, "processStatus": "running" if s.pause_exit_code is None else "exited",
            "netNamespacePath": s.netns_path, "image": cri.config.pause_image, "pauseImageId": s.pause_image_id,
            "runtimeHandler": s.handler, "cgroupParent": s.cgroup_parent, "cniResult": s.cni_result,
            "state": s.state.value, "config": json.loads(_config_json(s)),
            "resources": json.loads(_message_json(update)) if update is not None else None,
        }
        resp.info["info"] = json.dumps(info)
    return resp


def _config_json(s: Sandbox) -> str:
    return _message_json(s.config)


def _message_json(message: object) -> str:
    from google.protobuf import json_format  # type: ignore[import-untyped]

    return str(json_format.MessageToJson(message))

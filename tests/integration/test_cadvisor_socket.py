"""dockyardd's cAdvisor socket against a real daemon: the containerd API calls a kubelet's
cAdvisor makes name dockyardd's pods and containers with their CRI labels and their init's pid."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from daemon_fixture import daemon_factory, dockyardd, test_registry  # noqa: F401 (fixtures)
from dockyard.api import cadvisor_containerd as api
from dockyard.api import cadvisor_containerd_pb2 as pb
from google.protobuf import empty_pb2
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

SOCKET = f"/tmp/dy-cadvisor-{secrets.token_hex(4)}.sock"


@pytest.fixture
def pods_extra_config() -> Iterator[dict[str, Any]]:
    yield {"cadvisor": {"socket": SOCKET}}
    assert not os.path.exists(SOCKET), "the daemon left its cAdvisor socket behind"


def _call(channel: grpc.Channel, service: str, method: str, request: Any) -> Any:
    m = api.SERVICES[service][method]
    rpc = channel.unary_unary(api.path(service, method), request_serializer=m.request.SerializeToString,
                              response_deserializer=m.response.FromString)
    # cAdvisor names the namespace in every call, as containerd's clients do.
    return rpc(request, timeout=10, metadata=(("containerd-namespace", api.NAMESPACE),))


def test_cadvisor_sees_pods_and_containers_as_containerds(pods: Pods) -> None:
    """Containers/Get gives the kubelet's labels (and kind sandbox/container), the image and the
    OCI spec; Tasks/Get the running init's pid; an unknown id is NOT_FOUND; Version answers."""
    pods.daemon.pull("busybox")
    # the labels kubelet puts on every pod and container (cAdvisor keys its stats by them)
    kubelet_labels = {"io.kubernetes.pod.name": "cadv", "io.kubernetes.pod.namespace": "test"}
    pod, pod_cfg = pods.run_pod("cadv", labels=kubelet_labels)
    cfg = container_config("c", ["sleep", "1000"], labels={**kubelet_labels, "io.kubernetes.container.name": "c"})
    cid = pods.crictl("create", pod, pods.write("c", cfg), pod_cfg)
    pods.crictl("start", cid)
    with grpc.insecure_channel(f"unix://{SOCKET}") as channel:
        containers, tasks = "containerd.services.containers.v1.Containers", "containerd.services.tasks.v1.Tasks"
        sandbox = _call(channel, containers, "Get", pb.GetContainerRequest(id=pod)).container
        assert sandbox.labels[api.KIND_LABEL] == "sandbox"
        assert sandbox.labels["io.kubernetes.pod.name"] == "cadv" and sandbox.labels["io.kubernetes.pod.namespace"] == "test"
        container = _call(channel, containers, "Get", pb.GetContainerRequest(id=cid)).container
        assert container.labels[api.KIND_LABEL] == "container" and container.sandbox == pod
        assert container.labels["io.kubernetes.container.name"] == "c"
        assert json.loads(container.spec.value)["process"]["args"] == ["sleep", "1000"]
        for object_id in (pod, cid):
            process = _call(channel, tasks, "Get", pb.GetTaskRequest(container_id=object_id)).process
            assert process.status == pb.RUNNING and process.pid > 0
            assert Path(f"/proc/{process.pid}/net/dev").exists()  # what cAdvisor reads for a pod's network
        for unknown in ("0" * 64, cid[:12]):
            with pytest.raises(grpc.RpcError) as err:
                _call(channel, containers, "Get", pb.GetContainerRequest(id=unknown))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        version = _call(channel, "containerd.services.version.v1.Version", "Version", empty_pb2.Empty())
        assert version.version

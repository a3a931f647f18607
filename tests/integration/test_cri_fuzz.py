"""Hostile requests to every CRI RPC (property-based, with Hypothesis).

The rule each example checks: whatever a caller sends, dockyardd answers
with a code that says whose fault it was (INVALID_ARGUMENT, NOT_FOUND,
FAILED_PRECONDITION, ALREADY_EXISTS, ... or OK), never INTERNAL or UNKNOWN,
and with a short message (values echoed in errors are cut, so one request
cannot put a megabyte into a status or a log line).  After each RPC's run,
the daemon still answers, its log did not balloon, and once every pod is
removed nothing is left (the ``pods`` fixture's leak check).

Requests are random messages built from the CRI descriptors, and valid
requests (a running container's id, a pod config that runs) with a few
fields made hostile, which is what reaches deep into the daemon
(tests/integration/cri_fuzz.py).  The examples are derandomized so that
``make test`` is repeatable; ``make fuzz`` runs more of them with fresh
randomness (DOCKYARD_FUZZ_EXAMPLES, DOCKYARD_FUZZ_RANDOM=1).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import cri_fuzz
import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc
from daemon_fixture import REGISTRY, daemon_factory, test_registry  # noqa: F401 (fixtures)
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_service_fixture import Pods, container_config, pod_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

EXAMPLES = int(os.environ.get("DOCKYARD_FUZZ_EXAMPLES", "60"))
DERANDOMIZE = os.environ.get("DOCKYARD_FUZZ_RANDOM", "") != "1"
# Codes that blame the daemon, not the caller.
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
MAX_DETAILS = 2000
# The daemon's log may grow by this much per example at most (a status
# message and a log line, each cut to their limits).
LOG_BUDGET_PER_EXAMPLE = 16 * 1024
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
CALL_TIMEOUT_S = 60.0

RUNTIME = api_pb2.DESCRIPTOR.services_by_name["RuntimeService"]
IMAGES = api_pb2.DESCRIPTOR.services_by_name["ImageService"]
STREAMING = {"GetContainerEvents"}  # server-streaming: opened, read briefly, cancelled


class Target:
    """A running pod with one running container, for requests that must name live objects."""

    def __init__(self, pods: Pods) -> None:
        pods.daemon.pull("busybox")
        self.pod_config = json_format.ParseDict(pod_config("fuzz", pods.logs / "fuzz"), api_pb2.PodSandboxConfig())
        self.ctr_config = json_format.ParseDict(container_config("sleeper", SLEEPER), api_pb2.ContainerConfig())
        with pods.daemon.channel() as ch:
            stub = api_pb2_grpc.RuntimeServiceStub(ch)
            self.pod = stub.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=self.pod_config)).pod_sandbox_id
            self.ctr = stub.CreateContainer(api_pb2.CreateContainerRequest(
                pod_sandbox_id=self.pod, config=self.ctr_config, sandbox_config=self.pod_config)).container_id
            stub.StartContainer(api_pb2.StartContainerRequest(container_id=self.ctr))

    def valid(self, rpc: str) -> Message | None:
        """A request for ``rpc`` that succeeds on the target (None: only random ones)."""
        pod, ctr = self.pod, self.ctr
        other = api_pb2.PodSandboxConfig()
        other.CopyFrom(self.pod_config)
        other.metadata.name = "fuzz-other"
        other.metadata.uid = "uid-fuzz-other"
        requests: dict[str, Callable[[], Message]] = {
            "RunPodSandbox": lambda: api_pb2.RunPodSandboxRequest(config=other),
            "PodSandboxStatus": lambda: api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True),
            "StopPodSandbox": lambda: api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod),
            "RemovePodSandbox": lambda: api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod),
            "ListPodSandbox": lambda: api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(id=pod)),
            "CreateContainer": lambda: api_pb2.CreateContainerRequest(
                pod_sandbox_id=pod, config=self._renamed(), sandbox_config=self.pod_config),
            "StartContainer": lambda: api_pb2.StartContainerRequest(container_id=ctr),
            "StopContainer": lambda: api_pb2.StopContainerRequest(container_id=ctr, timeout=5),
            "RemoveContainer": lambda: api_pb2.RemoveContainerRequest(container_id=ctr),
            "ListContainers": lambda: api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(id=ctr)),
            "ContainerStatus": lambda: api_pb2.ContainerStatusRequest(container_id=ctr, verbose=True),
            "UpdateContainerResources": lambda: api_pb2.UpdateContainerResourcesRequest(
                container_id=ctr, linux=api_pb2.LinuxContainerResources(cpu_shares=512, memory_limit_in_bytes=64 << 20)),
            "ReopenContainerLog": lambda: api_pb2.ReopenContainerLogRequest(container_id=ctr),
            "ExecSync": lambda: api_pb2.ExecSyncRequest(container_id=ctr, cmd=["echo", "hi"], timeout=10),
            "Exec": lambda: api_pb2.ExecRequest(container_id=ctr, cmd=["true"], stdout=True),
            "Attach": lambda: api_pb2.AttachRequest(container_id=ctr, stdout=True),
            "PortForward": lambda: api_pb2.PortForwardRequest(pod_sandbox_id=pod, port=[80]),
            "ContainerStats": lambda: api_pb2.ContainerStatsRequest(container_id=ctr),
            "ListContainerStats": lambda: api_pb2.ListContainerStatsRequest(),
            "PodSandboxStats": lambda: api_pb2.PodSandboxStatsRequest(pod_sandbox_id=pod),
            "ListPodSandboxStats": lambda: api_pb2.ListPodSandboxStatsRequest(),
            "UpdateRuntimeConfig": lambda: api_pb2.UpdateRuntimeConfigRequest(
                runtime_config=api_pb2.RuntimeConfig(network_config=api_pb2.NetworkConfig(pod_cidr="10.88.0.0/16"))),
            "Status": lambda: api_pb2.StatusRequest(verbose=True),
            "UpdatePodSandboxResources": lambda: api_pb2.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod),
            "ImageStatus": lambda: api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image="busybox"), verbose=True),
            "PullImage": lambda: api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image="busybox")),
            "ListImages": lambda: api_pb2.ListImagesRequest(),
        }
        make = requests.get(rpc)
        return make() if make is not None else None

    def _renamed(self) -> api_pb2.ContainerConfig:
        cfg = api_pb2.ContainerConfig()
        cfg.CopyFrom(self.ctr_config)
        cfg.metadata.name = "fuzzed"
        return cfg


def rpcs() -> list[tuple[str, str]]:
    return [(service.name, method.name) for service in (RUNTIME, IMAGES) for method in service.methods]


def call(pods: Pods, service: str, rpc: str, request: Message) -> tuple[grpc.StatusCode, str]:
    options = [("grpc.max_receive_message_length", 16 << 20), ("grpc.max_send_message_length", 16 << 20)]
    with grpc.insecure_channel(f"unix://{pods.daemon.socket}", options=options) as ch:
        stub: Any = (api_pb2_grpc.RuntimeServiceStub if service == "RuntimeService" else api_pb2_grpc.ImageServiceStub)(ch)
        try:
            if rpc in STREAMING:
                stream = getattr(stub, rpc)(request, timeout=0.5)
                try:
                    for _ in stream:
                        pass
                except grpc.RpcError as err:
                    if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        return grpc.StatusCode.OK, ""
                    raise
            else:
                getattr(stub, rpc)(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as err:
            return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def cleanup(pods: Pods, keep_pod: str) -> None:
    """Remove what the examples made (pods and containers other than the target's)."""
    with pods.daemon.channel() as ch:
        stub = api_pb2_grpc.RuntimeServiceStub(ch)
        for c in stub.ListContainers(api_pb2.ListContainersRequest()).containers:
            if c.pod_sandbox_id != keep_pod:
                stub.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=c.id))
        for s in stub.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
            if s.id != keep_pod:
                stub.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=s.id))


@pytest.mark.parametrize(("service", "rpc"), rpcs(), ids=[f"{s}.{m}" for s, m in rpcs()])
def test_hostile_requests(pods: Pods, service: str, rpc: str) -> None:
    descriptor = (RUNTIME if service == "RuntimeService" else IMAGES).methods_by_name[rpc].input_type
    cls = getattr(api_pb2, descriptor.name)
    target = Target(pods)
    places = cri_fuzz.Places(str(pods.tmp), pods.cgroup_parent, REGISTRY)
    strategies = [cri_fuzz.random_message(descriptor, cls, places)]
    valid = target.valid(rpc)
    if valid is not None:
        strategies.append(cri_fuzz.mutated(valid, places))
    log_before = pods.daemon.log.stat().st_size
    failures: list[str] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=DERANDOMIZE, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(strategies))
    def example(request: Message) -> None:
        code, details = call(pods, service, rpc, request)
        if code in FORBIDDEN or len(details) > MAX_DETAILS:
            failures.append(f"{code.name}: {details[:300]!r} ({len(details)} chars) for {str(request)[:300]!r}")

    example()
    assert not failures, f"{len(failures)} bad answers, e.g.:\n" + "\n".join(failures[:10])
    assert call(pods, "RuntimeService", "Version", api_pb2.VersionRequest()) == (grpc.StatusCode.OK, "")
    grown = pods.daemon.log.stat().st_size - log_before
    assert grown < LOG_BUDGET_PER_EXAMPLE * EXAMPLES * len(strategies), f"daemon log grew {grown} bytes"
    cleanup(pods, target.pod)

"""CRI messages that several unit tests build their cases from."""

from __future__ import annotations

from typing import Any

from cri_api.v1 import api_pb2


def res(**fields: Any) -> api_pb2.LinuxContainerResources:
    """LinuxContainerResources from keywords; hugepage_limits as (page size, limit) pairs."""
    hugepages = fields.pop("hugepage_limits", [])
    unified = fields.pop("unified", {})
    r = api_pb2.LinuxContainerResources(**fields)
    r.hugepage_limits.extend(api_pb2.HugepageLimit(page_size=s, limit=n) for s, n in hugepages)
    r.unified.update(unified)
    return r


def web_pod(attempt: int, **security: Any) -> api_pb2.PodSandboxConfig:
    """The pod "web" (uid-1 in default) the spec tests start from: pod network and
    IPC, a pid namespace per container, cgroup parent /dockyard; ``security`` adds
    to its LinuxSandboxSecurityContext."""
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="web", uid="uid-1", namespace="default", attempt=attempt),
        hostname="web-pod",
        log_directory="/var/log/pods/default_web_uid-1",
        linux=api_pb2.LinuxPodSandboxConfig(
            cgroup_parent="/dockyard",
            security_context=api_pb2.LinuxSandboxSecurityContext(
                namespace_options=api_pb2.NamespaceOption(network=api_pb2.POD, pid=api_pb2.CONTAINER, ipc=api_pb2.POD),
                **security)),
    )

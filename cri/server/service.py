"""The two CRI gRPC services, every method behind instrument.Instrument.

The method lists come from the CRI descriptor itself, so a method this
daemon does not implement still answers -- with UNIMPLEMENTED naming it --
instead of grpc's generic "Method not implemented!".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from cri_api.v1 import api_pb2, api_pb2_grpc

from dockyard.cri import errors
from dockyard.cri.config import Config
from dockyard.cri.server import image_list, image_pull, image_remove, image_status, imagefs_info, status, version
from dockyard.cri.server.images import Images
from dockyard.cri.server.instrument import Handler, Instrument, Readiness
from dockyard.cri.server.cri_service import CriService

if TYPE_CHECKING:
    from dockyard.cri.streaming.server import StreamServer

RUNTIME_SERVICE = "RuntimeService"
IMAGE_SERVICE = "ImageService"


def method_names(service: str) -> list[str]:
    return [m.name for m in api_pb2.DESCRIPTOR.services_by_name[service].methods]


def _unimplemented(service: str, method: str) -> Handler:
    async def handler(request: Any) -> Any:
        raise errors.Unimplemented(
            f"{service}.{method} is not implemented by dockyardd"
        )

    return handler


class _Servicer:
    """A plain object carrying one instrumented coroutine per CRI method name."""


def build_servicer(service: str, handlers: Mapping[str, Handler], instrument: Instrument) -> _Servicer:
    unknown = set(handlers) - set(method_names(service))
    if unknown:
        raise ValueError(f"{service} has no methods {sorted(unknown)}")
    servicer = _Servicer()
    for name in method_names(service):
        handler = handlers.get(name) or _unimplemented(service, name)
        setattr(servicer, name, instrument.wrap(name, handler))
    return servicer


def runtime_handlers(config: Config, cri: CriService | None = None, streams: StreamServer | None = None) -> dict[str, Handler]:
    """Every unary RuntimeService RPC; without ``cri`` only Version and Status; Exec, Attach
    and PortForward when a streaming server is given."""

    async def status_rpc(request: api_pb2.StatusRequest) -> api_pb2.StatusResponse:
        if cri is None:
            return status.status_response(config, request.verbose)
        await cri.cni.probe_plugins()  # a CNI 1.1 list's STATUS verb, for NetworkReady
        return status.status_response(config, request.verbose, cri.cni, cri.pod_cidr)

    handlers: dict[str, Handler] = {"Version": version.version_rpc, "Status": status_rpc}
    if cri is None:
        return handlers
    from dockyard.cri.server import (
        container_checkpoint, container_create, container_list, container_log_reopen, container_remove, container_start,
        container_stats, container_stats_list, container_status, container_stop, container_update_resources,
        exec_sync, metric_descriptors, runtime_config, runtime_config_update, sandbox_list, sandbox_metrics_list,
        sandbox_remove, sandbox_run, sandbox_stats, sandbox_stats_list, sandbox_status, sandbox_stop,
        sandbox_update_resources,
    )

    rpcs: dict[str, Any] = {
        "RunPodSandbox": sandbox_run.run_pod_sandbox,
        "StopPodSandbox": sandbox_stop.stop_pod_sandbox,
        "RemovePodSandbox": sandbox_remove.remove_pod_sandbox,
        "PodSandboxStatus": sandbox_status.pod_sandbox_status,
        "ListPodSandbox": sandbox_list.list_pod_sandbox,
        "CreateContainer": container_create.create_container,
        "StartContainer": container_start.start_container,
        "StopContainer": container_stop.stop_container,
        "RemoveContainer": container_remove.remove_container,
        "ContainerStatus": container_status.container_status_rpc,
        "ListContainers": container_list.list_containers,
        "ExecSync": exec_sync.exec_sync,
        "ContainerStats": container_stats.container_stats,
        "ListContainerStats": container_stats_list.list_container_stats,
        "PodSandboxStats": sandbox_stats.pod_sandbox_stats,
        "ListPodSandboxStats": sandbox_stats_list.list_pod_sandbox_stats,
        "UpdateContainerResources": container_update_resources.update_container_resources,
        "UpdatePodSandboxResources": sandbox_update_resources.update_pod_sandbox_resources,
        "CheckpointContainer": container_checkpoint.checkpoint_container,
        "ReopenContainerLog": container_log_reopen.reopen_container_log,
        "RuntimeConfig": runtime_config.runtime_config,
        "UpdateRuntimeConfig": runtime_config_update.update_runtime_config,
        "ListMetricDescriptors": metric_descriptors.list_metric_descriptors,
        "ListPodSandboxMetrics": sandbox_metrics_list.list_pod_sandbox_metrics,
    }
    for name, rpc in rpcs.items():
        handlers[name] = functools.partial(rpc, cri)
    if streams is not None:
        from dockyard.cri.server import container_attach, container_exec, sandbox_portforward

        handlers["Exec"] = functools.partial(container_exec.exec_rpc, cri, streams)
        handlers["Attach"] = functools.partial(container_attach.attach_rpc, cri, streams)
        handlers["PortForward"] = functools.partial(sandbox_portforward.port_forward_rpc, cri, streams)
    return handlers


def runtime_streams(cri: CriService, readiness: Readiness) -> dict[str, Any]:
    """Server-streaming RuntimeService RPCs (they gate on readiness themselves)."""
    from dockyard.cri.server import container_events

    return {"GetContainerEvents": container_events.container_events_handler(cri, lambda: readiness.ready)}


def image_handlers(images: Images, convert_auth: image_pull.AuthConverter, pinned_refs: frozenset[str]) -> dict[str, Handler]:
    return {
        "PullImage": functools.partial(image_pull.pull_image, images, convert_auth),
        "ListImages": functools.partial(image_list.list_images, images, pinned_refs),
        "ImageStatus": functools.partial(image_status.image_status, images, pinned_refs),
        "RemoveImage": functools.partial(image_remove.remove_image, images),
        "ImageFsInfo": functools.partial(imagefs_info.imagefs_info, images),
    }


class HandlerSink(Protocol):
    """A server the generated registration code can add handlers to: grpcio's,
    or the CRI socket's own (cri/grpc_server)."""

    def add_generic_rpc_handlers(self, handlers: Any) -> None: ...

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None: ...


def add_services(
    server: HandlerSink,
    instrument: Instrument,
    runtime: Mapping[str, Handler],
    image: Mapping[str, Handler],
    streams: Mapping[str, Any] | None = None,
) -> None:
    runtime_servicer = build_servicer(RUNTIME_SERVICE, runtime, instrument)
    for name, stream in (streams or {}).items():
        setattr(runtime_servicer, name, stream)
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(  # type: ignore[no-untyped-call]
        runtime_servicer, server
    )
    api_pb2_grpc.add_ImageServiceServicer_to_server(  # type: ignore[no-untyped-call]
        build_servicer(IMAGE_SERVICE, image, instrument), server
    )

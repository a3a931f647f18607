"""The two CRI gRPC services, every method behind instrument.Instrument.

The method lists come from the CRI descriptor itself, so a method this
daemon does not implement still answers -- with UNIMPLEMENTED naming it --
instead of grpc's generic "Method not implemented!".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import grpc  # type: ignore[import-untyped]  # grpcio ships no stubs; types-grpcio is not a dependency
from cri_api.v1 import api_pb2, api_pb2_grpc

from dockyard.cri import errors
from dockyard.cri.config import Config
from dockyard.cri.server import image_list, image_pull, image_remove, image_status, imagefs_info, status, version
from dockyard.cri.server.images import Images
from dockyard.cri.server.instrument import Handler, Instrument

RUNTIME_SERVICE = "RuntimeService"
IMAGE_SERVICE = "ImageService"


def method_names(service: str) -> list[str]:
    return [m.name for m in api_pb2.DESCRIPTOR.services_by_name[service].methods]


def _unimplemented(service: str, method: str) -> Handler:
    async def handler(request: Any) -> Any:
        raise errors.Unimplemented(
            f"{service}.{method} is not implemented by dockyardd yet (only Version and Status of the RuntimeService are)"
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


def runtime_handlers(config: Config) -> dict[str, Handler]:
    async def status_rpc(request: api_pb2.StatusRequest) -> api_pb2.StatusResponse:
        return status.status_response(config, request.verbose)

    return {"Version": version.version_rpc, "Status": status_rpc}


def image_handlers(images: Images, convert_auth: image_pull.AuthConverter, pinned_refs: frozenset[str]) -> dict[str, Handler]:
    return {
        "PullImage": functools.partial(image_pull.pull_image, images, convert_auth),
        "ListImages": functools.partial(image_list.list_images, images, pinned_refs),
        "ImageStatus": functools.partial(image_status.image_status, images, pinned_refs),
        "RemoveImage": functools.partial(image_remove.remove_image, images),
        "ImageFsInfo": functools.partial(imagefs_info.imagefs_info, images),
    }


def add_services(
    server: grpc.aio.Server,
    instrument: Instrument,
    runtime: Mapping[str, Handler],
    image: Mapping[str, Handler],
) -> None:
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(  # type: ignore[no-untyped-call]
        build_servicer(RUNTIME_SERVICE, runtime, instrument), server
    )
    api_pb2_grpc.add_ImageServiceServicer_to_server(  # type: ignore[no-untyped-call]
        build_servicer(IMAGE_SERVICE, image, instrument), server
    )

"""RuntimeService.Version: who we are and which CRI we speak."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from cri_api.v1 import api_pb2

RUNTIME_NAME = "dockyard"
RUNTIME_API_VERSION = "v1"
# The kubelet sends "v1alpha2" or "v1" and only reads the answer; version is
# the API version of the CRI "kubelet runtime API", fixed at 0.1.0 upstream.
KUBE_RUNTIME_API_VERSION = "0.1.0"


@functools.cache  # read once: the package metadata is parsed from disk (~0.3 ms a call)
def dockyard_version() -> str:
    try:
        return version("dockyard")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+unknown"


async def version_rpc(request: api_pb2.VersionRequest) -> api_pb2.VersionResponse:
    return api_pb2.VersionResponse(
        version=KUBE_RUNTIME_API_VERSION,
        runtime_name=RUNTIME_NAME,
        runtime_version=dockyard_version(),
        runtime_api_version=RUNTIME_API_VERSION,
    )

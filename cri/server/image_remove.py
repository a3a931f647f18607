"""ImageService.RemoveImage by id, tag or digest.

Removing drops every reference of the image (containerd does the same) and
garbage-collects blobs and snapshots no other image uses.  The CRI makes the
call idempotent: an image that is already gone is success, not NotFound.
"""

from __future__ import annotations

from cri_api.v1 import api_pb2

from dockyard.cri import errors
from dockyard.cri.server.images import Images


async def remove_image(images: Images, request: api_pb2.RemoveImageRequest) -> api_pb2.RemoveImageResponse:
    try:
        await images.remove(request.image.image)
    except errors.NotFound:
        pass  # idempotent by the CRI's definition
    return api_pb2.RemoveImageResponse()

"""ImageService.ListImages, with the CRI image filter (one reference or id)."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from dockyard.cri import errors
from dockyard.cri.server.image_status import is_pinned, to_cri_image
from dockyard.cri.server.images import Images


async def list_images(
    images: Images, pinned_refs: frozenset[str], request: api_pb2.ListImagesRequest
) -> api_pb2.ListImagesResponse:
    wanted = request.filter.image.image if request.HasField("filter") else ""
    if wanted:
        try:
            records = [images.get(wanted)]
        except errors.NotFound:
            records = []
    else:
        records = sorted(images.list(), key=lambda r: r.id)
    return api_pb2.ListImagesResponse(images=[to_cri_image(r, is_pinned(r, pinned_refs)) for r in records])

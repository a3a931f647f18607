"""Admin.RemoveImages: each named image removed with all its names, and collected (RemoveImage's
rules); names that name no image are answered in ``not_found``, the others removed anyway."""

from __future__ import annotations

from dockyard.api import admin_pb2 as pb
from dockyard.cri import errors
from dockyard.cri.server.images import Images


async def remove_images(images: Images, request: pb.RemoveImagesRequest) -> pb.RemoveImagesResponse:
    if not request.images:
        raise errors.InvalidArgument("images: name at least one image to remove")
    removed: list[str] = []
    not_found: list[str] = []
    for name in request.images:
        try:
            record = await images.remove(name)
        except errors.NotFound:
            not_found.append(name)
            continue
        removed.append(record.id)
    return pb.RemoveImagesResponse(removed=removed, not_found=not_found)

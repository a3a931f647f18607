"""Admin.ListImages: every image with its names, size and whether it is pinned (the pause image)."""

from __future__ import annotations

from typing import Any

from dockyard.api import admin_pb2 as pb
from dockyard.cri.server.images import Images


def image_message(record: Any, pinned: frozenset[str]) -> pb.Image:
    return pb.Image(id=record.id, repo_tags=list(record.repo_tags), repo_digests=list(record.repo_digests),
                    size=record.size, pinned=bool(pinned.intersection(record.repo_tags)))


async def list_images(images: Images, pinned: frozenset[str], request: pb.ListImagesRequest) -> pb.ListImagesResponse:
    return pb.ListImagesResponse(images=[image_message(r, pinned) for r in images.list()])

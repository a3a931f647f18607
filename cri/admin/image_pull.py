"""Admin.PullImage: PullImage with a platform of the caller's choice (``--platform``) and
basic credentials (``--user``)."""

from __future__ import annotations

from dockyard.api import admin_pb2 as pb
from dockyard.cri import errors
from dockyard.cri.image.registry.auth import Credentials
from dockyard.cri.server.images import Images

from .image_list import image_message
from .platform_option import parse_platform


async def pull_image(images: Images, pinned: frozenset[str], request: pb.PullImageRequest) -> pb.PullImageResponse:
    if not request.image:
        raise errors.InvalidArgument("image: empty image reference")
    if request.password and not request.username:
        raise errors.InvalidArgument("username: a password needs a user name")
    platform = parse_platform(request.platform, "platform")
    auth = Credentials(request.username, request.password) if request.username else None
    record = await images.pull(request.image, auth, platform)
    return pb.PullImageResponse(image=image_message(record, pinned))

"""ImageService.PullImage: the answer's image_ref is the image id (config digest).

The CRI AuthConfig is turned into the puller's credentials here, at the
boundary; neither it nor anything derived from it is logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cri_api.v1 import api_pb2

from dockyard.cri import errors
from dockyard.cri.server.images import Images

AuthConverter = Callable[[api_pb2.AuthConfig], Any]


async def pull_image(
    images: Images, convert_auth: AuthConverter, request: api_pb2.PullImageRequest
) -> api_pb2.PullImageResponse:
    ref = request.image.image
    if not ref:
        raise errors.InvalidArgument("PullImage: image reference is empty")
    auth = convert_auth(request.auth) if request.HasField("auth") else None
    record = await images.pull(ref, auth)
    return api_pb2.PullImageResponse(image_ref=record.id)

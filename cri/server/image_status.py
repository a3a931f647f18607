"""ImageService.ImageStatus, and the record -> CRI Image conversion ListImages shares.

A missing image is not an error here: the CRI says ImageStatus answers with
an empty ``image`` so kubelet can decide to pull.  ``verbose`` adds an
``info`` entry holding JSON with the image config and chain, like
containerd's ``info`` key.
"""

from __future__ import annotations

import json
from typing import Any

from cri_api.v1 import api_pb2

from dockyard.cri import errors
from dockyard.cri.server.images import Images


def user_of(user: str) -> tuple[int | None, str]:
    """Config.User "uid[:gid]" or "name[:group]" -> (uid, "") or (None, name)."""
    name = user.split(":", 1)[0]
    if not name:
        return None, ""
    if name.isdigit():
        return int(name), ""
    return None, name


def to_cri_image(record: Any, pinned: bool) -> api_pb2.Image:
    uid, username = user_of(getattr(record, "user", "") or "")
    image = api_pb2.Image(
        id=record.id,
        repo_tags=list(record.repo_tags),
        repo_digests=list(record.repo_digests),
        size=int(record.size),
        username=username,
        spec=api_pb2.ImageSpec(image=record.id),
        pinned=pinned,
    )
    if uid is not None:
        image.uid.value = uid
    return image


def verbose_info(record: Any, config: dict[str, Any]) -> dict[str, str]:
    chain_ids = list(getattr(record, "chain_ids", ()) or ())
    info = {
        "imageSpec": config,
        "chainID": chain_ids[-1] if chain_ids else "",
        "chainIDs": chain_ids,
        "repoTags": list(record.repo_tags),
        "repoDigests": list(record.repo_digests),
        "size": int(record.size),
    }
    return {"info": json.dumps(info, sort_keys=True)}


async def image_status(
    images: Images, pinned_refs: frozenset[str], request: api_pb2.ImageStatusRequest
) -> api_pb2.ImageStatusResponse:
    try:
        record = images.get(request.image.image)
    except errors.NotFound:
        return api_pb2.ImageStatusResponse()
    image = to_cri_image(record, is_pinned(record, pinned_refs))
    info = verbose_info(record, images.config(record)) if request.verbose else {}
    return api_pb2.ImageStatusResponse(image=image, info=info)


def is_pinned(record: Any, pinned_refs: frozenset[str]) -> bool:
    """The sandbox image is pinned: kubelet's image GC must not remove it."""
    return bool(pinned_refs.intersection(record.repo_tags))

"""ImageService.ImageFsInfo: bytes and inodes used by images (content + snapshots).

The mountpoint is the snapshotter's root, the directory kubelet's eviction
manager should watch, as containerd reports its snapshotter root.
"""

from __future__ import annotations

import asyncio
import time

from cri_api.v1 import api_pb2

from dockyard.cri.server.images import Images


async def imagefs_info(images: Images, request: api_pb2.ImageFsInfoRequest) -> api_pb2.ImageFsInfoResponse:
    used_bytes, inodes = await asyncio.to_thread(images.usage)
    usage = api_pb2.FilesystemUsage(
        timestamp=time.time_ns(),
        fs_id=api_pb2.FilesystemIdentifier(mountpoint=images.snapshotter.root),
        used_bytes=api_pb2.UInt64Value(value=used_bytes),
        inodes_used=api_pb2.UInt64Value(value=inodes),
    )
    return api_pb2.ImageFsInfoResponse(image_filesystems=[usage])

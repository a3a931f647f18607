"""Admin.Info: the daemon's version, where it keeps things, its runtimes, the network's
readiness and the image filesystem's use (ImageFsInfo's numbers)."""

from __future__ import annotations

import asyncio

from dockyard.api import admin_pb2 as pb
from dockyard.cri.image.platform import Platform
from dockyard.cri.server.cri_service import CriService
from dockyard.cri.server.images import Images
from dockyard.cri.server.version import dockyard_version


async def info(cri: CriService, images: Images, request: pb.InfoRequest) -> pb.InfoResponse:
    config = cri.config
    used, inodes = await asyncio.to_thread(images.usage)
    await cri.cni.probe_plugins()
    ready, _, message = cri.cni.status()
    return pb.InfoResponse(
        version=dockyard_version(), cri_socket=config.socket_path, admin_socket=config.admin_socket_path,
        root_dir=config.root_dir, state_dir=config.state_dir, default_runtime=config.runtimes.default,
        runtime_handlers=sorted(config.runtimes.handlers), network_ready=ready, network_message=message,
        image_fs_used_bytes=used, image_fs_inodes_used=inodes, image_fs_mountpoint=images.snapshotter.root,
        images=len(images.list()), pods=len(cri.sandboxes.list()), containers=len(cri.containers.list()),
        platform=Platform.host().string(),
    )

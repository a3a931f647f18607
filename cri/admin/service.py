"""The admin service: every method of api/admin.proto behind the instrument wrapper.

Its metrics and log lines name methods ``Admin/<Method>``, apart from the
CRI's.  It is served by a server of its own on the admin socket
(daemon.py), so neither socket answers the other's protocol.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from dockyard.api import admin
from dockyard.cri.server.cri_service import CriService
from dockyard.cri.server.images import Images
from dockyard.cri.server.instrument import Instrument

from . import (
    container_list,
    image_export,
    image_import,
    image_list,
    image_pull,
    image_remove,
    info,
    pod_list,
)


def admin_handler(instrument: Instrument, images: Images, cri: CriService, pinned: frozenset[str]) -> Any:
    """The grpc generic handler of the admin service."""
    unary: dict[str, Callable[[Any], Any]] = {
        "ImportImages": functools.partial(image_import.import_images, images),
        "ListImages": functools.partial(image_list.list_images, images, pinned),
        "RemoveImages": functools.partial(image_remove.remove_images, images),
        "PullImage": functools.partial(image_pull.pull_image, images, pinned),
        "ListContainers": functools.partial(container_list.list_containers, cri),
        "ListPods": functools.partial(pod_list.list_pods, cri),
        "Info": functools.partial(info.info, cri, images),
    }
    handlers: dict[str, Callable[..., Any]] = {name: instrument.wrap(f"Admin/{name}", h) for name, h in unary.items()}
    handlers["ExportImages"] = instrument.wrap_stream(
        "Admin/ExportImages", functools.partial(image_export.export_images, images))
    return admin.generic_handler(handlers)

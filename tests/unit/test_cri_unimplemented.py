"""A CRI method without a handler answers Unimplemented naming it (cri/server/service.py)."""

import asyncio

import pytest

from dockyard.cri import errors
from dockyard.cri.server import service


def test_a_method_without_handler_is_unimplemented_by_name() -> None:
    handler = service._unimplemented("RuntimeService", "CheckpointContainer")
    with pytest.raises(errors.Unimplemented, match="RuntimeService.CheckpointContainer"):
        asyncio.run(handler(object()))

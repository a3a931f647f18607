"""The environment tests/conftest.py sets up for the whole suite."""

import os


def test_grpc_fork_handlers_are_off() -> None:
    """gRPC's fork handlers can hang a test's fork() for good while a channel
    is busy in another thread (tests/conftest.py says when it happened)."""
    assert os.environ.get("GRPC_ENABLE_FORK_SUPPORT") == "0"

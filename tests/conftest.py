"""Suite-wide collection rules."""

from __future__ import annotations

import os

import pytest

# Before anything imports grpc: gRPC's fork support installs pthread_atfork
# handlers that wait for gRPC's own threads, and a test that starts a
# subprocess from one thread while a channel or server is busy in another
# then hangs inside fork() for good (seen: the stream server's exec in
# test_streaming_server.py, stuck in __run_prefork_handlers for 20 minutes).
# Tests fork only to exec, as dockyardd does (cri/daemon.py sets the same).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked `root` mount, unshare and write cgroups for real; as a normal
    # user they could only fail for reasons that say nothing about the code.
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates namespaces, mounts and cgroups")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


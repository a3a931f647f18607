"""The environment grpc's C core reads when it starts, set before the daemon
imports grpc.  An operator's own value of either variable is kept.

GRPC_ENABLE_FORK_SUPPORT=0 (correctness): grpc's fork handlers (on by
default) run in children forked while its threads are busy and can leave such
a child stuck or dead; the daemon forks only children that never touch grpc
(netns pinning, net stats), so they go.

GRPC_EXPERIMENTS (speed trick): grpcio serves the admin and cAdvisor
sockets (the CRI socket has its own server since, cri/grpc_server; the
figures below are from when grpcio served it too).  grpcio 1.85 serves
sockets through its EventEngine by default, and under grpc.aio each event then crosses an
EventEngine thread and the completion-queue poller before the event loop
sees it.  Turning off the EventEngine listener, client and callback
completion queue puts the server back on iomgr's epoll poller.

Measured on this VM, 2026-12-07: daemon CPU per call from /proc, one pod,
2000 sequential calls from a Go gRPC client (as kubelet's) after 200
warm-up calls.

    call                 EventEngine   iomgr    containerd 1.6
    ContainerStatus      435 us        360 us   105 us
    PodSandboxStatus     430 us        315 us   95 us
    ListContainers       410 us        310 us   85 us

Repeated runs of the same build move by about 25 us.

A bare grpc.aio server answering a constant ContainerStatus costs 356 us
against 255 us; grpcio's sync server costs about the same as its aio one.
Turning off only the listener, or only the callback queue, or adding the
other optional experiments changed nothing beyond that noise.
An experiment grpc no longer has is reported on stderr ("Unknown
experiment"), and tests/unit/test_grpc_core_env.py fails on that line, so an
upgrade that drops one is noticed rather than silently slower.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

FORK_SUPPORT = "0"
EXPERIMENTS = "-event_engine_listener,-event_engine_client,-event_engine_callback_cq"


def apply(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set the defaults in ``environ``; call before the first ``import grpc``."""
    environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", FORK_SUPPORT)
    environ.setdefault("GRPC_EXPERIMENTS", EXPERIMENTS)

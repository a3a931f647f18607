"""The environment grpc's C core reads when it starts, set before the daemon
imports grpc.  An operator's own value of either variable is kept.

GRPC_ENABLE_FORK_SUPPORT=0 (correctness): grpc's fork handlers (on by
default) run in children forked while its threads are busy and can leave such
a child stuck or dead; the daemon forks only children that never touch grpc
(netns pinning, net stats), so they go.

GRPC_EXPERIMENTS (speed trick): grpcio 1.85 serves sockets through its
EventEngine by default.  Under grpc.aio every event then crosses three
threads (an EventEngine worker, the completion-queue poller, the event
loop) before a handler runs.  Turning off the EventEngine listener, client
and callback completion queue puts the server back on the iomgr epoll
poller, which the aio poller thread drives itself.

Measured on this VM, 2026-12-07, daemon CPU per call from /proc, one pod,
2000 sequential calls after 200 warm-up calls, two runs each:

    call                 EventEngine   iomgr    containerd 1.6
    ContainerStatus      510-530 us    345-400  160 us
    PodSandboxStatus     475-497 us    345-360  147 us
    ListContainers       490-515 us    340-365  137 us

Turning off only the listener, or the callback queue, or adding the other
optional experiments changed nothing beyond the noise (about 20 us).  The
names are pinned by tests/unit/test_grpc_core_env.py: grpc logs
"not found to force" for an experiment it no longer has, and the test fails
on that line, so an upgrade that drops one is noticed rather than silently
slower.
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

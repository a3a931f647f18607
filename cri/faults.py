"""Fault injection: the daemon kills itself at a named point of an RPC.

The restart tests (tests/integration/test_daemon_kill.py) must kill the
daemon at an exact step of a call, not at a moment picked with a timer:
they start it with ``DOCKYARD_FAULT=<point>`` in its environment, and the
first time the call reaches ``point("<point>")`` the daemon SIGKILLs
itself, as an OOM kill or a power cut would, with no cleanup and no answer.
Nothing else sets that variable; unset, ``point`` is one lookup in an empty
set.  A point's name is ``<RPC>/<step>``; ``POINTS`` lists every one, so a
test can walk them all and a misspelled name is refused at start.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("dockyard.cri.faults")

ENV = "DOCKYARD_FAULT"

POINTS = frozenset({
    "RunPodSandbox/recorded",        # the INIT record is on disk
    "RunPodSandbox/netns",           # the netns is pinned, CNI ADD under way
    "RunPodSandbox/rootfs",          # the pause rootfs is mounted
    "RunPodSandbox/pause-started",   # the shim runs the pause container; record not READY yet
    "RunPodSandbox/network",         # CNI ADD done; record not READY yet
    "RunPodSandbox/ready",           # READY on disk; the answer not sent
    "CreateContainer/recorded",      # the CREATING record is on disk
    "CreateContainer/mounted",       # the rootfs is mounted
    "CreateContainer/created",       # CREATED on disk; the answer not sent
    "StartContainer/starting",       # about to ask the shim to create + start
    "StartContainer/started",        # the shim runs it; the record still says CREATED
    "StartContainer/saved",          # RUNNING saved (a new task's save may be in flight); the answer not sent
    "StopContainer/signalled",       # the stop signal was sent
    "StopContainer/stopped",         # the exit is recorded; the answer not sent
    "RemoveContainer/deleted",       # the shim has forgotten it; rootfs still mounted
    "RemoveContainer/released",      # rootfs, snapshot and bundle gone; the record still there
    "StopPodSandbox/containers-stopped",
    "StopPodSandbox/pause-stopped",
    "StopPodSandbox/network-down",   # CNI DEL done; the record still READY
    "RemovePodSandbox/containers-removed",
    "RemovePodSandbox/shim-gone",    # the shim is shut down; files, netns, cgroup still there
    "RemovePodSandbox/released",     # everything gone but the record
    "PullImage/downloaded",          # every blob committed to the content store; nothing unpacked
    "PullImage/unpacked-a-layer",    # one layer's snapshot committed; no image record
    "RemoveImage/record-removed",    # the record is gone; its blobs and snapshots not collected
    "ImportImages/blobs-written",    # every archive file in the content store; nothing unpacked or recorded
    "ImportImages/unpacked-a-layer", # one layer's snapshot committed; no image record
    "ImportImages/recorded",         # every image of the archive recorded; the answer not sent
    "CheckpointContainer/dumping",   # the scratch dir is made; the shim not yet asked to dump
})


def _armed() -> frozenset[str]:
    names = frozenset(n for n in os.environ.get(ENV, "").split(",") if n)
    unknown = names - POINTS
    if unknown:
        raise SystemExit(f"{ENV}: unknown fault points {sorted(unknown)} (known: {sorted(POINTS)})")
    return names


_ARMED = _armed()


def point(name: str) -> None:
    """Die here, now, if the tests armed ``name``."""
    if name in _ARMED:
        log.warning("fault point %s reached: killing the daemon (%s)", name, ENV)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)

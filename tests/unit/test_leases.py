"""Leases (cri/image/leases.py): what a task holds is found through its context,
in the tasks and threads it starts too, and is released when its block ends."""

from __future__ import annotations

import asyncio

from dockyard.cri.image.leases import Leases


def test_hold_outside_a_lease_does_nothing() -> None:
    leases = Leases()
    leases.hold("sha256:x")
    with leases.lock:
        assert leases.held() == set()


def test_a_lease_reaches_child_tasks_and_threads_and_ends_with_its_block() -> None:
    leases = Leases()
    seen: list[set[str]] = []

    async def in_child(name: str) -> None:
        leases.hold(name)

    async def pull(name: str, gate: asyncio.Event) -> None:
        with leases.lease():
            leases.hold(f"{name}-own")
            await asyncio.create_task(in_child(f"{name}-task"))
            await asyncio.to_thread(leases.hold, f"{name}-thread")
            await gate.wait()

    async def scenario() -> None:
        gate = asyncio.Event()
        a = asyncio.create_task(pull("a", gate))
        b = asyncio.create_task(pull("b", gate))
        for _ in range(20):
            await asyncio.sleep(0.01)
            with leases.lock:
                if len(leases.held()) == 6:
                    break
        with leases.lock:
            seen.append(leases.held())
        assert leases.open_count() == 2
        gate.set()
        await asyncio.gather(a, b)

    asyncio.run(scenario())
    assert seen == [{"a-own", "a-task", "a-thread", "b-own", "b-task", "b-thread"}]
    assert leases.open_count() == 0
    with leases.lock:
        assert leases.held() == set()


def test_a_failed_block_releases_its_lease() -> None:
    leases = Leases()
    try:
        with leases.lease():
            leases.hold("x")
            raise RuntimeError("pull failed")
    except RuntimeError:
        pass
    assert leases.open_count() == 0

"""cri.shims.stop_task: stopping a task that may lose or refuse a cancellation."""

from __future__ import annotations

import asyncio

from dockyard.cri.shims import stop_task


async def _swallows_first_cancel(forever: asyncio.Event) -> None:
    # What Python 3.11's wait_for does when the cancel races its inner future:
    # the CancelledError never reaches the caller, which goes on waiting.
    try:
        await forever.wait()
    except asyncio.CancelledError:
        pass
    await forever.wait()


async def _refuses_cancel(forever: asyncio.Event) -> None:
    while True:
        try:
            await forever.wait()
        except asyncio.CancelledError:
            continue


async def _fails_when_cancelled() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise RuntimeError("cleanup failed") from None


def test_a_swallowed_cancel_is_repeated_until_the_task_ends() -> None:
    async def main() -> tuple[bool, bool]:
        task = asyncio.create_task(_swallows_first_cancel(asyncio.Event()))
        await asyncio.sleep(0)
        return await stop_task(task, timeout=5.0), task.cancelled()

    assert asyncio.run(main()) == (True, True)


def test_a_task_that_never_ends_is_left_after_the_timeout() -> None:
    async def main() -> tuple[bool, bool, float]:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(_refuses_cancel(asyncio.Event()))
        await asyncio.sleep(0)
        started = loop.time()
        stopped = await stop_task(task, timeout=0.3)
        elapsed = loop.time() - started
        done = task.done()
        task.get_coro().close()  # type: ignore[union-attr]  # let the test's loop close cleanly
        return stopped, done, elapsed

    stopped, done, elapsed = asyncio.run(main())
    assert (stopped, done) == (False, False)
    assert 0.3 <= elapsed < 2.0


def test_an_error_raised_while_stopping_is_retrieved_not_raised() -> None:
    async def main() -> bool:
        task = asyncio.create_task(_fails_when_cancelled())
        await asyncio.sleep(0)
        stopped = await stop_task(task, timeout=5.0)
        assert isinstance(task.exception(), RuntimeError)
        return stopped

    assert asyncio.run(main()) is True


def test_a_finished_task_is_left_alone() -> None:
    async def main() -> bool:
        task = asyncio.create_task(asyncio.sleep(0))
        await task
        return await stop_task(task, timeout=1.0)

    assert asyncio.run(main()) is True

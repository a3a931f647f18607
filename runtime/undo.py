"""Rollback for a multi-step operation: what contextlib.ExitStack does for
``create``, without importing contextlib (runtime/kernel/lean/README.md).

    with Undo() as undo:
        take_a(); undo.callback(release_a)
        take_b(); undo.callback(release_b, arg)
        undo.pop_all()        # success: keep everything

Leaving the block without pop_all() runs the callbacks newest first.  Each
runs even if an earlier one failed; the last failure is raised (chained to
what failed before it, the original error included), as ExitStack does.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Undo:
    __slots__ = ("_steps",)

    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def callback(self, fn: Callable[..., object], *args: Any) -> None:
        self._steps.append((fn, args))

    def pop_all(self) -> None:
        self._steps = []

    def __enter__(self) -> Undo:  # noqa: PYI034  # typing.Self would import typing
        return self

    def __exit__(self, *exc: object) -> None:
        steps, self._steps = self._steps, []
        failure: BaseException | None = None
        for fn, args in reversed(steps):
            try:
                fn(*args)
            except BaseException as err:  # noqa: BLE001  # every step runs; the last failure wins
                if failure is not None and failure is not err:
                    err.__context__ = failure
                failure = err
        if failure is not None:
            chained = failure.__context__
            try:
                raise failure
            except BaseException:
                failure.__context__ = chained  # raise re-links it to the block's error; keep our chain
                raise

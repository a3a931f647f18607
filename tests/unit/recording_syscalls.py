"""A recording stand-in for dockyard.runtime.kernel.syscalls, as youki's TestHelperSyscall.

The runtime reaches the kernel's mount, namespace and process calls only
through that one module, so a unit test can put this fake where a module
looks it up (``install``) and check which calls the code under test makes,
in which order, with which arguments, without root or a kernel to change.
Constants (``MS_BIND``, ``CLONE_NEWNET``, ...) are the real module's; every
function call is recorded with its arguments bound to the real function's
signature (defaults filled in, so a call reads the same however it was
written) and answers what the test scripted: ``returns`` by name (default
None), or raises ``fails`` by name.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, NamedTuple

import pytest

from dockyard.runtime.kernel import syscalls


class Call(NamedTuple):
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class RecordingSyscalls:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.returns: dict[str, Any] = {}
        self.fails: dict[str, BaseException] = {}

    def __getattr__(self, name: str) -> Any:
        value = getattr(syscalls, name)
        if not isinstance(value, types.FunctionType):
            return value  # a constant, or a record type the caller builds

        signature = inspect.signature(value)

        def record(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)  # a TypeError here is the caller's, as for real
            bound.apply_defaults()
            self.calls.append(Call(name, bound.args, bound.kwargs))
            if name in self.fails:
                raise self.fails[name]
            return self.returns.get(name)

        return record

    def of(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of ``name``, in order."""
        return [c.args for c in self.calls if c.name == name]

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def install(self, monkeypatch: pytest.MonkeyPatch, *modules: types.ModuleType) -> RecordingSyscalls:
        """Be ``syscalls`` for each of ``modules`` until the test ends."""
        for module in modules:
            assert getattr(module, "syscalls") is syscalls, f"{module.__name__} does not use the syscalls module"
            monkeypatch.setattr(module, "syscalls", self)
        return self


def fd_path(arg: object) -> bool:
    """A mount target the runtime passes as /proc/self/fd/N (securejoin's O_PATH fd)."""
    return isinstance(arg, str) and arg.startswith("/proc/self/fd/")

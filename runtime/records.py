"""Frozen, slotted value records: what ``@dataclass(frozen=True, slots=True)``
gives, without its import cost.

Why this exists: every container start runs the CLI three times (create,
start, delete), and on a small VM ``import dataclasses`` costs ~16 ms
(it pulls in inspect, and with it ast, dis and tokenize), plus ~1 ms per
decorated class.  The runtime declares about thirty records.  This module
builds the same classes with one generic ``__init__`` each and nothing else.

Type checkers see ``record`` through PEP 681's ``dataclass_transform``, so
mypy checks constructors and frozenness exactly as for dataclasses.  The
name ``TYPE_CHECKING`` is a plain constant here (mypy treats any name
``TYPE_CHECKING`` as true), which keeps ``typing`` (~10 ms) out of the
runtime's imports too; the same idiom appears in the other runtime modules.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_kw: object) -> object:
        return lambda f: f


class FrozenInstanceError(AttributeError):
    """Raised on an attempt to change a record's field."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A field whose default is made fresh for each record (a dict, a list)."""
    return _Factory(default_factory)  # type: ignore[return-value]


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r} of {type(self).__name__}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r} of {type(self).__name__}")


def _fields(self: Any) -> tuple[object, ...]:
    return tuple(getattr(self, n) for n in self.__slots__)


def _eq(self: Any, other: object) -> bool:
    same: bool = other.__class__ is self.__class__ and _fields(self) == _fields(other)
    return same


def _hash(self: Any) -> int:
    return hash(_fields(self))


def _repr(self: Any) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
    return f"{type(self).__name__}({inner})"


def replace(obj: T, **changes: Any) -> T:
    """A copy of the record ``obj`` with some fields changed."""
    slots: tuple[str, ...] = getattr(obj, "__slots__")
    values = {n: getattr(obj, n) for n in slots}
    for key in changes:
        if key not in values:
            raise TypeError(f"{type(obj).__name__} has no field {key!r}")
    values.update(changes)
    return type(obj)(**values)


def to_dict(obj: object) -> dict[str, Any]:
    """The record's fields, shallowly, as a dict."""
    return {n: getattr(obj, n) for n in getattr(obj, "__slots__")}


def _make_init(cls_name: str, names: tuple[str, ...], defaults: dict[str, object],
               factories: dict[str, Callable[[], object]]) -> Callable[..., None]:
    # One generic __init__ per record rather than generated source: compiling
    # a fresh function with exec() costs ~0.15 ms per class, paid at import
    # by every CLI call, while binding arguments by hand costs a few
    # microseconds per record made (there are a handful per call).
    positional = len(names)
    setter = object.__setattr__

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if len(args) > positional:
            raise TypeError(f"{cls_name}() takes {positional} positional arguments but {len(args)} were given")
        for i, name in enumerate(names):
            if i < len(args):
                if name in kwargs:
                    raise TypeError(f"{cls_name}() got multiple values for argument {name!r}")
                value = args[i]
            elif name in kwargs:
                value = kwargs.pop(name)
            elif name in factories:
                value = factories[name]()
            elif name in defaults:
                value = defaults[name]
            else:
                raise TypeError(f"{cls_name}() missing required argument: {name!r}")
            setter(self, name, value)
        if kwargs:
            raise TypeError(f"{cls_name}() got an unexpected keyword argument {next(iter(kwargs))!r}")

    return __init__


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T]) -> type[T]:
    """Turn a class with annotated fields into a frozen, slotted record with
    ``__init__``, ``__eq__``, ``__hash__`` and ``__repr__`` (see also the
    module's :func:`replace` and :func:`to_dict`)."""
    body = cls.__dict__
    names = tuple(body.get("__annotations__", {}))
    defaults: dict[str, object] = {}
    factories: dict[str, Callable[[], object]] = {}
    for name in names:
        if name in body:
            default = body[name]
            if isinstance(default, _Factory):
                factories[name] = default.make
            else:
                defaults[name] = default
        elif defaults or factories:
            raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one with a default")
    ns = {k: v for k, v in body.items() if k not in names and k not in ("__dict__", "__weakref__")}
    ns.update(__slots__=names, __init__=_make_init(cls.__name__, names, defaults, factories),
              __setattr__=_frozen_setattr, __delattr__=_frozen_delattr, __eq__=_eq, __hash__=_hash, __repr__=_repr)
    new: type[T] = type.__new__(type, cls.__name__, cls.__bases__, ns)
    new.__qualname__ = cls.__qualname__
    return new

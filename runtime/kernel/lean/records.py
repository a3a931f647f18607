"""Frozen, slotted value records: what ``@dataclass(frozen=True, slots=True)``
gives, without its import cost: ``class Mount(Record):`` with annotated fields.

Why this exists: ``dataclasses`` is the costliest import the runtime's
hot paths avoid (it pulls in inspect, and with it ast, dis and tokenize;
README.md here), and each decorated class costs more again.  The runtime
declares about thirty records, two dozen of them on create's path.  A
metaclass turns the class body into slots and defaults before the class is
made, so each record costs one class creation (a decorator gets the class
already built and must build it again), and every record shares one
``__init__``, ``__eq__``, ``__hash__``, ``__repr__`` and the frozen setters
through the base.

Type checkers see ``Record`` through PEP 681's ``dataclass_transform``, so
mypy checks constructors and frozenness exactly as for dataclasses.  The
name ``TYPE_CHECKING`` is a plain constant here (mypy treats any name
``TYPE_CHECKING`` as true), which keeps ``typing`` out of the runtime's
imports too; the same idiom appears in the other hot-path modules.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, TypeVar, dataclass_transform

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


def replace(obj: T, **changes: Any) -> T:
    """A copy of the record ``obj`` with some fields changed."""
    names: tuple[str, ...] = getattr(obj, "_fields")
    values = {n: getattr(obj, n) for n in names}
    for key in changes:
        if key not in values:
            raise TypeError(f"{type(obj).__name__} has no field {key!r}")
    values.update(changes)
    return type(obj)(**values)


def to_dict(obj: object) -> dict[str, Any]:
    """The record's fields, shallowly, as a dict."""
    return {n: getattr(obj, n) for n in getattr(obj, "_fields")}


class _RecordMeta(type):
    """Makes a record class in one step: the annotated names become
    ``__slots__`` (so their defaults move to ``_defaults`` and
    ``_factories``), as dataclass(slots=True) would have them.  A record
    class may extend another: its fields (``_fields``) are the base's, then
    its own, as with dataclasses."""

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> _RecordMeta:
        if not bases:  # Record itself
            return super().__new__(mcs, name, bases, ns)
        inherited: tuple[str, ...] = ()
        defaults: dict[str, object] = {}
        factories: dict[str, Callable[[], object]] = {}
        for base in bases:
            inherited += tuple(n for n in getattr(base, "_fields", ()) if n not in inherited)
            defaults.update(getattr(base, "_defaults", {}))
            factories.update(getattr(base, "_factories", {}))
        names = tuple(ns.get("__annotations__", {}))
        for field_name in names:
            if field_name in inherited:
                raise TypeError(f"{name}: field {field_name!r} is already a field of a base")
            if field_name in ns:
                default = ns.pop(field_name)
                if isinstance(default, _Factory):
                    factories[field_name] = default.make
                else:
                    defaults[field_name] = default
            elif defaults or factories:
                raise TypeError(f"{name}: field {field_name!r} without a default follows one with a default")
        ns.update(__slots__=names, _fields=inherited + names, _defaults=defaults, _factories=factories)
        return super().__new__(mcs, name, bases, ns)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Record(metaclass=_RecordMeta):
    """Base of the frozen, slotted records (see the module's docstring)."""

    __slots__: tuple[str, ...] = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, object]]
    _factories: ClassVar[dict[str, Callable[[], object]]]

    def __init__(self, *args: object, **kwargs: object) -> None:
        # Bound by hand rather than a generated __init__ per class: compiling
        # one with exec() for each class at import would be paid by every CLI
        # call, while this costs a few microseconds per record made.
        cls = type(self)
        names = cls._fields
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments but {len(args)} were given")
        setter = object.__setattr__
        for i, name in enumerate(names):
            if i < len(args):
                if name in kwargs:
                    raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
                value = args[i]
            elif name in kwargs:
                value = kwargs.pop(name)
            elif name in cls._factories:
                value = cls._factories[name]()
            elif name in cls._defaults:
                value = cls._defaults[name]
            else:
                raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
            setter(self, name, value)
        if kwargs:
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {next(iter(kwargs))!r}")

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r} of {type(self).__name__}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, n) for n in self._fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and other.__class__ is self.__class__ and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"

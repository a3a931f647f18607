"""runtime/kernel/lean/records.py: the dataclass(frozen=True, slots=True) contract the runtime relies on."""

from __future__ import annotations

import pytest

from dockyard.runtime.kernel.lean.records import FrozenInstanceError, Record, field, replace, to_dict
class Mount(Record):
    destination: str
    type: str = "bind"
    options: list[str] = field(default_factory=list)


@pytest.mark.parametrize(("args", "kwargs", "expected"), [
    (("/a",), {}, ("/a", "bind", [])),
    (("/a", "tmpfs"), {}, ("/a", "tmpfs", [])),
    (("/a", "tmpfs", ["ro"]), {}, ("/a", "tmpfs", ["ro"])),
    ((), {"destination": "/b", "options": ["rw"]}, ("/b", "bind", ["rw"])),
    (("/c",), {"type": "proc"}, ("/c", "proc", [])),
])
def test_construction(args: tuple[object, ...], kwargs: dict[str, object], expected: tuple[object, ...]) -> None:
    m = Mount(*args, **kwargs)  # type: ignore[arg-type]
    assert (m.destination, m.type, m.options) == expected


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((), {}, "missing required argument: 'destination'"),
    (("/a", "b", [], "extra"), {}, "takes 3 positional arguments but 4 were given"),
    (("/a",), {"destination": "/b"}, "multiple values for argument 'destination'"),
    (("/a",), {"nope": 1}, "unexpected keyword argument 'nope'"),
])
def test_bad_construction(args: tuple[object, ...], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Mount(*args, **kwargs)  # type: ignore[arg-type]


def test_default_factory_is_fresh_per_record() -> None:
    a, b = Mount("/a"), Mount("/b")
    a.options.append("ro")
    assert b.options == []


def test_frozen_slotted_equal_hashable() -> None:
    m = Mount("/a")
    with pytest.raises(FrozenInstanceError):
        m.type = "tmpfs"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del m.type  # type: ignore[misc]
    assert not hasattr(m, "__dict__")
    assert Mount("/a", "bind", []) == m
    assert Mount("/a", "tmpfs") != m
    with pytest.raises(TypeError):
        hash(m)  # a list field: unhashable, as with dataclasses
    assert repr(m) == "Mount(destination='/a', type='bind', options=[])"
class Pair(Record):
    a: int
    b: str = ""


def test_records_of_hashables_hash_by_value() -> None:
    assert hash(Pair(1, "x")) == hash(Pair(1, "x"))
    assert {Pair(1), Pair(1)} == {Pair(1)}


def test_replace_and_to_dict() -> None:
    m = replace(Mount("/a"), type="tmpfs")
    assert to_dict(m) == {"destination": "/a", "type": "tmpfs", "options": []}
    with pytest.raises(TypeError, match="no field 'nope'"):
        replace(m, nope=1)


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="'b' without a default"):
        class Bad(Record):
            a: int = 0
            b: int


class Base(Record):
    a: int
    b: str = ""


class Derived(Base):
    c: bool = False


def test_a_record_extends_another_with_the_bases_fields_first() -> None:
    d = Derived(1, "x", True)
    assert to_dict(d) == {"a": 1, "b": "x", "c": True}
    assert Derived(a=2) == Derived(2, "", False) and Derived(2) != Base(2)
    assert replace(d, a=3) == Derived(3, "x", True) and isinstance(replace(d, a=3), Derived)
    assert repr(Derived(1)) == "Derived(a=1, b='', c=False)"
    with pytest.raises(FrozenInstanceError):
        d.a = 5  # type: ignore[misc]


def test_a_derived_record_keeps_the_field_order_rules() -> None:
    with pytest.raises(TypeError, match="'c' without a default"):
        class Bad(Base):
            c: int
    with pytest.raises(TypeError, match="'a' is already a field"):
        class Again(Base):
            a: int = 0  # type: ignore[misc]

"""The in-memory side of a metadata store: objects by id, a unique-name index,
id-prefix lookup (crictl prints truncated ids) and one asyncio lock per object.

Not thread-safe: only the daemon's event loop touches it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ..errors import AlreadyExists, InvalidArgument, NotFound

T = TypeVar("T")


class ObjectIndex(Generic[T]):
    def __init__(self, kind: str, id_of: Callable[[T], str], name_of: Callable[[T], str]) -> None:
        self.kind = kind
        self._id_of = id_of
        self._name_of = name_of
        self._by_id: dict[str, T] = {}
        self._by_name: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def add(self, obj: T) -> None:
        object_id, name = self._id_of(obj), self._name_of(obj)
        if object_id in self._by_id:
            raise AlreadyExists(f"{self.kind} id {object_id} already exists")
        holder = self._by_name.get(name)
        if holder is not None:
            raise AlreadyExists(f"{self.kind} name {name!r} is already in use by {self.kind} {holder}")
        self._by_id[object_id] = obj
        self._by_name[name] = object_id

    def discard(self, object_id: str) -> None:
        obj = self._by_id.pop(object_id, None)
        if obj is not None and self._by_name.get(self._name_of(obj)) == object_id:
            del self._by_name[self._name_of(obj)]
        self._locks.pop(object_id, None)

    def id_by_name(self, name: str) -> str | None:
        return self._by_name.get(name)

    def get(self, id_or_prefix: str) -> T:
        """Exact id, or a unique prefix of one; NotFound / InvalidArgument (ambiguous)."""
        if not id_or_prefix:
            raise InvalidArgument(f"{self.kind} id is empty")
        obj = self._by_id.get(id_or_prefix)
        if obj is not None:
            return obj
        matches = [i for i in self._by_id if i.startswith(id_or_prefix)]
        if not matches:
            raise NotFound(f"{self.kind} {id_or_prefix} not found")
        if len(matches) > 1:
            raise InvalidArgument(f"{self.kind} id prefix {id_or_prefix} is ambiguous ({len(matches)} match)")
        return self._by_id[matches[0]]

    def find(self, id_or_prefix: str) -> T | None:
        try:
            return self.get(id_or_prefix)
        except NotFound:
            return None

    def lock(self, object_id: str) -> asyncio.Lock:
        lock = self._locks.get(object_id)
        if lock is None:
            lock = self._locks[object_id] = asyncio.Lock()
        return lock

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, object_id: object) -> bool:
        return object_id in self._by_id

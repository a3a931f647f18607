"""A metadata store: records by id and unique name in memory (object_index.py),
each persisted as a versioned JSON file (record_dir.py).

SandboxStore and ContainerStore are this with their record type, directory
and kind; Sandbox and Container are StateRecords (their JSON form).
"""

from __future__ import annotations

import builtins
import enum
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from .object_index import ObjectIndex
from .record_dir import RecordDir


class StoredRecord(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=StoredRecord)
S = TypeVar("S", bound="StateRecord")


class StateRecord:
    """The JSON form of a slotted dataclass record: its fields as they are, but
    ``state``, an enum of the class's STATE type, as its value."""

    __slots__ = ()
    STATE: ClassVar[type[enum.Enum]]
    __dataclass_fields__: ClassVar[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["state"] = doc["state"].value
        return doc

    @classmethod
    def from_json(cls: type[S], doc: dict[str, Any]) -> S:
        values = dict(doc)
        values["state"] = cls.STATE(values["state"])
        return cls(**values)


class RecordStore(Generic[R]):
    def __init__(self, root_dir: str, subdir: str, version: int, kind: str,
                 from_json: Callable[[dict[str, Any]], R]) -> None:
        self.dir = RecordDir(os.path.join(root_dir, subdir), version)
        self.index: ObjectIndex[R] = ObjectIndex(kind, lambda r: r.id, lambda r: r.name)
        self._from_json = from_json

    def load(self) -> builtins.list[R]:
        """Index every record on disk; a file whose record names another id is skipped."""
        loaded: builtins.list[R] = []
        for object_id, doc in self.dir.load_all().items():
            record = self._from_json(doc)
            if record.id != object_id:
                continue
            self.index.add(record)
            loaded.append(record)
        return loaded

    def add(self, record: R) -> Awaitable[None]:
        """Index it now, persist it (await the result: record_dir.py)."""
        self.index.add(record)
        return self.save(record)

    def save(self, record: R) -> Awaitable[None]:
        return self.dir.save(record.id, record.to_json())

    def delete(self, object_id: str) -> Awaitable[None]:
        self.index.discard(object_id)
        return self.dir.delete(object_id)

    async def flush(self) -> None:
        await self.dir.flush()

    def get(self, id_or_prefix: str) -> R:
        return self.index.get(id_or_prefix)

    def find(self, id_or_prefix: str) -> R | None:
        return self.index.find(id_or_prefix)

    def list(self) -> builtins.list[R]:
        return list(self.index)

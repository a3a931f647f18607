"""Hypothesis strategies for hostile CRI requests, built from the CRI's own
protobuf descriptors (so a field added to api.proto is fuzzed too).

Two shapes of request:
- ``random_message``: every field drawn at random (hostile strings, boundary
  integers, out-of-range enums, empty and repeated messages);
- ``mutated``: a valid request (one that reaches deep into the daemon: a
  running container's id, a pod config that runs) with a few fields, chosen
  by Hypothesis, replaced by hostile values.

What the fuzzed daemon may never be made to do is kept out of the values,
not left to luck: reach a host other than the loopback registry (image
references are rooted at it), create directories at random places on the
machine (path-like fields get hostile values inside the test's own tmp dir
or ones that cannot be made), or cgroups outside the test's parent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MiB = 1 << 20

HOSTILE_STRINGS: tuple[str, ...] = (
    "", " ", "\0", "a\0b", "\n", "\r\n", "-", "--help", "..", "../../../../etc/passwd", "/", "/proc/self/fd/0",
    "%s%n%x", "${PATH}", "$(id)", "`id`", "a" * 255, "a" * 256, "a" * 4097, "\u00e9\u4e2d\U0001f4a5",
    "\ufffd", "0", "-1", "4294967296", "null", "true", "{}", "[]", "*", "?", "\\",
    "A" * (128 * 1024), "A" * MiB,
)
INTS: tuple[int, ...] = (0, 1, -1, 2, 7, 255, 1024, 65535, 65536, 2**31 - 1, -(2**31), 2**32, 2**63 - 1, -(2**63))

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
# String fields that name a place on the host (a directory the daemon makes, a
# file it reads, a cgroup it creates): hostile values, but only where the
# test may write.
PATH_FIELDS = frozenset({
    "log_directory", "log_path", "host_path", "localhost_ref", "seccomp_profile_path", "cgroup_parent",
    "working_dir", "container_path", "image_sub_path", "masked_paths", "readonly_paths",
})
# String fields holding an image reference: rooted at the loopback registry.
IMAGE_FIELDS = frozenset({"image", "user_specified_image"})


class Places:
    """Where hostile paths may point: the test's tmp dir and cgroup parent."""

    def __init__(self, tmp: str, cgroup_parent: str, registry: str) -> None:
        self.tmp = tmp.rstrip("/")
        self.cgroup_parent = cgroup_parent.rstrip("/")
        self.registry = registry

    def path(self, field: str) -> st.SearchStrategy[str]:
        if field == "cgroup_parent":
            tail = st.sampled_from(("", "x", "..", "../..", "a/../../b", "\0", "a" * 300, "pod-\n"))
            return st.one_of(
                st.sampled_from(("", "relative", "/", "..", "/..", "/sys", "a" * 300, "\0")),
                tail.map(lambda t: f"{self.cgroup_parent}/{t}"),
            )
        inside = st.text(alphabet="ab./\0\n-_", max_size=20).map(lambda t: f"{self.tmp}/fuzz/{t}")
        return st.one_of(
            st.sampled_from(("", "relative/x", "..", "/", "/proc/self/fd/0", "/proc/1/root", "/dev/null",
                             "/sys/fs/cgroup", f"{self.tmp}/../../etc", "/proc/nonexistent/x", "\0",
                             "a" * 5000, "/" + "a" * 5000)),
            inside,
        )

    def image(self) -> st.SearchStrategy[str]:
        tail = st.one_of(st.sampled_from(HOSTILE_STRINGS[:-2]), st.text(max_size=40))
        return st.one_of(
            st.sampled_from(("", " ", "\0", "UPPER", "a" * 300, "@sha256:zz", ":tag", "busybox@sha256:" + "0" * 64,
                             "sha256:" + "0" * 64, "busybox:" + "t" * 200)),
            tail.map(lambda t: f"{self.registry}/{t}"),
            tail.map(lambda t: f"{self.registry}/busybox:{t}"),
        )


def hostile_string(field: FieldDescriptor, places: Places) -> st.SearchStrategy[str]:
    if field.name in PATH_FIELDS:
        return places.path(field.name)
    if field.name in IMAGE_FIELDS:
        return places.image()
    return st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=30))


def scalar(field: FieldDescriptor, places: Places) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return hostile_string(field, places)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.sampled_from((b"", b"\0" * 4096, b"\xff" * MiB)))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        values = [v.number for v in field.enum_type.values]
        return st.sampled_from(values + [max(values) + 1, 1000, -1])
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if t == FieldDescriptor.TYPE_FLOAT else 64)
    low, high = _INT_RANGES[t]
    return st.one_of(st.sampled_from([v for v in INTS if low <= v <= high]), st.integers(low, high))


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def random_message(descriptor: Descriptor, cls: Callable[[], Message], places: Places,
                   depth: int = 0) -> st.SearchStrategy[Message]:
    """A message of ``descriptor`` with any subset of its fields set at random."""

    @st.composite
    def build(draw: Any) -> Message:
        msg = cls()
        fill(draw, msg, places, depth)
        return msg

    return build()


def fill(draw: Any, msg: Message, places: Places, depth: int) -> None:
    for field in msg.DESCRIPTOR.fields:
        if depth > 4 or not draw(st.booleans()):
            continue
        set_field(draw, msg, field, places, depth)


def set_field(draw: Any, msg: Message, field: FieldDescriptor, places: Places, depth: int) -> None:
    """Set ``field`` of ``msg`` to a drawn hostile value (replacing what it held)."""
    msg.ClearField(field.name)
    if _is_map(field):
        key_f, value_f = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        target = getattr(msg, field.name)
        for _ in range(draw(st.integers(0, 3))):
            key = draw(scalar(key_f, places))
            if value_f.message_type is not None:
                fill(draw, target[key], places, depth + 1)
            else:
                target[key] = draw(scalar(value_f, places))
        return
    if field.is_repeated:
        target = getattr(msg, field.name)
        count = draw(st.one_of(st.integers(0, 3), st.just(1000)))
        for _ in range(count):
            if field.message_type is not None:
                fill(draw, target.add(), places, depth + 1)
            else:
                target.append(draw(scalar(field, places)))
        return
    if field.message_type is not None:
        sub = getattr(msg, field.name)
        sub.SetInParent()
        fill(draw, sub, places, depth + 1)
        return
    setattr(msg, field.name, draw(scalar(field, places)))


def field_paths(descriptor: Descriptor, prefix: tuple[str, ...] = (), depth: int = 0) -> list[tuple[str, ...]]:
    """Every field of a message, nested ones included (as name paths)."""
    paths: list[tuple[str, ...]] = []
    for field in descriptor.fields:
        path = (*prefix, field.name)
        paths.append(path)
        if field.message_type is not None and not _is_map(field) and not field.is_repeated \
                and depth < 5:
            paths += field_paths(field.message_type, path, depth + 1)
    return paths


def mutated(valid: Message, places: Places, max_changes: int = 3) -> st.SearchStrategy[Message]:
    """``valid`` with 1..max_changes fields (at any depth) set to hostile values."""
    paths = field_paths(valid.DESCRIPTOR)

    @st.composite
    def build(draw: Any) -> Message:
        msg = type(valid)()
        msg.CopyFrom(valid)
        for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=max_changes, unique=True)):
            holder = msg
            for name in path[:-1]:
                holder = getattr(holder, name)
            set_field(draw, holder, holder.DESCRIPTOR.fields_by_name[path[-1]], places, len(path))
        return msg

    return build()

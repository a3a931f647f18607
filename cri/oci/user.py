"""Who the container's process runs as: uid, gid and supplementary groups.

Inputs, in containerd's order of precedence:

1. ``run_as_user`` (a uid) or ``run_as_username`` from the security context,
   else the image's ``User`` ("name", "uid", "uid:gid", "name:group",
   "uid:group", "name:gid"), else root;
2. ``run_as_group`` replaces the group part; it needs (1) to come from the
   security context, as containerd insists ("user group is specified
   without user");
3. supplementary groups: the primary gid first, then, with the ``Merge``
   policy, every group in the image's /etc/group that lists the user's name
   as a member, then the config's ``supplemental_groups``.  ``Strict`` skips
   the /etc/group lookup, so only what the pod spec names is added.

Names are looked up in the image's /etc/passwd and /etc/group, which the
caller reads from the rootfs and hands in through ``read_file`` (a path
inside the rootfs -> its text, or None when it does not exist); that keeps
this module pure.  A numeric uid with no passwd entry gets gid 0, as in
docker.  A name that is not in the file is the caller's error, naming the
field it came from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..errors import InvalidArgument

E = TypeVar("E")  # an /etc/passwd or /etc/group entry

ReadFile = Callable[[str], "str | None"]

MAX_ID = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: tuple[int, ...]


def parse_passwd(text: str) -> list[PasswdEntry]:
    """name:password:uid:gid:gecos:home:shell; malformed lines are skipped,
    as libc's getpwent skips them."""
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 4 or line.startswith("#"):
            continue
        uid, gid = _number(parts[2]), _number(parts[3])
        if uid is None or gid is None:
            continue
        out.append(PasswdEntry(parts[0], uid, gid))
    return out


def parse_group(text: str) -> list[GroupEntry]:
    """name:password:gid:member,member; malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) < 3 or line.startswith("#"):
            continue
        gid = _number(parts[2])
        if gid is None:
            continue
        members = tuple(m.strip() for m in parts[3].split(",") if m.strip()) if len(parts) > 3 else ()
        out.append(GroupEntry(parts[0], gid, members))
    return out


def _number(text: str) -> int | None:
    text = text.strip()
    if not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_ID else None


@dataclass(frozen=True, slots=True)
class UserRequest:
    """What the config asks for; ``field`` names where ``user`` came from."""

    user: str  # "" (root), "name", "uid", with an optional ":group"
    field: str
    group: int | None = None  # run_as_group
    supplemental_groups: Sequence[int] = ()
    strict: bool = False  # SupplementalGroupsPolicy Strict


def _read_once(read_file: ReadFile, path: str, parse: Callable[[str], list[E]]) -> Callable[[], list[E]]:
    """The entries of the image's file at ``path`` ([] when it has none), read at the first call only."""
    entries: list[E] | None = None

    def load() -> list[E]:
        nonlocal entries
        if entries is None:
            text = read_file(path)
            entries = parse(text) if text is not None else []
        return entries

    return load


def resolve_user(req: UserRequest, read_file: ReadFile) -> ResolvedUser:
    """The uid, gid and supplementary gids for ``req``; see the module docstring."""
    user_part, _, group_part = req.user.partition(":")
    load_passwd = _read_once(read_file, "/etc/passwd", parse_passwd)
    load_groups = _read_once(read_file, "/etc/group", parse_group)

    username = ""
    uid = _number(user_part) if user_part else 0
    gid = 0
    if user_part and uid is None:
        entry = next((e for e in load_passwd() if e.name == user_part), None)
        if entry is None:
            raise InvalidArgument(f"{req.field}: no user {user_part!r} in the image's /etc/passwd")
        uid, gid, username = entry.uid, entry.gid, entry.name
    else:
        assert uid is not None
        # The gid (and the name used for group membership) of a numeric uid
        # come from passwd when it lists that uid; the file is read only if
        # something depends on it.
        if not group_part or not req.strict:
            entry = next((e for e in load_passwd() if e.uid == uid), None)
            if entry is not None:
                gid, username = entry.gid, entry.name
    if group_part:
        number = _number(group_part)
        if number is None:
            found = next((g for g in load_groups() if g.name == group_part), None)
            if found is None:
                raise InvalidArgument(f"{req.field}: no group {group_part!r} in the image's /etc/group")
            number = found.gid
        gid = number
    if req.group is not None:
        gid = req.group
    extra: list[int] = [gid]
    if not req.strict and username:
        extra += [g.gid for g in load_groups() if username in g.members]
    extra += list(req.supplemental_groups)
    for i, value in enumerate(req.supplemental_groups):
        if not 0 <= value <= MAX_ID:
            raise InvalidArgument(f"config.linux.security_context.supplemental_groups[{i}]: {value} is not a gid")
    return ResolvedUser(uid=uid, gid=gid, additional_gids=tuple(dict.fromkeys(extra)))


def rootfs_reader(rootfs: str) -> ReadFile:
    """A ``read_file`` for a mounted rootfs: the path is resolved inside it
    (symlinks cannot lead out), and a missing file reads as None."""
    from dockyard.runtime.kernel.errors import SyscallError
    from dockyard.runtime.kernel.securejoin import open_in_root

    def read(path: str) -> str | None:
        try:
            fd = open_in_root(rootfs, path)
        except SyscallError as err:
            if err.errno in (2, 20):  # ENOENT, ENOTDIR
                return None
            raise
        try:
            with open(f"/proc/self/fd/{fd}", encoding="utf-8", errors="replace") as f:
                return f.read(4 * 1024 * 1024)
        except FileNotFoundError:
            return None
        finally:
            os.close(fd)

    return read

"""OCI mount options (``mounts[i].options``) -> what to pass to the kernel.

Pure: strings in, numbers out.  Facts that shape the result:

* mount(2) flags are one word.  An option such as ``rw`` or ``suid`` means
  "this flag off"; for a fresh mount that is the default, but a bind mount
  that must be remounted (``MS_REMOUNT|MS_BIND``) to apply ``ro``/``nosuid``
  keeps flags it inherited unless told otherwise, so the cleared flags are
  kept separately in ``clear``.  The last of two contradicting options wins.
* Propagation (``private``, ``rshared`` ...) cannot be combined with other
  flags in one mount(2) call: it is a separate call on the mount point after
  the mount, one per option, in the order given.
* The ``r``-prefixed options (``rro``, ``rnosuid`` ...) apply to every mount
  below a recursive bind, which only ``mount_setattr(AT_RECURSIVE)`` (5.12)
  can do.  Its atime setting is one three-valued field, not three bits: to
  change it ``attr_clr`` must hold all of ``MOUNT_ATTR__ATIME`` and
  ``attr_set`` exactly one value, or the kernel says EINVAL.  So ``rnoatime``,
  ``rstrictatime`` and ``rrelatime`` each replace the field, and the negating
  ``ratime``, ``rnorelatime`` and ``rnostrictatime`` put it back to the
  kernel's default, relatime.
* ``idmap``/``ridmap`` are not flags at all: the mount is cloned with
  ``open_tree`` and given the mount's uid/gid mappings via ``MOUNT_ATTR_IDMAP``.
* Anything not recognised is a filesystem option (``size=64k``, ``mode=755``,
  ``newinstance``) and goes verbatim into mount(2)'s data string.
"""

from __future__ import annotations

from ..kernel import syscalls
from ..kernel.errors import InvalidSpec, Unsupported
from ..kernel.lean.records import Record

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Sequence
class MountOptions(Record):
    flags: int  # MS_* for mount(2), with MS_BIND|MS_REC for rbind
    clear: int  # MS_* explicitly turned off (for the remount of a bind mount)
    propagation: tuple[int, ...]  # each a separate mount(2) after the mount, in order
    rec_attr_set: int  # MOUNT_ATTR_* for mount_setattr(AT_RECURSIVE)
    rec_attr_clr: int
    data: str  # comma-joined filesystem options
    idmap: bool
    recursive_idmap: bool
    is_bind: bool
    recursive_bind: bool


# option -> (set?, MS_* flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (True, 0),
    "ro": (True, syscalls.MS_RDONLY),
    "rw": (False, syscalls.MS_RDONLY),
    "nosuid": (True, syscalls.MS_NOSUID),
    "suid": (False, syscalls.MS_NOSUID),
    "nodev": (True, syscalls.MS_NODEV),
    "dev": (False, syscalls.MS_NODEV),
    "noexec": (True, syscalls.MS_NOEXEC),
    "exec": (False, syscalls.MS_NOEXEC),
    "sync": (True, syscalls.MS_SYNCHRONOUS),
    "async": (False, syscalls.MS_SYNCHRONOUS),
    "dirsync": (True, syscalls.MS_DIRSYNC),
    "remount": (True, syscalls.MS_REMOUNT),
    "mand": (True, syscalls.MS_MANDLOCK),
    "nomand": (False, syscalls.MS_MANDLOCK),
    "noatime": (True, syscalls.MS_NOATIME),
    "atime": (False, syscalls.MS_NOATIME),
    "nodiratime": (True, syscalls.MS_NODIRATIME),
    "diratime": (False, syscalls.MS_NODIRATIME),
    "relatime": (True, syscalls.MS_RELATIME),
    "norelatime": (False, syscalls.MS_RELATIME),
    "strictatime": (True, syscalls.MS_STRICTATIME),
    "nostrictatime": (False, syscalls.MS_STRICTATIME),
    "nosymfollow": (True, syscalls.MS_NOSYMFOLLOW),
    "symfollow": (False, syscalls.MS_NOSYMFOLLOW),
    "lazytime": (True, syscalls.MS_LAZYTIME),
    "nolazytime": (False, syscalls.MS_LAZYTIME),
    "iversion": (True, syscalls.MS_I_VERSION),
    "noiversion": (False, syscalls.MS_I_VERSION),
    "silent": (True, syscalls.MS_SILENT),
    "loud": (False, syscalls.MS_SILENT),
}

_PROPAGATION: dict[str, int] = {
    "private": syscalls.MS_PRIVATE,
    "rprivate": syscalls.MS_REC | syscalls.MS_PRIVATE,
    "shared": syscalls.MS_SHARED,
    "rshared": syscalls.MS_REC | syscalls.MS_SHARED,
    "slave": syscalls.MS_SLAVE,
    "rslave": syscalls.MS_REC | syscalls.MS_SLAVE,
    "unbindable": syscalls.MS_UNBINDABLE,
    "runbindable": syscalls.MS_REC | syscalls.MS_UNBINDABLE,
}

# option -> (set?, MOUNT_ATTR_* bit) for the plain on/off attributes
_REC_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (True, syscalls.MOUNT_ATTR_RDONLY),
    "rrw": (False, syscalls.MOUNT_ATTR_RDONLY),
    "rnosuid": (True, syscalls.MOUNT_ATTR_NOSUID),
    "rsuid": (False, syscalls.MOUNT_ATTR_NOSUID),
    "rnodev": (True, syscalls.MOUNT_ATTR_NODEV),
    "rdev": (False, syscalls.MOUNT_ATTR_NODEV),
    "rnoexec": (True, syscalls.MOUNT_ATTR_NOEXEC),
    "rexec": (False, syscalls.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (True, syscalls.MOUNT_ATTR_NODIRATIME),
    "rdiratime": (False, syscalls.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (True, syscalls.MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (False, syscalls.MOUNT_ATTR_NOSYMFOLLOW),
}

# option -> the value the three-valued atime field takes
_REC_ATIME: dict[str, int] = {
    "rnoatime": syscalls.MOUNT_ATTR_NOATIME,
    "rstrictatime": syscalls.MOUNT_ATTR_STRICTATIME,
    "rrelatime": syscalls.MOUNT_ATTR_RELATIME,
    "ratime": syscalls.MOUNT_ATTR_RELATIME,
    "rnorelatime": syscalls.MOUNT_ATTR_RELATIME,
    "rnostrictatime": syscalls.MOUNT_ATTR_RELATIME,
}

_OTHER = ("bind", "rbind", "idmap", "ridmap")

# Known to the OCI spec but not implemented: tmpcopyup copies the image's
# directory into a fresh tmpfs (crun's extension).
_UNSUPPORTED = ("tmpcopyup",)

SUPPORTED_OPTIONS: tuple[str, ...] = tuple(sorted(
    {*_FLAGS, *_PROPAGATION, *_REC_ATTRS, *_REC_ATIME, *_OTHER}))


def parse_mount_options(options: Sequence[str], field: str) -> MountOptions:
    """Translate ``options`` (the list at config field ``field``, e.g.
    ``mounts[3].options``) into :class:`MountOptions`."""
    flags = clear = attr_set = attr_clr = 0
    propagation: list[int] = []
    data: list[str] = []
    idmap = ridmap = bind = rbind = False
    for i, opt in enumerate(options):
        if not isinstance(opt, str):
            raise InvalidSpec(f"{field}[{i}]", f"must be a string, not {type(opt).__name__}")
        if opt in _FLAGS:
            on, flag = _FLAGS[opt]
            if on:
                flags, clear = flags | flag, clear & ~flag
            else:
                flags, clear = flags & ~flag, clear | flag
        elif opt in _PROPAGATION:
            propagation.append(_PROPAGATION[opt])
        elif opt in _REC_ATTRS:
            on, attr = _REC_ATTRS[opt]
            if on:
                attr_set, attr_clr = attr_set | attr, attr_clr & ~attr
            else:
                attr_set, attr_clr = attr_set & ~attr, attr_clr | attr
        elif opt in _REC_ATIME:
            attr_set = (attr_set & ~syscalls.MOUNT_ATTR__ATIME) | _REC_ATIME[opt]
            attr_clr |= syscalls.MOUNT_ATTR__ATIME
        elif opt == "bind":
            bind = True
        elif opt == "rbind":
            bind = rbind = True
        elif opt == "idmap":
            idmap = True
        elif opt == "ridmap":
            idmap = ridmap = True
        elif opt in _UNSUPPORTED:
            raise Unsupported("mount option", f"{field}[{i}]", f"{opt!r} is not supported")
        elif opt == "":
            raise InvalidSpec(f"{field}[{i}]", "empty mount option")
        else:
            data.append(opt)
    if bind:
        flags |= syscalls.MS_BIND | (syscalls.MS_REC if rbind else 0)
    return MountOptions(
        flags=flags,
        clear=clear,
        propagation=tuple(propagation),
        rec_attr_set=attr_set,
        rec_attr_clr=attr_clr,
        data=",".join(data),
        idmap=idmap,
        recursive_idmap=ridmap,
        is_bind=bind,
        recursive_bind=rbind,
    )

"""The parent <-> container-init channel: a small typed protocol.

One SOCK_SEQPACKET socketpair, one JSON object per packet, each with a
``type``.  Every receive names the types it expects; anything else (or EOF,
which is what the parent sees when the child dies) is an error, so a
confused or dead child can never be mistaken for a successful one.

The messages, in the order a create exchanges them (runc's syncT); each is
a constant below, and MESSAGES is this table as data
(tests/unit/test_sync.py checks that the code sends nothing else)::

    message      from      to        meaning                                       answered by
    go           parent    stage 1   the parent placed stage 1 (when it had to)   -
    idmap        stage 1   parent    user namespace made: write my id maps         idmap-done
    idmap-done   parent    stage 1   the maps are written                          -
    pid          stage 1   parent    stage 2's pid (then stage 1 exits)            continue
    continue     parent    stage 2   stage 1 is reaped, the channel is yours       -
    placed       parent    stage 2   stage 2 is in all its cgroups (late           -
                                     placement: before it runs anything of the
                                     container's)
    hooks        stage 2   parent    mounts done: run prestart/createRuntime       hooks-done
    hooks-done   parent    stage 2   hooks ran; carries the state for the          -
                                     createContainer hooks
    ready        stage 2   parent    about to wait on exec.fifo (create), or to    -
                                     execve (exec)
    error        child     parent    a RuntimeFault, raised again in the parent    -
    EOF          stage 2   parent    execve done: its end is close-on-exec         -

``go`` and ``continue`` come even when nothing else does; ``idmap`` only
with a new user namespace, ``hooks`` only with a rootfs and some hook,
``placed`` only with late placement.

``exec --detach`` returns only once the process runs its program, as runc's
does (its init pipe is close-on-exec too): a caller reading the pid file
then finds the program, not the runtime's init, at that pid.
"""

from __future__ import annotations

from .kernel import errors, syscalls
from .kernel.errors import RuntimeFault
from .kernel.lean import jsonfast, leanos

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

_MAX = 1 << 16

GO = "go"
IDMAP = "idmap"
IDMAP_DONE = "idmap-done"
PID = "pid"
CONTINUE = "continue"
PLACED = "placed"
HOOKS = "hooks"
HOOKS_DONE = "hooks-done"
READY = "ready"
ERROR = "error"

# The table above as data: message -> (sender, receiver).  "child" is
# either stage; EOF is no message (the end closing) and has no entry.
MESSAGES: dict[str, tuple[str, str]] = {
    GO: ("parent", "stage 1"),
    IDMAP: ("stage 1", "parent"),
    IDMAP_DONE: ("parent", "stage 1"),
    PID: ("stage 1", "parent"),
    CONTINUE: ("parent", "stage 2"),
    PLACED: ("parent", "stage 2"),
    HOOKS: ("stage 2", "parent"),
    HOOKS_DONE: ("parent", "stage 2"),
    READY: ("stage 2", "parent"),
    ERROR: ("child", "parent"),
}
# Requests and the answers the sender waits for.
PAIRS = {IDMAP: IDMAP_DONE, PID: CONTINUE, HOOKS: HOOKS_DONE}

_ERROR_CLASSES: dict[str, type[RuntimeFault]] = {
    cls.__name__: cls for cls in (
        errors.RuntimeFault, errors.InvalidArgument, errors.NotFound, errors.AlreadyExists,
        errors.FailedPrecondition, errors.Unsupported, errors.SyscallError, errors.HookFailed,
    )
}


class Channel:
    """One end of the pair, as a raw fd.  On a SOCK_SEQPACKET socket, write(2)
    sends one packet and read(2) receives one, as send and recv would, and
    create needs no socket module (runtime/kernel/lean/README.md)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = syscalls.socketpair(syscalls.AF_UNIX, syscalls.SOCK_SEQPACKET | syscalls.SOCK_CLOEXEC)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        # Idempotent, as a socket object's close is: create's cleanup may close
        # an end twice, and a second close(2) could hit a reused fd number.
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            leanos.close(fd)

    def send(self, kind: str, **fields: Any) -> None:
        fields["type"] = kind
        leanos.write(self.fd, jsonfast.dumps(fields).encode())

    def send_error(self, err: RuntimeFault) -> None:
        name = type(err).__name__
        if isinstance(err, errors.InvalidSpec):
            self.send(ERROR, cls="InvalidArgument", op=err.op, target=err.target, detail=err.detail, errno=err.errno)
            return
        self.send(ERROR, cls=name if name in _ERROR_CLASSES else "RuntimeFault",
                  op=err.op, target=err.target, detail=err.detail, errno=err.errno)

    def wait_exec(self, what: str = "exec process") -> None:
        """After ``ready``: return once the child's end is closed, which its
        execve does (or its death, which its exit status tells whoever reaps
        it).  A message instead is a fault."""
        data = leanos.read(self.fd, _MAX)
        if data:
            self._decode(data, ("EOF",), what)
            raise RuntimeFault(f"wait for {what}", "", "unexpected message after ready")

    def recv(self, *expected: str, what: str = "container init") -> dict[str, Any]:
        """Receive one message of one of the ``expected`` types.  An ``error``
        message is raised as the fault the child reported."""
        data = leanos.read(self.fd, _MAX)
        if not data:
            raise RuntimeFault(f"wait for {what}", "", f"it exited before sending {'/'.join(expected)}")
        return self._decode(data, expected, what)

    def _decode(self, data: bytes, expected: tuple[str, ...], what: str) -> dict[str, Any]:
        try:
            msg = jsonfast.loads(data)
        except ValueError as err:
            raise RuntimeFault(f"talk to {what}", "", f"malformed message: {err}") from err
        if not isinstance(msg, dict):
            raise RuntimeFault(f"talk to {what}", "", f"malformed message: {type(msg).__name__}, not an object")
        kind = msg.get("type")
        if kind == ERROR:
            cls = _ERROR_CLASSES.get(str(msg.get("cls")), RuntimeFault)
            op, target = str(msg.get("op", "")), str(msg.get("target", ""))
            detail, code = str(msg.get("detail", "")), int(msg.get("errno", 0))
            if cls is errors.SyscallError:
                raise errors.SyscallError(op, target, code, detail)
            raise cls(op, target, detail, code)
        if kind not in expected:
            raise RuntimeFault(f"talk to {what}", "", f"unexpected message {kind!r}, wanted {'/'.join(expected)}")
        return msg

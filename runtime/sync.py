"""The parent <-> container-init channel: a small typed protocol.

One SOCK_SEQPACKET socketpair, one JSON object per packet, each with a
``type``.  Every receive names the types it expects; anything else (or EOF,
which is what the parent sees when the child dies) is an error, so a
confused or dead child can never be mistaken for a successful one.

Child -> parent           parent -> child
  idmap   (need uid_map)    idmap-done
  pid     (stage-2 pid)
  hooks   (run prestart,    hooks-done
           createRuntime)
  ready   (about to wait
           on exec.fifo, or,
           for exec, to execve)
  EOF     (execve done: the
           end is close-on-exec)
  error   (a RuntimeFault)

``exec --detach`` returns only once the process runs its program, as runc's
does (its init pipe is close-on-exec too): a caller reading the pid file
then finds the program, not the runtime's init, at that pid.
"""

from __future__ import annotations

from .kernel import errors, syscalls
from .kernel.errors import RuntimeFault
from .kernel.lean import jsonfast, leanos

TYPE_CHECKING = False  # see runtime/records.py: keeps typing out of the start path
if TYPE_CHECKING:
    from typing import Any

_MAX = 1 << 16

_ERROR_CLASSES: dict[str, type[RuntimeFault]] = {
    cls.__name__: cls for cls in (
        errors.RuntimeFault, errors.InvalidArgument, errors.NotFound, errors.AlreadyExists,
        errors.FailedPrecondition, errors.Unsupported, errors.SyscallError, errors.HookFailed,
    )
}


class Channel:
    """One end of the pair, as a raw fd.  On a SOCK_SEQPACKET socket, write(2)
    sends one packet and read(2) receives one, as send and recv would; the
    socket module (whose import is ~0.15 ms of every create) is not needed."""

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
            self.send("error", cls="InvalidArgument", op=err.op, target=err.target, detail=err.detail, errno=err.errno)
            return
        self.send("error", cls=name if name in _ERROR_CLASSES else "RuntimeFault",
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
        if kind == "error":
            cls = _ERROR_CLASSES.get(str(msg.get("cls")), RuntimeFault)
            op, target = str(msg.get("op", "")), str(msg.get("target", ""))
            detail, code = str(msg.get("detail", "")), int(msg.get("errno", 0))
            if cls is errors.SyscallError:
                raise errors.SyscallError(op, target, code, detail)
            raise cls(op, target, detail, code)
        if kind not in expected:
            raise RuntimeFault(f"talk to {what}", "", f"unexpected message {kind!r}, wanted {'/'.join(expected)}")
        return msg

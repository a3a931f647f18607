"""The daemon <-> shim protocol: framing, messages, methods and error codes.

Pure: bytes in, messages out (h11-style); no sockets here.  Both ends use it:
the shim (``dockyard.shim``) and the daemon's client (``cri/shim_client.py``).

Transport: a unix stream socket at ``<state_dir>/shims/<pod_id>/shim.sock``.
A spare shim, started before its pod exists, serves in
``<state_dir>/shims/.spare-<hex>``; the daemon renames that directory to the
pod's (the shim's socket and working directory move with it) and says so
with ``claim``.
Frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON (an
object).  Three kinds of message::

    request   {"v": 1, "id": int, "method": str, "params": {...}}
    response  {"v": 1, "id": int, "result": {...}}
              {"v": 1, "id": int, "error": {"code": Code, "message": str}}
    event     {"event": "exit", "container_id", "exec_id", "pid", "exit_status", "exited_at"}
              {"event": "oom", "container_id"}
              {"event": "output", "container_id", "stream": "stdout"|"stderr", "data": base64}

``exec_sync`` (protocol 2) is ``exec`` with capture, ``wait`` and ``delete``
in one request, as kubelet's exec probes need them: its answer comes when
the process has exited, carries the output, and the shim has forgotten the
exec by then.  With ``timeout_ms``, the shim SIGKILLs the process at that
deadline and answers ``timed_out``.

Exit and oom events are sent on a connection that called ``subscribe``;
output events (and the container's exit) on one that called ``attach``.  Responses
may come out of request order: ``wait`` is answered when the process exits,
while later requests on the same connection are answered at once.

Passing fds (``exec`` with ``io: "fds"``): the response frame is written
with one sendmsg(2) carrying the fds as SCM_RIGHTS, so they ride on the
frame's first byte; its result names them in order, ``"fds": ["stdin",
"stdout", "stderr"]`` (a subset: only the streams asked for) or ``["pty"]``.
A unix stream socket delivers ancillary data with the recvmsg(2) that reads
the first byte of the send it came with, and that recvmsg stops at the end
of that send, so a client reading with recvmsg (``socket.recv_fds``) has the
fds in hand by the time the frame is complete: it keeps the fds it received
in a queue and takes ``len(result["fds"])`` of them for that frame.  The
shim closes its copies once they are sent; the caller owns them.

Attach (``attach``): after its response, the connection receives the
container's output as output events, then the container's exit event, and
is closed by the client to detach.  A slow attach client never holds the
shim, the container or its log back: while more than ATTACH_BUFFER bytes
wait to be sent to it, output for it is dropped (the exit event counts the
dropped bytes in ``output_dropped``).

Times are unix nanoseconds (0 = not yet).  ``exit_status`` follows the shell:
the exit code, or 128 + the signal that killed the process.

Types at the boundary: each method's params and result are records
(``METHODS``: method -> (params record, result record)).  The receiver
checks what it receives against them: the shim parses a request into its
params record (``parse_request``: unknown methods and params, wrong types
and values are INVALID_ARGUMENT replies naming the field) and dispatches it
through an explicit table; the daemon checks a result against its record
(``parse_reply(message, method)``: a result of the wrong shape is an
INTERNAL error, the shim's fault).  ``v`` is the protocol version: a request
carries the version that brought its method (``METHOD_SINCE``; 1 for most),
so that a newer daemon still speaks to an older shim, and one without ``v``
is version 1 (a daemon older than the field).  A shim refuses a request
newer than its own version, since a shim may outlive the daemon that started
it and meet a newer one; ``ping`` tells the daemon which version a shim
speaks before it sends a method the shim may not know.

Why JSON and not gRPC: one shim runs per pod and its memory is paid per pod;
grpcio and protobuf would cost the shim ~20 MiB of RSS, this framing nothing.
"""

from __future__ import annotations

from dockyard.runtime.kernel.lean import jsonfast
from dockyard.runtime.kernel.lean.records import Record, to_dict

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    R = TypeVar("R", bound=Record)

PROTOCOL_VERSION = 2
# Methods newer than protocol 1, with the version that brought them.
METHOD_SINCE: dict[str, int] = {"exec_sync": 2}
HEADER_SIZE = 4
# Large enough for a wait result carrying 2 x 16 MiB of captured exec output in base64.
MAX_FRAME = 64 << 20
CAPTURE_LIMIT = 16 << 20
# Unsent bytes an attach connection may hold before its output is dropped.
ATTACH_BUFFER = 1 << 20
# Where a process's stdio lives for ``exec``: "capture" = the shim holds it
# (and keeps the output when ``capture`` is true: today's behaviour);
# "fds" = the caller gets its ends over SCM_RIGHTS.
EXEC_IO = ("capture", "fds")
STREAMS = ("stdout", "stderr")

SOCKET_NAME = "shim.sock"
PID_FILE = "shim.pid"
CONTAINERS_DIR = "containers"


class Code:
    """Error codes (plain strings); the daemon maps each to its own domain error in one place.

    Not an enum: ``enum`` stays off the shim's imports
    (runtime/kernel/lean/README.md).  ``CODES`` lists them; ``parse_reply``
    hands out these very objects, so ``err.code is Code.NOT_FOUND`` holds on both ends.
    """

    NOT_FOUND = "NotFound"
    ALREADY_EXISTS = "AlreadyExists"
    INVALID_ARGUMENT = "InvalidArgument"
    FAILED_PRECONDITION = "FailedPrecondition"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    INTERNAL = "Internal"
    UNAVAILABLE = "Unavailable"


CODES = (Code.NOT_FOUND, Code.ALREADY_EXISTS, Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION,
         Code.DEADLINE_EXCEEDED, Code.INTERNAL, Code.UNAVAILABLE)
_CODE_BY_VALUE = {code: code for code in CODES}


class ShimError(Exception):
    """An error with a protocol code: raised by the shim's handlers, and by clients on an error response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ProtocolError(ShimError):
    """The peer sent bytes that are not a valid frame or message (its fault; the connection is dropped)."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.INVALID_ARGUMENT, message)


def shim_dir(state_dir: str, pod_id: str) -> str:
    return f"{state_dir.rstrip('/')}/shims/{pod_id}"


def socket_path(shim_dir: str) -> str:
    return f"{shim_dir}/{SOCKET_NAME}"


# --- framing -----------------------------------------------------------------


def encode(message: dict[str, Any]) -> bytes:
    """One frame holding ``message``."""
    # Compact frames, as json.dumps(message, separators=(",", ":")) writes
    # them, without importing json (and re, enum) into the shim.
    body = jsonfast.dumps(message, compact=True).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return len(body).to_bytes(HEADER_SIZE, "big") + body


class FrameBuffer:
    """Bytes in (in any chunking), complete messages out."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out: list[dict[str, Any]] = []
        while len(self._buf) >= HEADER_SIZE:
            size = int.from_bytes(self._buf[:HEADER_SIZE], "big")
            if size > MAX_FRAME:
                raise ProtocolError(f"frame of {size} bytes exceeds the {MAX_FRAME}-byte limit")
            end = HEADER_SIZE + size
            if len(self._buf) < end:
                break
            body = bytes(self._buf[HEADER_SIZE:end])
            del self._buf[:end]
            out.append(_decode_body(body))
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back (non-zero at EOF means the peer cut a frame)."""
        return len(self._buf)


def _decode_body(body: bytes) -> dict[str, Any]:
    try:
        message = jsonfast.loads(body.decode())
    except (UnicodeDecodeError, ValueError) as err:
        raise ProtocolError(f"frame is not UTF-8 JSON: {err}") from err
    if not isinstance(message, dict):
        raise ProtocolError(f"frame holds a JSON {type(message).__name__}, not an object")
    return message


# --- messages ----------------------------------------------------------------


def request(req_id: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"v": METHOD_SINCE.get(method, 1), "id": req_id, "method": method, "params": params or {}}


def response(req_id: int, result: Record | dict[str, Any]) -> dict[str, Any]:
    """A result, a record of the method's result type (or, from tests and old callers, a dict)."""
    return {"v": PROTOCOL_VERSION, "id": req_id, "result": to_wire(result) if isinstance(result, Record) else result}


def error_response(req_id: int, err: ShimError) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": req_id, "error": {"code": str(err.code), "message": err.message}}


def exit_event(container_id: str, exec_id: str, pid: int, exit_status: int, exited_at: int) -> dict[str, Any]:
    return {"event": "exit", "container_id": container_id, "exec_id": exec_id, "pid": pid,
            "exit_status": exit_status, "exited_at": exited_at}


def oom_event(container_id: str) -> dict[str, Any]:
    return {"event": "oom", "container_id": container_id}


def output_event(container_id: str, stream: str, data_b64: str) -> dict[str, Any]:
    return {"event": "output", "container_id": container_id, "stream": stream, "data": data_b64}


def is_event(message: dict[str, Any]) -> bool:
    return "event" in message


# --- records: each method's params and result ------------------------------------
#
# A record's annotations are its schema: str, int, bool, dict[str, Any], a
# list of one of those or of a record, and "| None" for a field that may be
# left out (it defaults to None and is not written).  A field without a
# default is required.  ``check`` holds what types cannot say.

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _valid_id(value: str) -> bool:
    # Ids name files in the shim's directory: the runtime's rule, so they cannot escape it.
    return bool(value) and value not in (".", "..") and len(value) <= 256 and set(value) <= _ID_CHARS


class Message(Record):
    """Base of the params and result records."""

    def check(self, method: str) -> None:
        """Rules beyond the field types; raises ShimError(INVALID_ARGUMENT)."""


class NoParams(Message):
    pass


class ContainerRef(Message):
    container_id: str

    def check(self, method: str) -> None:
        if not _valid_id(self.container_id):
            raise ShimError(Code.INVALID_ARGUMENT, f"{method}: invalid container_id {self.container_id!r}")


class ProcessRef(Message):
    """A container's init (``exec_id`` empty) or one of its execs."""

    container_id: str
    exec_id: str = ""

    def check(self, method: str) -> None:
        _check_ids(method, self.container_id, self.exec_id)


def _check_ids(method: str, container_id: str, exec_id: str) -> None:
    if not _valid_id(container_id):
        raise ShimError(Code.INVALID_ARGUMENT, f"{method}: invalid container_id {container_id!r}")
    if exec_id and not _valid_id(exec_id):
        raise ShimError(Code.INVALID_ARGUMENT, f"{method}: invalid exec_id {exec_id!r}")


class CreateParams(ContainerRef):
    # start: create and start in one runtime call (`run --detach`): a pod's
    # pause container needs no gap between the two, and it saves a runtime process.
    bundle: str
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    log_path: str = ""
    start: bool = False
    # restore: a checkpoint's image directory; the task is made from it
    # (`restore --detach`) instead of the bundle's process (implies start).
    restore: str = ""

    def check(self, method: str) -> None:
        super().check(method)
        if self.restore and not self.restore.startswith("/"):
            raise ShimError(Code.INVALID_ARGUMENT, f"{method}: restore must be an absolute path")
        if self.restore and self.tty:
            raise ShimError(Code.INVALID_ARGUMENT, f"{method}: a restored container has no terminal (tty)")


class CheckpointParams(ContainerRef):
    """Dump a running container's processes (the runtime's ``checkpoint``) into
    ``image_path``; criu's log and scratch files go to ``work_path``.
    ``timeout``: whole seconds before the runtime is killed (0: the shim's own limit)."""

    image_path: str
    work_path: str
    leave_running: bool = True
    timeout: int = 0

    def check(self, method: str) -> None:
        super().check(method)
        for name in ("image_path", "work_path"):
            if not getattr(self, name).startswith("/"):
                raise ShimError(Code.INVALID_ARGUMENT, f"{method}: {name} must be an absolute path")
        if self.timeout < 0:
            raise ShimError(Code.INVALID_ARGUMENT, f"{method}: timeout must not be negative")


class KillParams(ProcessRef):
    signal: int = 15
    all: bool = False

    def check(self, method: str) -> None:
        super().check(method)
        if not 0 < self.signal < 65:
            raise ShimError(Code.INVALID_ARGUMENT, f"kill: signal {self.signal} is not in 1..64")


class ExecParams(ContainerRef):
    """``io``: where the process's stdio lives (EXEC_IO): "capture", the shim
    holds it (and keeps the output when ``capture``); "fds", the caller gets
    its ends over SCM_RIGHTS."""

    exec_id: str
    process: dict[str, Any]
    tty: bool = False
    stdin: bool = False
    capture: bool = False
    io: str = "capture"
    stdout: bool = True
    stderr: bool = True

    def check(self, method: str) -> None:
        _check_ids(method, self.container_id, self.exec_id)
        if self.io not in EXEC_IO:
            raise ShimError(Code.INVALID_ARGUMENT, f"exec: io {self.io!r} is not one of {', '.join(EXEC_IO)}")
        if self.io == "fds" and self.capture:
            raise ShimError(Code.INVALID_ARGUMENT, "exec: capture and io=fds exclude each other")


class ExecSyncParams(ContainerRef):
    """A captured exec that is waited for and forgotten in one request;
    ``timeout_ms`` > 0: SIGKILLed at that deadline (and ``timed_out``)."""

    exec_id: str
    process: dict[str, Any]
    timeout_ms: int = 0

    def check(self, method: str) -> None:
        _check_ids(method, self.container_id, self.exec_id)
        if not self.exec_id:  # "" names the init
            raise ShimError(Code.INVALID_ARGUMENT, f"{method}: invalid exec_id ''")
        if self.timeout_ms < 0:
            raise ShimError(Code.INVALID_ARGUMENT, f"exec_sync: timeout_ms {self.timeout_ms} is negative")


class AttachParams(ContainerRef):
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True


class ResizePtyParams(ContainerRef):
    width: int
    height: int
    exec_id: str = ""

    def check(self, method: str) -> None:
        _check_ids(method, self.container_id, self.exec_id)
        if not (0 < self.width < 65536 and 0 < self.height < 65536):
            raise ShimError(Code.INVALID_ARGUMENT, f"resize_pty: size {self.width}x{self.height} out of range")


class WriteStdinParams(ContainerRef):
    data: str  # base64
    exec_id: str = ""

    def check(self, method: str) -> None:
        _check_ids(method, self.container_id, self.exec_id)


class ClaimParams(Message):
    """A spare shim (started ahead, serving in a directory of its own) now
    belongs to a pod: the daemon has renamed its directory to ``dir``, and the
    shim's state and the runtime's log go there from now on."""

    dir: str

    def check(self, method: str) -> None:
        if not self.dir.startswith("/"):
            raise ShimError(Code.INVALID_ARGUMENT, f"{method}: dir must be an absolute path")


class UpdateParams(ContainerRef):
    resources: dict[str, Any]


class PingResult(Message):
    pid: int
    version: str
    protocol: int


class PidResult(Message):
    pid: int


class ExecResult(Message):
    pid: int
    fds: list[str] | None = None  # io=fds: the names of the fds the frame carries, in order


class NoResult(Message):
    pass


class ProcessStatus(Message):
    """A process's state; the container-only fields are None for an exec."""

    container_id: str
    exec_id: str
    pid: int
    status: str
    exit_status: int
    exited_at: int
    bundle: str | None = None
    created_at: int | None = None
    started_at: int | None = None
    oom_killed: bool | None = None
    log_path: str | None = None
    tty: bool | None = None
    execs: list[str] | None = None


class ListResult(Message):
    containers: list[ProcessStatus]


class ExitResult(Message):
    exit_status: int
    exited_at: int


class WaitResult(ExitResult):
    """``oom_killed`` for a container; the output, base64, for a captured exec."""

    oom_killed: bool | None = None
    stdout: str | None = None
    stdout_dropped: int | None = None
    stderr: str | None = None
    stderr_dropped: int | None = None


class ExecSyncResult(ExitResult):
    """The exit and the output (base64); ``timed_out``: killed at ``timeout_ms``."""

    stdout: str
    stdout_dropped: int
    stderr: str
    stderr_dropped: int
    timed_out: bool = False


class AttachResult(Message):
    pid: int
    tty: bool


class StatsResult(Message):
    stats: dict[str, Any]


METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "ping": (NoParams, PingResult),
    "create": (CreateParams, PidResult),
    "start": (ContainerRef, PidResult),
    "state": (ProcessRef, ProcessStatus),
    "list": (NoParams, ListResult),
    "kill": (KillParams, NoResult),
    "delete": (ProcessRef, ExitResult),
    "exec": (ExecParams, ExecResult),
    "exec_sync": (ExecSyncParams, ExecSyncResult),
    "attach": (AttachParams, AttachResult),
    "wait": (ProcessRef, WaitResult),
    "resize_pty": (ResizePtyParams, NoResult),
    "write_stdin": (WriteStdinParams, NoResult),
    "close_stdin": (ProcessRef, NoResult),
    "update": (UpdateParams, NoResult),
    "checkpoint": (CheckpointParams, NoResult),
    "reopen_log": (ContainerRef, NoResult),
    "stats": (ContainerRef, StatsResult),
    "subscribe": (NoParams, NoResult),
    "shutdown": (NoParams, NoResult),
    "claim": (ClaimParams, NoResult),
}


class Request(Record):
    """A request as the shim received it, checked: ``params`` is an instance
    of the method's params record."""

    id: int
    method: str
    params: Any
    version: int = PROTOCOL_VERSION


# --- records <-> wire ---------------------------------------------------------

_SCALARS: dict[str, type] = {"str": str, "int": int, "bool": bool, "dict[str, Any]": dict}
# Per record class: (field, type text, optional, default or _REQUIRED), in field order.
_SCHEMAS: dict[type, list[tuple[str, str, bool, object]]] = {}
_REQUIRED = object()


def _schema(cls: type[Message]) -> list[tuple[str, str, bool, object]]:
    found = _SCHEMAS.get(cls)
    if found is None:
        notes: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            notes.update(getattr(klass, "__annotations__", {}))
        found = []
        for name in cls._fields:
            text = notes[name]
            optional = text.endswith(" | None")
            found.append((name, text[:-len(" | None")] if optional else text, optional,
                          cls._defaults.get(name, _REQUIRED)))
        _SCHEMAS[cls] = found
    return found


def _kind_name(text: str) -> str:
    return {"dict[str, Any]": "object", "str": "str", "int": "int", "bool": "bool"}.get(text, text)


def _convert(value: object, text: str, where: str, fail: type[ShimError]) -> object:
    """``value`` checked against the type ``text``; records come back as records."""
    if text.startswith("list[") and text.endswith("]"):
        if not isinstance(value, list):
            raise _type_error(fail, where, "list", value)
        inner = text[5:-1]
        return [_convert(item, inner, f"{where}[{i}]", fail) for i, item in enumerate(value)]
    scalar = _SCALARS.get(text)
    if scalar is not None:
        # bool is an int subclass in Python, but not in JSON: refuse true for a signal number.
        if not isinstance(value, scalar) or (scalar is int and isinstance(value, bool)):
            raise _type_error(fail, where, _kind_name(text), value)
        return value
    record = _RECORDS[text]
    if not isinstance(value, dict):
        raise _type_error(fail, where, "object", value)
    return _build(record, value, where, fail)


def _type_error(fail: type[ShimError], where: str, kind: str, value: object) -> ShimError:
    return _error(fail, f"{where} must be {kind}, not {type(value).__name__}")


def _error(fail: type[ShimError], text: str) -> ShimError:
    return ProtocolError(text) if fail is ProtocolError else ShimError(Code.INVALID_ARGUMENT, text)


def _build(cls: type[R], fields: dict[str, Any], where: str, fail: type[ShimError]) -> R:
    schema = _schema(cls)  # type: ignore[arg-type]
    names = {name for name, _, _, _ in schema}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise _error(fail, f"{where}: unknown params {', '.join(unknown)}" if fail is ShimError
                     else f"{where}: unknown fields {', '.join(unknown)}")
    values: dict[str, object] = {}
    for name, text, optional, default in schema:
        if name not in fields or (optional and fields[name] is None):
            if default is _REQUIRED:
                raise _error(fail, f"{where}: missing param {name!r}" if fail is ShimError
                             else f"{where}: missing field {name!r}")
            continue
        label = f"{where}: param {name!r}" if fail is ShimError else f"{where}.{name}"
        values[name] = _convert(fields[name], text, label, fail)
    return cls(**values)


def to_wire(record: Record) -> dict[str, Any]:
    """The record as JSON-ready data; fields left None are not written."""
    out: dict[str, Any] = {}
    for name, value in to_dict(record).items():
        if value is None:
            continue
        if isinstance(value, list):
            value = [to_wire(v) if isinstance(v, Record) else v for v in value]
        out[name] = to_wire(value) if isinstance(value, Record) else value
    return out


def parse_request(message: dict[str, Any]) -> Request:
    """The request in ``message``, its params parsed into the method's record.

    Raises ProtocolError when there is no usable id (the connection cannot be
    answered), ShimError(INVALID_ARGUMENT) for a version this shim does not
    speak, an unknown method, or params that do not fit the method's record.
    """
    req_id = message.get("id")
    if not isinstance(req_id, int) or isinstance(req_id, bool):
        raise ProtocolError(f"request id must be an integer, not {req_id!r}")
    version = message.get("v", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= PROTOCOL_VERSION:
        raise ShimError(Code.INVALID_ARGUMENT,
                        f"protocol version {version!r} is not one this shim speaks (1..{PROTOCOL_VERSION})")
    method = message.get("method")
    if not isinstance(method, str) or method not in METHODS:
        raise ShimError(Code.INVALID_ARGUMENT, f"unknown method {method!r} (methods: {', '.join(METHODS)})")
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise ShimError(Code.INVALID_ARGUMENT, f"{method}: params must be an object")
    record = _build(METHODS[method][0], params, method, ShimError)
    record.check(method)
    return Request(req_id, method, record, version)


def parse_reply(message: dict[str, Any], method: str = "") -> tuple[int, dict[str, Any]]:
    """(id, result) of a response; raises the ShimError an error response
    carries.  With ``method``, the result must fit that method's result
    record: one that does not is INTERNAL (the shim's fault, not the caller's)."""
    req_id = message.get("id")
    if not isinstance(req_id, int):
        raise ProtocolError(f"response id must be an integer, not {req_id!r}")
    if "error" in message:
        err = message["error"]
        code = err.get("code") if isinstance(err, dict) else None
        text = err.get("message", "") if isinstance(err, dict) else str(err)
        known = _CODE_BY_VALUE.get(code) if isinstance(code, str) else None
        if known is None:
            raise ShimError(Code.INTERNAL, f"unknown error code {code!r}: {text}")
        raise ShimError(known, str(text))
    result = message.get("result")
    if not isinstance(result, dict):
        raise ProtocolError("response has neither an object result nor an error")
    if method:
        try:
            parse_result(method, result)
        except ProtocolError as err:
            raise ShimError(Code.INTERNAL, f"malformed answer: {err.message}") from err
    return req_id, result


def parse_result(method: str, result: dict[str, Any]) -> Message:
    """``result`` as the record of ``method``'s result (ProtocolError if it does not fit)."""
    if method not in METHODS:
        raise ProtocolError(f"no result record for method {method!r}")
    return _build(METHODS[method][1], result, f"{method} result", ProtocolError)


_RECORDS: dict[str, type[Message]] = {cls.__name__: cls for pair in METHODS.values() for cls in pair}

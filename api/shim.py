"""The daemon <-> shim protocol: framing, messages, methods and error codes.

Pure: bytes in, messages out (h11-style); no sockets here.  Both ends use it:
the shim (``dockyard.shim``) and the daemon's client (``cri/shim_client.py``).

Transport: a unix stream socket at ``<state_dir>/shims/<pod_id>/shim.sock``.
Frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON (an
object).  Three kinds of message::

    request   {"id": int, "method": str, "params": {...}}
    response  {"id": int, "result": {...}}
              {"id": int, "error": {"code": Code, "message": str}}
    event     {"event": "exit", "container_id", "exec_id", "pid", "exit_status", "exited_at"}
              {"event": "oom", "container_id"}
              {"event": "output", "container_id", "stream": "stdout"|"stderr", "data": base64}

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

Why JSON and not gRPC: one shim runs per pod and its memory is paid per pod;
grpcio and protobuf would cost the shim ~20 MiB of RSS, this framing nothing.
"""

from __future__ import annotations

from dockyard.runtime.kernel.lean import jsonfast

TYPE_CHECKING = False  # see runtime/records.py: typing stays out of the shim's imports
if TYPE_CHECKING:
    from typing import Any

PROTOCOL_VERSION = 1
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

    Not an enum: ``enum`` costs the shim ~4 ms of imports at every start and
    its memory in every pod.  ``CODES`` lists them; ``parse_reply`` hands out
    these very objects, so ``err.code is Code.NOT_FOUND`` holds on both ends.
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
    return {"id": req_id, "method": method, "params": params or {}}


def response(req_id: int, result: dict[str, Any]) -> dict[str, Any]:
    return {"id": req_id, "result": result}


def error_response(req_id: int, err: ShimError) -> dict[str, Any]:
    return {"id": req_id, "error": {"code": str(err.code), "message": err.message}}


def exit_event(container_id: str, exec_id: str, pid: int, exit_status: int, exited_at: int) -> dict[str, Any]:
    return {"event": "exit", "container_id": container_id, "exec_id": exec_id, "pid": pid,
            "exit_status": exit_status, "exited_at": exited_at}


def oom_event(container_id: str) -> dict[str, Any]:
    return {"event": "oom", "container_id": container_id}


def output_event(container_id: str, stream: str, data_b64: str) -> dict[str, Any]:
    return {"event": "output", "container_id": container_id, "stream": stream, "data": data_b64}


def parse_request(message: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """(id, method, validated params with defaults filled) of a request message.

    Raises ProtocolError when there is no usable id (the connection cannot be
    answered), ShimError(INVALID_ARGUMENT) for a bad method or params.
    """
    req_id = message.get("id")
    if not isinstance(req_id, int) or isinstance(req_id, bool):
        raise ProtocolError(f"request id must be an integer, not {req_id!r}")
    method = message.get("method")
    if not isinstance(method, str) or method not in METHODS:
        raise ShimError(Code.INVALID_ARGUMENT, f"unknown method {method!r} (methods: {', '.join(METHODS)})")
    params = message.get("params", {})
    if not isinstance(params, dict):
        raise ShimError(Code.INVALID_ARGUMENT, f"{method}: params must be an object")
    return req_id, method, validate_params(method, params)


def parse_reply(message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(id, result) of a response; raises the ShimError an error response carries."""
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
    return req_id, result


def is_event(message: dict[str, Any]) -> bool:
    return "event" in message


# --- methods and their params ------------------------------------------------

# A param spec: (type, default).  A default of REQUIRED makes the param mandatory.
REQUIRED = object()
_ID = (str, REQUIRED)
_EXEC_ID = (str, "")

METHODS: dict[str, dict[str, tuple[type, object]]] = {
    "ping": {},
    # "start": create and start in one runtime call (`run --detach`): a pod's
    # pause container needs no gap between the two, and it saves a runtime process.
    "create": {"container_id": _ID, "bundle": (str, REQUIRED), "stdin": (bool, False),
               "stdin_once": (bool, False), "tty": (bool, False), "log_path": (str, ""), "start": (bool, False)},
    "start": {"container_id": _ID},
    "state": {"container_id": _ID, "exec_id": _EXEC_ID},
    "list": {},
    "kill": {"container_id": _ID, "exec_id": _EXEC_ID, "signal": (int, 15), "all": (bool, False)},
    "delete": {"container_id": _ID, "exec_id": _EXEC_ID},
    "exec": {"container_id": _ID, "exec_id": (str, REQUIRED), "process": (dict, REQUIRED),
             "tty": (bool, False), "stdin": (bool, False), "capture": (bool, False), "io": (str, "capture"),
             "stdout": (bool, True), "stderr": (bool, True)},
    "attach": {"container_id": _ID, "stdin": (bool, False), "stdout": (bool, True), "stderr": (bool, True)},
    "wait": {"container_id": _ID, "exec_id": _EXEC_ID},
    "resize_pty": {"container_id": _ID, "exec_id": _EXEC_ID, "width": (int, REQUIRED), "height": (int, REQUIRED)},
    "write_stdin": {"container_id": _ID, "exec_id": _EXEC_ID, "data": (str, REQUIRED)},
    "close_stdin": {"container_id": _ID, "exec_id": _EXEC_ID},
    "update": {"container_id": _ID, "resources": (dict, REQUIRED)},
    "reopen_log": {"container_id": _ID},
    "stats": {"container_id": _ID},
    "subscribe": {},
    "shutdown": {},
}


def validate_params(method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Params checked against METHODS[method], defaults filled in; unknown keys are refused."""
    spec = METHODS[method]
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ShimError(Code.INVALID_ARGUMENT, f"{method}: unknown params {', '.join(unknown)}")
    out: dict[str, Any] = {}
    for name, (kind, default) in spec.items():
        if name not in params:
            if default is REQUIRED:
                raise ShimError(Code.INVALID_ARGUMENT, f"{method}: missing param {name!r}")
            out[name] = default
            continue
        value = params[name]
        # bool is an int subclass in Python, but not in JSON: refuse true for a signal number.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ShimError(Code.INVALID_ARGUMENT,
                            f"{method}: param {name!r} must be {kind.__name__}, not {type(value).__name__}")
        out[name] = value
    if "container_id" in out and not _valid_id(out["container_id"]):
        raise ShimError(Code.INVALID_ARGUMENT, f"{method}: invalid container_id {out['container_id']!r}")
    if out.get("exec_id") and not _valid_id(out["exec_id"]):
        raise ShimError(Code.INVALID_ARGUMENT, f"{method}: invalid exec_id {out['exec_id']!r}")
    if method == "kill" and not 0 < out["signal"] < 65:
        raise ShimError(Code.INVALID_ARGUMENT, f"kill: signal {out['signal']} is not in 1..64")
    if method == "exec":
        if out["io"] not in EXEC_IO:
            raise ShimError(Code.INVALID_ARGUMENT, f"exec: io {out['io']!r} is not one of {', '.join(EXEC_IO)}")
        if out["io"] == "fds" and out["capture"]:
            raise ShimError(Code.INVALID_ARGUMENT, "exec: capture and io=fds exclude each other")
    if method == "resize_pty" and not (0 < out["width"] < 65536 and 0 < out["height"] < 65536):
        raise ShimError(Code.INVALID_ARGUMENT, f"resize_pty: size {out['width']}x{out['height']} out of range")
    return out


_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _valid_id(value: str) -> bool:
    # Ids name files in the shim's directory: the runtime's rule, so they cannot escape it.
    return bool(value) and value not in (".", "..") and len(value) <= 256 and set(value) <= _ID_CHARS

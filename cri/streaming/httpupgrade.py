"""The HTTP/1.1 request that opens a streaming session (h11, no I/O).

A session starts as one HTTP/1.1 request on ``/exec/<token>``,
``/attach/<token>`` or ``/portforward/<token>`` that asks to switch protocols:
``Connection: Upgrade`` with ``Upgrade: SPDY/3.1`` (kubelet, crictl's default)
or ``Upgrade: websocket`` (crictl --transport websocket, newer kubelets).
This module parses that request with h11 and builds the answers: 101 with the
negotiated protocol, or an error status with a text body and
``Connection: close``.  After a 101, h11 hands back the bytes that followed
the request head; they belong to the new protocol.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import h11

MAX_HEAD = 64 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Kind(enum.Enum):
    EXEC = "exec"
    ATTACH = "attach"
    PORT_FORWARD = "portforward"


class Transport(enum.Enum):
    SPDY = "spdy"
    WEBSOCKET = "websocket"


class BadRequest(Exception):
    """The request cannot open a session; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    kind: Kind
    token: str
    transport: Transport
    protocols: list[str]          # offered: X-Stream-Protocol-Version or Sec-WebSocket-Protocol
    query: dict[str, list[str]]
    ws_key: str                   # "" for SPDY


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in headers if k == name]


def _tokens(values: list[str]) -> list[str]:
    return [t.strip() for v in values for t in v.split(",") if t.strip()]


def parse_target(target: str) -> tuple[Kind, str, dict[str, list[str]]]:
    parts = urlsplit(target)
    segs = parts.path.strip("/").split("/")
    if len(segs) != 2 or not segs[1]:
        raise BadRequest(404, f"no such streaming endpoint: {parts.path}")
    try:
        kind = Kind(segs[0])
    except ValueError as err:
        raise BadRequest(404, f"no such streaming endpoint: {parts.path}") from err
    return kind, segs[1], parse_qs(parts.query)


def interpret(request: h11.Request) -> UpgradeRequest:
    """Validate an h11 Request as a session upgrade."""
    kind, token, query = parse_target(request.target.decode("latin-1"))
    headers = list(request.headers)
    connection = {t.lower() for t in _tokens(_values(headers, b"connection"))}
    upgrade = [t.lower() for t in _tokens(_values(headers, b"upgrade"))]
    if "upgrade" not in connection or not upgrade:
        raise BadRequest(400, "this endpoint needs Connection: Upgrade with Upgrade: SPDY/3.1 or websocket")
    if "spdy/3.1" in upgrade:
        if request.method != b"POST" and request.method != b"GET":
            raise BadRequest(405, f"method {request.method.decode()} not allowed")
        return UpgradeRequest(kind, token, Transport.SPDY,
                              _tokens(_values(headers, b"x-stream-protocol-version")), query, "")
    if "websocket" in upgrade:
        if request.method != b"GET":
            raise BadRequest(405, "a WebSocket upgrade must be a GET")
        key = _values(headers, b"sec-websocket-key")
        version = _values(headers, b"sec-websocket-version")
        if len(key) != 1 or version != ["13"]:
            raise BadRequest(400, "WebSocket upgrade needs one Sec-WebSocket-Key and Sec-WebSocket-Version: 13")
        return UpgradeRequest(kind, token, Transport.WEBSOCKET,
                              _tokens(_values(headers, b"sec-websocket-protocol")), query, key[0])
    raise BadRequest(400, f"unsupported upgrade {', '.join(upgrade)}")


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")


class RequestReader:
    """Bytes -> the upgrade request (then the bytes that followed it)."""

    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.request: h11.Request | None = None

    def feed(self, data: bytes) -> h11.Request | None:
        """None until the request head is complete.  Raises BadRequest."""
        self.h11.receive_data(data)
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as err:
                raise BadRequest(err.error_status_hint, f"bad HTTP request: {err}") from err
            if event is h11.NEED_DATA:
                if not data:
                    raise BadRequest(400, "connection closed before the request was complete")
                return None
            if event is h11.PAUSED:
                return self.request
            if isinstance(event, h11.Request):
                self.request = event
                # A request with a body (rare: POST with Content-Length) is
                # not an upgrade we can switch on; h11 pauses after the head
                # of a request that asks to switch.
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise BadRequest(400, "connection closed before the request was complete")
            # Data / EndOfMessage of a request that did not ask to switch:
            if isinstance(event, h11.EndOfMessage) and self.request is not None:
                return self.request

    def accept(self, headers: list[tuple[str, str]]) -> tuple[bytes, bytes]:
        """The 101 answer, and the bytes already read past the request head."""
        out = self.h11.send(h11.InformationalResponse(status_code=101, headers=headers))
        trailing, _closed = self.h11.trailing_data
        return out or b"", bytes(trailing)

    def refuse(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
        body = (message + "\n").encode("utf-8")
        hdrs = [("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body))),
                ("connection", "close"), *headers]
        return error_response(status, body, hdrs)


def error_response(status: int, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    """A complete response written without h11's state (which may be broken
    by the very request we are refusing)."""
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
              431: "Request Header Fields Too Large", 500: "Internal Server Error",
              503: "Service Unavailable"}.get(status, "Error")
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body

"""Kubernetes' portforward protocol (portforward.k8s.io), the pure part.

Over SPDY, each forwarded connection is a *request*: the client opens an
``error`` stream and then a ``data`` stream, both with headers ``port`` and
``requestid`` (clients from before requestID existed are matched by stream id:
the data stream is the error stream's id + 2).  The server dials the port in
the pod's network namespace, copies bytes both ways on the data stream, and
writes a message on the error stream if the dial or the copy fails.

Over WebSocket (``v4.channel.k8s.io`` for port-forward) the ports come from
the URL query (``?port=80&port=8080``); port i has data channel 2i and error
channel 2i+1, and the first message on each channel is the port number as
two little-endian bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .spdy import Headers, header_value

PROTOCOL = "portforward.k8s.io"
# crictl --transport websocket (and kube-apiserver since 1.30) tunnel the SPDY
# session inside WebSocket binary messages under this subprotocol.
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
WS_CHANNEL_PROTOCOL = "v4.channel.k8s.io"


class PortForwardError(Exception):
    """A request the server refuses; the message goes on the error stream
    (or, when there is no stream yet to carry it, resets the stream)."""


def parse_port(value: str | None, *, allowed: tuple[int, ...]) -> int:
    if value is None:
        raise PortForwardError("port header is missing")
    try:
        port = int(value)
    except ValueError as err:
        raise PortForwardError(f"port {value!r} is not a number") from err
    if not 1 <= port <= 65535:
        raise PortForwardError(f"port {port} is out of range 1-65535")
    if allowed and port not in allowed:
        raise PortForwardError(f"port {port} was not among the requested ports {list(allowed)}")
    return port


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    request_id: str
    port: int
    data_stream: int
    error_stream: int


@dataclass(slots=True)
class _Half:
    port_value: str | None
    data_stream: int | None = None
    error_stream: int | None = None


@dataclass(slots=True)
class RequestPairs:
    """Pairs each request's data and error streams as they arrive."""

    allowed: tuple[int, ...] = ()
    _pending: dict[str, _Half] = field(default_factory=dict)

    def add(self, stream_id: int, headers: Headers) -> ForwardRequest | None:
        """Register a stream; the request once both of its streams are in."""
        kind = header_value(headers, "streamtype")
        if kind not in ("data", "error"):
            raise PortForwardError(f"stream {stream_id}: unknown stream type {kind!r}")
        rid = header_value(headers, "requestid")
        if rid is None:
            rid = str(stream_id if kind == "error" else stream_id - 2)
        port_value = header_value(headers, "port")
        half = self._pending.setdefault(rid, _Half(port_value))
        if half.port_value != port_value:
            raise PortForwardError(f"request {rid}: streams name ports {half.port_value} and {port_value}")
        if kind == "data":
            if half.data_stream is not None:
                raise PortForwardError(f"request {rid}: a second data stream")
            half.data_stream = stream_id
        else:
            if half.error_stream is not None:
                raise PortForwardError(f"request {rid}: a second error stream")
            half.error_stream = stream_id
        if half.data_stream is None or half.error_stream is None:
            return None
        del self._pending[rid]
        port = parse_port(port_value, allowed=self.allowed)
        return ForwardRequest(rid, port, half.data_stream, half.error_stream)

    def pending_streams(self) -> list[int]:
        return [s for h in self._pending.values() for s in (h.data_stream, h.error_stream) if s is not None]


def dial_error_message(port: int, sandbox_id: str, err: BaseException) -> str:
    return f"error forwarding port {port} to pod {sandbox_id}: {err}"


def ws_ports(query_ports: list[str], *, allowed: tuple[int, ...]) -> list[int]:
    """The ``port`` query parameters of a WebSocket port-forward request."""
    if not query_ports:
        raise PortForwardError("query parameter \"port\" is required")
    return [parse_port(v, allowed=allowed) for v in query_ports]


def ws_port_prefix(port: int) -> bytes:
    return struct.pack("<H", port)

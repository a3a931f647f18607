"""A small WebSocket remotecommand client on wsproto, for tests.

It speaks as golang.org/x/net/websocket does in Kubernetes' own e2e
framework (e2ewebsocket.OpenWebSocketForURL): a GET upgrade offering the
given Sec-WebSocket-Protocol values, then it reads binary messages, each
channel's bytes prefixed by its number, until the server closes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    RejectConnection,
    RejectData,
    Request,
)


@dataclass
class WsResult:
    status: int                       # 101, or the refusal's status
    protocol: str | None = None       # the one the server chose
    channels: dict[int, bytearray] = field(default_factory=dict)
    close_code: int | None = None
    body: bytes = b""                 # a refusal's body

    def out(self, channel: int) -> bytes:
        return bytes(self.channels.get(channel, b""))


async def ws_exec(url: str, protocols: list[str], timeout: float = 30.0) -> WsResult:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    ws = WSConnection(ConnectionType.CLIENT)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    writer.write(ws.send(Request(host=parts.netloc, target=target, subprotocols=protocols)))
    res = WsResult(status=0)
    try:
        async with asyncio.timeout(timeout):
            while res.close_code is None:
                data = await reader.read(65536)
                ws.receive_data(data or None)
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        res.status, res.protocol = 101, event.subprotocol
                    elif isinstance(event, RejectConnection):
                        res.status = event.status_code
                    elif isinstance(event, RejectData):
                        res.body += event.data
                        if event.body_finished:
                            return res
                    elif isinstance(event, BytesMessage):
                        msg = bytes(event.data)
                        res.channels.setdefault(msg[0], bytearray()).extend(msg[1:])
                    elif isinstance(event, CloseConnection):
                        res.close_code = event.code
                        writer.write(ws.send(event.response()))
                if not data:
                    break
    finally:
        writer.close()
    return res

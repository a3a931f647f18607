"""A small remotecommand/portforward client on our own spdy.py, for tests.

It speaks as client-go does: HTTP upgrade to SPDY/3.1 with
X-Stream-Protocol-Version, then the error stream first, then stdin, stdout,
stderr and resize, each named by its streamtype header.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from dockyard.cri.streaming import spdy


@dataclass
class Result:
    status: int                      # HTTP status of the upgrade
    headers: dict[str, str]
    streams: dict[str, bytearray] = field(default_factory=dict)
    goaway: bool = False
    reset: list[int] = field(default_factory=list)

    def out(self, name: str) -> bytes:
        return bytes(self.streams.get(name, b""))

    def error_json(self) -> dict[str, object]:
        return json.loads(self.out("error")) if self.out("error") else {}


async def upgrade(url: str, protocols: list[str], *, method: str = "POST"
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, dict[str, str], bytes]:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: Upgrade",
            "Upgrade: SPDY/3.1", "Content-Length: 0"]
    head += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    await writer.drain()
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await reader.read(4096)
        if not chunk:
            break
        buf += chunk
    head_b, _, rest = buf.partition(b"\r\n\r\n")
    lines = head_b.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if status != 101:
        rest += await reader.read()
    return reader, writer, status, headers, rest


async def run_exec(url: str, *, stdin: bytes | None = None, stdout: bool = True, stderr: bool = True,
                   tty: bool = False, resize: list[tuple[int, int]] | None = None,
                   protocols: tuple[str, ...] = ("v4.channel.k8s.io",),
                   stdin_chunks: list[bytes] | None = None, timeout: float = 30.0) -> Result:
    reader, writer, status, headers, rest = await upgrade(url, list(protocols))
    res = Result(status, headers)
    if status != 101:
        res.streams["body"] = bytearray(rest)
        writer.close()
        return res
    conn = spdy.Connection(client=True)
    names: dict[int, str] = {}

    def open_stream(kind: str) -> int:
        sid = conn.open_stream((("streamtype", kind),))
        names[sid] = kind
        res.streams[kind] = bytearray()
        return sid

    open_stream("error")
    sin = open_stream("stdin") if stdin is not None or stdin_chunks is not None else None
    if stdout:
        open_stream("stdout")
    if stderr and not tty:
        open_stream("stderr")
    rsz = open_stream("resize") if tty and protocols[0] != "v2.channel.k8s.io" else None
    if rsz is not None and resize:
        conn.send_data(rsz, b"".join(json.dumps({"Width": w, "Height": h}).encode() for w, h in resize))
    if sin is not None:
        for chunk in stdin_chunks or [stdin or b""]:
            conn.send_data(sin, chunk)
        if stdin_chunks is None:
            conn.send_data(sin, b"", fin=True)
    writer.write(conn.data_to_send())
    await writer.drain()
    async with asyncio.timeout(timeout):
        data = rest
        while True:
            for ev in conn.receive_data(data):
                if isinstance(ev, spdy.Data) and ev.stream_id in names:
                    res.streams[names[ev.stream_id]] += ev.data
                elif isinstance(ev, spdy.GoAway):
                    res.goaway = True
                elif isinstance(ev, spdy.RstStream):
                    res.reset.append(ev.stream_id)
            out = conn.data_to_send()
            if out:
                writer.write(out)
            data = await reader.read(65536)
            if not data:
                break
    writer.close()
    return res

"""WebSocket channel framing (v4/v5.channel.k8s.io), subprotocol choice, upgrade parsing."""

from __future__ import annotations

import h11
import pytest

from dockyard.cri.streaming import httpupgrade as hu, websocket as ws


@pytest.mark.parametrize("message,v5,want", [
    (b"\x00abc", True, ws.ChannelData(0, b"abc")),
    (b"\x04{\"Width\":1}", False, ws.ChannelData(4, b'{"Width":1}')),
    (b"\x01", True, ws.ChannelData(1, b"")),
    (b"\xff\x00", True, ws.ChannelClosed(0)),
    (b"\xff\x00", False, ws.ChannelData(255, b"\x00")),   # v4 has no close signal
])
def test_decode(message: bytes, v5: bool, want: object) -> None:
    assert ws.decode(message, v5=v5) == want


@pytest.mark.parametrize("message", [b"", b"\xff", b"\xff\x00\x01"])
def test_decode_rejects(message: bytes) -> None:
    with pytest.raises(ws.ChannelError):
        ws.decode(message, v5=True)


def test_encode() -> None:
    assert ws.encode(ws.STDOUT, b"hi") == b"\x01hi"
    with pytest.raises(ValueError):
        ws.encode(256, b"")


@pytest.mark.parametrize("offered,want", [
    (["v5.channel.k8s.io", "v4.channel.k8s.io"], "v5.channel.k8s.io"),
    (["v4.channel.k8s.io"], "v4.channel.k8s.io"),
    (["channel.k8s.io"], "channel.k8s.io"),  # v1: Kubernetes' websocket exec conformance spec offers only it
    (["channel.k8s.io", "v4.channel.k8s.io"], "v4.channel.k8s.io"),
    (["base64.channel.k8s.io"], None),
])
def test_negotiate(offered: list[str], want: str | None) -> None:
    assert ws.negotiate(offered, ws.EXEC_PROTOCOLS) == want


def _request(target: str, *headers: tuple[str, str], method: str = "GET") -> h11.Request:
    return h11.Request(method=method, target=target, headers=[("host", "x"), *headers])


def test_interpret_spdy_and_websocket() -> None:
    up = hu.interpret(_request("/exec/tok?x=1", ("connection", "Upgrade"), ("upgrade", "SPDY/3.1"),
                               ("x-stream-protocol-version", "v4.channel.k8s.io"),
                               ("x-stream-protocol-version", "v3.channel.k8s.io"), method="POST"))
    assert (up.kind, up.token, up.transport) == (hu.Kind.EXEC, "tok", hu.Transport.SPDY)
    assert up.protocols == ["v4.channel.k8s.io", "v3.channel.k8s.io"] and up.query == {"x": ["1"]}
    up = hu.interpret(_request("/portforward/t2", ("connection", "keep-alive, Upgrade"), ("upgrade", "websocket"),
                               ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="), ("sec-websocket-version", "13"),
                               ("sec-websocket-protocol", "SPDY/3.1+portforward.k8s.io")))
    assert up.transport is hu.Transport.WEBSOCKET and up.protocols == ["SPDY/3.1+portforward.k8s.io"]
    # RFC 6455's own example
    assert hu.ws_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("target,headers,status", [
    ("/nope/tok", [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")], 404),
    ("/exec/", [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")], 404),
    ("/exec/a/b", [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")], 404),
    ("/exec/tok", [], 400),
    ("/exec/tok", [("connection", "Upgrade"), ("upgrade", "h2c")], 400),
    ("/exec/tok", [("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-version", "13")], 400),
])
def test_interpret_rejects(target: str, headers: list[tuple[str, str]], status: int) -> None:
    with pytest.raises(hu.BadRequest) as info:
        hu.interpret(_request(target, *headers))
    assert info.value.status == status


def test_request_reader_hands_over_trailing_bytes() -> None:
    """Bytes sent right after the request head belong to the new protocol."""
    rr = hu.RequestReader()
    raw = (b"POST /exec/t HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
           b"Content-Length: 0\r\n\r\n\x80\x03\x00\x06")
    assert rr.feed(raw[:10]) is None
    req = rr.feed(raw[10:])
    assert req is not None and req.target == b"/exec/t"
    head, trailing = rr.accept([("upgrade", "SPDY/3.1"), ("connection", "Upgrade")])
    assert head.startswith(b"HTTP/1.1 101 ") and trailing == b"\x80\x03\x00\x06"


def test_request_reader_bad_http() -> None:
    with pytest.raises(hu.BadRequest) as info:
        hu.RequestReader().feed(b"\x80\x03\x00\x01garbage\r\n\r\n")
    assert info.value.status == 400

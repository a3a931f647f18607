"""shim/cri_log.py: the CRI log line format and partial-line splitting, on bytes."""

from __future__ import annotations

import pytest

from dockyard.shim import cri_log
from dockyard.shim.cri_log import LineSplitter

NS = 1_700_000_000_123_456_000  # 2023-11-14T22:13:20.123456Z
TS = b"2023-11-14T22:13:20.123456Z"


@pytest.mark.parametrize("ns, text", [
    (NS, "2023-11-14T22:13:20.123456Z"),
    (1_700_000_000_000_000_000, "2023-11-14T22:13:20Z"),
    (1_700_000_000_000_000_001, "2023-11-14T22:13:20.000000001Z"),
    (1_700_000_000_500_000_000, "2023-11-14T22:13:20.5Z"),
    (0, "1970-01-01T00:00:00Z"),
])
def test_timestamp_is_go_rfc3339nano_utc(ns: int, text: str) -> None:
    assert cri_log.timestamp(ns) == text


def feed_all(splitter: LineSplitter, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out += splitter.feed(chunk, NS)
    return out + splitter.close(NS)


def line(tag: bytes, msg: bytes, stream: bytes = b"stdout") -> bytes:
    return TS + b" " + stream + b" " + tag + b" " + msg + b"\n"


@pytest.mark.parametrize("chunks, expected", [
    ([b"hello\n"], [line(b"F", b"hello")]),
    ([b"a\nb\n"], [line(b"F", b"a"), line(b"F", b"b")]),
    ([b"hel", b"lo\n"], [line(b"F", b"hello")]),
    ([b"\n"], [line(b"F", b"")]),
    ([b"no nl"], [line(b"P", b"no nl")]),                      # EOF: a line without its newline (containerd)
    ([b"a\nDONE"], [line(b"F", b"a"), line(b"P", b"DONE")]),
    ([b"cr\r"], [line(b"P", b"cr\r")]),                          # no newline, so the \r stays
    ([b"crlf\r\n"], [line(b"F", b"crlf")]),                     # a pty's line ending
    ([b"cr\r", b"\n"], [line(b"F", b"cr")]),
    ([b"in\rside\n"], [line(b"F", b"in\rside")]),               # only the \r before \n goes
    ([b""], []),
    ([b"x" * 8], [line(b"P", b"x" * 8)]),                       # exactly max, no newline yet, then EOF
    ([b"x" * 8 + b"\n"], [line(b"F", b"x" * 8)]),               # exactly max with its newline
    ([b"x" * 9 + b"\n"], [line(b"P", b"x" * 8), line(b"F", b"x")]),
    ([b"x" * 20 + b"\ny\n"], [line(b"P", b"x" * 8), line(b"P", b"x" * 8), line(b"F", b"x" * 4), line(b"F", b"y")]),
    ([b"x" * 5, b"x" * 5, b"\n"], [line(b"P", b"x" * 8), line(b"F", b"x" * 2)]),
    ([b"x" * 16], [line(b"P", b"x" * 8), line(b"P", b"x" * 8)]),
])
def test_splitting(chunks: list[bytes], expected: list[bytes]) -> None:
    assert feed_all(LineSplitter("stdout", max_line=8), chunks) == expected


def test_bytes_fed_one_at_a_time_give_the_same_lines() -> None:
    data = b"first line\n" + b"y" * 30 + b"\nlast"
    whole = feed_all(LineSplitter("stderr", max_line=8), [data])
    single = feed_all(LineSplitter("stderr", max_line=8), [data[i:i + 1] for i in range(len(data))])
    assert whole == single
    assert all(b" stderr " in entry for entry in whole)


def test_default_max_line_is_16k() -> None:
    out = feed_all(LineSplitter("stdout"), [b"z" * (16 * 1024 + 1) + b"\n"])
    assert [e.split(b" ", 3)[2] for e in out] == [b"P", b"F"]
    assert len(out[0].split(b" ", 3)[3]) == 16 * 1024 + 1  # 16 KiB message + newline


def test_pieces_rejoin_to_the_original_line() -> None:
    original = bytes(range(33, 127)) * 3
    out = feed_all(LineSplitter("stdout", max_line=10), [original + b"\n"])
    assert b"".join(e.split(b" ", 3)[3][:-1] for e in out) == original

"""Kubernetes' remotecommand protocol (exec and attach), the pure part.

Over SPDY the client opens one stream per stdio channel, each named by a
``streamtype`` header; over WebSocket (see websocket.py) channels are a byte
prefix.  The protocol versions, as the client negotiates them in
``X-Stream-Protocol-Version`` (SPDY) or ``Sec-WebSocket-Protocol``:

======================  =====================================================
channel.k8s.io (v1)     over SPDY refused: no error stream, its clients are
                        long gone; over WebSocket served with v2's text
                        error channel (websocket.py)
v2.channel.k8s.io       error stream carries a plain-text error message
v3.channel.k8s.io       adds the resize stream (tty only)
v4.channel.k8s.io       the error stream carries a JSON metav1.Status; a
                        non-zero exit is ``reason: NonZeroExitCode`` with an
                        ``ExitCode`` cause (kubectl's exit code comes from it)
v5.channel.k8s.io       v4 plus a close signal for stdin; over SPDY the
                        stream's FIN already is that, so it is served as v4
======================  =====================================================

The server expects exactly the streams the cached request asked for, plus
the error stream (always) and the resize stream (tty, v3+); with a tty there
is no stderr stream (both outputs are the one pty).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

V1 = "channel.k8s.io"
V2 = "v2.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"

# Server preference order: the first of these that the client offers wins.
SPDY_VERSIONS = (V5, V4, V3, V2)
STREAM_TYPE_HEADER = "streamtype"


class StreamType(enum.Enum):
    ERROR = "error"
    STDIN = "stdin"
    STDOUT = "stdout"
    STDERR = "stderr"
    RESIZE = "resize"


class NegotiationError(Exception):
    """No protocol in common; the message names both sides' lists."""

    def __init__(self, offered: list[str], supported: tuple[str, ...]) -> None:
        shown = ", ".join(offered) if offered else "none"
        super().__init__(
            f"unable to negotiate a stream protocol: client offers {shown}; "
            f"server supports {', '.join(supported)}"
        )
        self.offered = offered
        self.supported = supported


def split_versions(values: list[str]) -> list[str]:
    """Header values (repeated or comma-joined) -> protocol names."""
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


def negotiate(offered: list[str], supported: tuple[str, ...] = SPDY_VERSIONS) -> str:
    """Pick the protocol: the server's first preference the client offers.

    A client that offers nothing at all speaks v1 (the pre-versioning
    protocol), which is refused like any other unsupported version."""
    for version in supported:
        if version in offered:
            return version
    raise NegotiationError(offered, supported)


def version_number(version: str) -> int:
    return {V1: 1, V2: 2, V3: 3, V4: 4, V5: 5}[version]


@dataclass(frozen=True, slots=True)
class StdioOptions:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def expected_streams(version: str, opts: StdioOptions) -> frozenset[StreamType]:
    """The streams a conforming client opens for this request."""
    want = {StreamType.ERROR}
    if opts.stdin:
        want.add(StreamType.STDIN)
    if opts.stdout:
        want.add(StreamType.STDOUT)
    if opts.stderr and not opts.tty:
        want.add(StreamType.STDERR)
    if opts.tty and version_number(version) >= 3:
        want.add(StreamType.RESIZE)
    return frozenset(want)


class StreamSetError(Exception):
    """A stream the request did not ask for, or one asked for twice."""


@dataclass(slots=True)
class StreamSet:
    """Collects the client's streams until every expected one is there."""

    expected: frozenset[StreamType]
    streams: dict[StreamType, int]

    @classmethod
    def for_request(cls, version: str, opts: StdioOptions) -> StreamSet:
        return cls(expected_streams(version, opts), {})

    def add(self, stream_type_value: str | None, stream_id: int) -> StreamType:
        try:
            kind = StreamType(stream_type_value or "")
        except ValueError as err:
            raise StreamSetError(f"stream {stream_id}: unknown stream type {stream_type_value!r}") from err
        if kind in self.streams:
            raise StreamSetError(f"stream {stream_id}: a second {kind.value} stream")
        if kind not in self.expected:
            raise StreamSetError(f"stream {stream_id}: {kind.value} stream was not requested")
        self.streams[kind] = stream_id
        return kind

    @property
    def complete(self) -> bool:
        return set(self.streams) == set(self.expected)

    def missing(self) -> list[str]:
        return sorted(k.value for k in self.expected - set(self.streams))


# --- the error stream's payload ----------------------------------------------

NON_ZERO_EXIT_REASON = "NonZeroExitCode"
EXIT_CODE_CAUSE = "ExitCode"


def exit_status(version: str, exit_code: int) -> bytes:
    """What the error stream carries when the process exited.

    v4+: a JSON Status; v2/v3: nothing on success, the error text otherwise."""
    if version_number(version) >= 4:
        if exit_code == 0:
            return json.dumps({"metadata": {}, "status": "Success"}).encode()
        return json.dumps({
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {exit_code}",
            "reason": NON_ZERO_EXIT_REASON,
            "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(exit_code)}]},
        }).encode()
    if exit_code == 0:
        return b""
    return f"command terminated with non-zero exit code: {exit_code}".encode()


def failure_status(version: str, message: str) -> bytes:
    """The error stream's payload when the command could not run at all."""
    if version_number(version) >= 4:
        return json.dumps({
            "metadata": {}, "status": "Failure", "message": message,
            "reason": "InternalError", "code": 500,
        }).encode()
    return message.encode()


# --- the resize stream ----------------------------------------------------------

class ResizeError(Exception):
    """The resize stream carried something that is not a TerminalSize."""


_JSON = json.JSONDecoder()
MAX_RESIZE_MESSAGE = 4096


@dataclass(slots=True)
class ResizeDecoder:
    """The resize stream is a sequence of flat JSON objects
    {"Width":w,"Height":h} with no framing; this splits it whatever the read
    boundaries.  Objects are flat, so the first "}" ends one: anything before
    it that does not parse is an error, anything without it is incomplete."""

    _buf: bytes = b""

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self._buf += data
        sizes: list[tuple[int, int]] = []
        while True:
            self._buf = self._buf.lstrip()
            close = self._buf.find(b"}")
            if close < 0:
                if len(self._buf) > MAX_RESIZE_MESSAGE:
                    raise ResizeError(f"resize message over {MAX_RESIZE_MESSAGE} bytes")
                return sizes
            head, self._buf = self._buf[:close + 1], self._buf[close + 1:]
            try:
                obj, end = _JSON.raw_decode(head.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise ResizeError(f"resize stream: not a JSON object: {head[:80]!r}") from err
            if end != len(head.decode("utf-8")):
                raise ResizeError(f"resize stream: trailing bytes in {head[:80]!r}")
            sizes.append(terminal_size(obj))


def terminal_size(obj: object) -> tuple[int, int]:
    if not isinstance(obj, dict):
        raise ResizeError(f"resize message is not an object: {obj!r}")
    w, h = obj.get("Width"), obj.get("Height")
    if not (isinstance(w, int) and isinstance(h, int) and 0 <= w <= 65535 and 0 <= h <= 65535):
        raise ResizeError(f"resize message needs Width and Height in 0..65535: {obj!r}")
    return w, h

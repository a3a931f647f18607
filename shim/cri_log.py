"""The CRI container log format, from a stream's bytes (pure).

Each line of a container's log file is::

    <RFC3339Nano time> <stdout|stderr> <P|F> <message>\\n

``F`` marks the end of a line the container wrote; ``P`` a piece of a longer
line, cut at ``max_line`` bytes (containerd's 16 KiB), whose rest follows in
later entries of the same stream.  The kubelet joins P pieces to the next F.

Facts the splitter relies on:
- Reads from a pipe or pty arrive in arbitrary chunks; a line may span many
  reads, so the tail without a newline is held until its newline (or enough
  bytes for a P piece) arrives.
- A pty turns "\\n" into "\\r\\n"; like containerd (bufio ReadLine), the
  "\\r" before a newline is dropped.
- At EOF a held tail (the stream ended without a newline) is written as a
  P entry, as containerd does: kubelet ends a line only at F, so a
  container that printed "DONE" with no newline shows "DONE", not "DONE\n",
  e.g. as the termination message that FallbackToLogsOnError takes from
  the log. No "\r" is dropped there: there is no newline for it to precede.
"""

from __future__ import annotations

import time

MAX_LINE = 16 * 1024
STDOUT = "stdout"
STDERR = "stderr"


def timestamp(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction are dropped."""
    sec, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def entry(ns: int, stream: str, partial: bool, message: bytes) -> bytes:
    return b"%s %s %s %s\n" % (timestamp(ns).encode(), stream.encode(), b"P" if partial else b"F", message)


class LineSplitter:
    """One stream's bytes in, log entries out."""

    __slots__ = ("stream", "max_line", "_held")

    def __init__(self, stream: str, max_line: int = MAX_LINE) -> None:
        self.stream = stream
        self.max_line = max_line
        self._held = b""

    def feed(self, data: bytes, now_ns: int) -> list[bytes]:
        buf = self._held + data if self._held else data
        out: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0 or nl - start > self.max_line:
                # No newline within reach: emit full pieces of max_line, hold the rest.
                while len(buf) - start >= self.max_line and (nl < 0 or nl - start > self.max_line):
                    out.append(entry(now_ns, self.stream, True, buf[start:start + self.max_line]))
                    start += self.max_line
                if nl < 0 or nl - start > self.max_line:
                    break
                continue
            line = buf[start:nl]
            if line.endswith(b"\r"):
                line = line[:-1]
            out.append(entry(now_ns, self.stream, False, line))
            start = nl + 1
        self._held = buf[start:]
        return out

    def close(self, now_ns: int) -> list[bytes]:
        """EOF: the held tail, if any, as a partial line (it had no newline)."""
        held, self._held = self._held, b""
        return [entry(now_ns, self.stream, True, held)] if held else []

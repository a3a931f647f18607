"""How big one CRI message may be, and fitting an exec's output into one.

kubelet's CRI client refuses messages over 16 MiB both ways, and so does
dockyardd (daemon.py sets grpc's limits to the same figure).  ExecSync
answers with both of the command's streams in one message, so output near
the shim's capture cap (16 MiB per stream) made the reply itself too big:
grpc refused to send it ("Sent message larger than max") and the caller got
RESOURCE_EXHAUSTED instead of the command's result.  ``fit_exec_output``
trims the streams so the reply always fits, and says so on stderr.  Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Room for the reply's own fields (tags, lengths, exit code) and the note:
# a few dozen bytes are needed, a page is kept.
ENVELOPE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class ExecOutput:
    stdout: bytes
    stderr: bytes


def fit_exec_output(stdout: bytes, stderr: bytes, *, stdout_dropped: int = 0, stderr_dropped: int = 0,
                    limit: int = MAX_MESSAGE_BYTES) -> ExecOutput:
    """The streams as one reply can carry them.  Each keeps its head; when
    both must be cut each gets half of the room, and a stream that needs
    less leaves the rest to the other.  Whatever was cut here or earlier
    (``*_dropped``: the shim's cap) is reported at the end of stderr."""
    room = limit - ENVELOPE_BYTES
    if len(stdout) + len(stderr) > room:
        half = room // 2
        keep_err = min(len(stderr), max(half, room - len(stdout)))
        keep_out = min(len(stdout), room - keep_err)
        stdout_dropped += len(stdout) - keep_out
        stderr_dropped += len(stderr) - keep_err
        stdout, stderr = stdout[:keep_out], stderr[:keep_err]
    if not (stdout_dropped or stderr_dropped):
        return ExecOutput(stdout, stderr)
    cut = [f"{name} kept {len(kept)} of {len(kept) + dropped} bytes"
           for name, kept, dropped in (("stdout", stdout, stdout_dropped), ("stderr", stderr, stderr_dropped))
           if dropped]
    note = f"\n[dockyard: exec output truncated to fit one {limit}-byte reply: {'; '.join(cut)}]\n"
    return ExecOutput(stdout, stderr + note.encode())

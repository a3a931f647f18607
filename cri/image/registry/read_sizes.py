"""Speed trick: a blob's body is read in pieces of a megabyte, not 64 KiB.

Each piece of a body costs a round of Python on the event loop: asyncio's
transport and anyio's stream, httpcore and h11, httpx's iterator, the
no-progress timeout, the content store's writer and the pull metrics.  The
libraries' defaults cut a loopback body into 64 KiB pieces (httpcore asks
anyio for that much) out of 256 KiB receives (asyncio's transport), so a
235 MiB pull took about 3,800 such rounds, all of them holding the GIL that
the layers unpacking beside them need.

Measured with bench/pull.py (zstd variant, dockyardd alone, 4 rounds each,
2026-12-07): a cold pull took 3.04 s with the defaults, 2.87 s with httpcore
reading 1 MiB at a time, and 2.76 s with the blob connection's receives at
1 MiB as well.

What this relies on, pinned by tests/unit/test_read_sizes.py:
- httpcore's HTTP/1.1 connection reads ``READ_NUM_BYTES`` per call, a class
  attribute.  httpcore serves only the registry client in this process, so
  setting it for the class is setting it for blob and manifest reads.
- asyncio's selector transport passes ``self.max_size`` to ``recv``: set on
  one transport, it changes that connection alone (the shim clients and the
  streaming server keep the default).
- httpcore's anyio network stream keeps the anyio stream as ``_stream``; a
  TLS stream wraps the socket stream as ``transport_stream``; anyio's socket
  stream keeps the asyncio transport as ``_transport``.
Where one of them is missing, the body is read as before: slower, never
wrong.
"""

from __future__ import annotations

from typing import Any

import httpcore

BODY_READ = 1 << 20


def enlarge_http_reads() -> None:
    """httpcore reads up to BODY_READ bytes per call (idempotent)."""
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = max(getattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES", 0), BODY_READ)


def enlarge_receives(extensions: dict[str, Any]) -> bool:
    """Make the connection behind a response (its ``extensions``) receive up
    to BODY_READ bytes per recv; whether it could."""
    stream = getattr(extensions.get("network_stream"), "_stream", None)
    stream = getattr(stream, "transport_stream", stream)  # under TLS: the socket stream below it
    transport: Any = getattr(stream, "_transport", None)
    size = getattr(transport, "max_size", None)
    if not isinstance(size, int):
        return False
    transport.max_size = max(size, BODY_READ)
    return True

"""netns_dial: a connection to 127.0.0.1:port made inside another network namespace."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator

import pytest

from bundle import SUBREAPER
from dockyard.cri.errors import NotFound, Unavailable
from dockyard.cri.streaming.netns_dial import dial

LISTENER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4)
print("ready", flush=True)
for _ in range(2):
    c, _ = s.accept(); data = c.recv(100); c.sendall(b"in-netns:" + data); c.close()
"""


def _is_mount_point(path: str) -> bool:
    # os.path.ismount misses a bind mount of a directory onto itself (same device)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"dytest-{os.getpid()}"
    # `ip netns add` makes /run/netns a mount point of its own and never undoes it
    was_mount = _is_mount_point("/run/netns")
    assert SUBREAPER.run(["ip", "netns", "add", name], timeout=10).returncode == 0
    try:
        SUBREAPER.run(["ip", "-n", name, "link", "set", "lo", "up"], timeout=10)
        yield name
    finally:
        SUBREAPER.run(["ip", "netns", "delete", name], timeout=10)
        while not was_mount and _is_mount_point("/run/netns") and not os.listdir("/run/netns"):
            if SUBREAPER.run(["umount", "/run/netns"], timeout=10).returncode != 0:
                break


def test_dial_reaches_the_listener_in_the_netns_only(netns: str) -> None:
    """The socket is made in the pod's netns (the host has no such listener);
    the daemon's own thread stays in the host netns; missing netns is NotFound
    and a dead port is Unavailable."""
    port = 39091
    host_ns = os.readlink("/proc/self/ns/net")
    with SUBREAPER._lock:
        lst = subprocess.Popen(["ip", "netns", "exec", netns, "python3", "-c", LISTENER, str(port)],
                               stdout=subprocess.PIPE)
        SUBREAPER._owned.add(lst.pid)
    try:
        assert lst.stdout is not None and lst.stdout.readline() == b"ready\n"

        async def go() -> bytes:
            reader, writer = await dial(f"/run/netns/{netns}", port)
            writer.write(b"hello")
            await writer.drain()
            data = await reader.read()
            writer.close()
            return data
        assert asyncio.run(go()) == b"in-netns:hello"
        assert os.readlink("/proc/self/ns/net") == host_ns
        with pytest.raises(Unavailable, match=f"127.0.0.1:{port + 1}"):
            asyncio.run(dial(f"/run/netns/{netns}", port + 1))
        with pytest.raises(NotFound):
            asyncio.run(dial("/run/netns/does-not-exist-dy", port))
        with pytest.raises(OSError):   # and the host has nothing on that port
            import socket
            socket.create_connection(("127.0.0.1", port), 1).close()
    finally:
        lst.kill()
        lst.wait()
        if lst.stdout is not None:
            lst.stdout.close()
        with SUBREAPER._lock:
            SUBREAPER._owned.discard(lst.pid)

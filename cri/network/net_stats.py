"""Interface counters of a pod's network namespace.

``/proc/thread-self/net/dev`` shows the counters of the calling thread's
network namespace, so a short-lived thread joins the pod's netns
(``setns``) and reads it (see netns.py on why a thread, not a fork).
(``/sys/class/net`` would not do: sysfs shows the namespace of whoever
mounted it, which is the host's.)  Parsing is pure and table-tested.
"""

from __future__ import annotations

import os

from dockyard.runtime.kernel import syscalls
from dockyard.runtime.kernel.errors import SyscallError

from .netns import NetnsError, in_thread

# /proc/net/dev columns after "iface:": 8 receive then 8 transmit counters.
_RX = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "rx_fifo", "rx_frame", "rx_compressed", "rx_multicast")
_TX = ("tx_bytes", "tx_packets", "tx_errors", "tx_dropped", "tx_fifo", "tx_colls", "tx_carrier", "tx_compressed")
REPORTED = ("rx_bytes", "tx_bytes", "rx_errors", "tx_errors")


def parse_proc_net_dev(text: str) -> dict[str, dict[str, int]]:
    """``/proc/net/dev`` -> {iface: {rx_bytes, tx_bytes, rx_errors, tx_errors}}."""
    stats: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:  # two header lines
        name, sep, rest = line.partition(":")
        if not sep:
            continue
        numbers = rest.split()
        if len(numbers) < len(_RX) + len(_TX):
            raise ValueError(f"/proc/net/dev line for {name.strip()!r} has {len(numbers)} fields")
        values = dict(zip(_RX + _TX, (int(n) for n in numbers)))
        stats[name.strip()] = {key: values[key] for key in REPORTED}
    return stats


def net_stats(netns_path: str) -> dict[str, dict[str, int]]:
    """Counters of every interface in the netns pinned at ``netns_path``."""
    try:
        fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise NetnsError("open netns", netns_path, err.errno or 0) from err
    try:
        def read() -> bytes:
            syscalls.setns(fd, syscalls.CLONE_NEWNET, netns_path)
            with open("/proc/thread-self/net/dev", "rb") as f:
                return f.read()

        raw = in_thread(read, "read interface counters in", netns_path)
    finally:
        os.close(fd)
    return parse_proc_net_dev(raw.decode())


def net_stats_many(netns_paths: list[str]) -> list[dict[str, dict[str, int]] | None]:
    """``net_stats`` of each path (None for one that cannot be read), by one
    thread that joins each netns in turn: ListPodSandboxStats asks for every
    pod at once, and a thread per pod cost more than the reading."""

    def read_all() -> list[dict[str, dict[str, int]] | None]:
        out: list[dict[str, dict[str, int]] | None] = []
        for path in netns_paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                out.append(None)
                continue
            try:
                syscalls.setns(fd, syscalls.CLONE_NEWNET, path)
                with open("/proc/thread-self/net/dev", "rb") as f:
                    out.append(parse_proc_net_dev(f.read().decode()))
            except (OSError, ValueError, NetnsError, SyscallError):
                out.append(None)
            finally:
                os.close(fd)
        return out

    if not netns_paths:
        return []
    return in_thread(read_all, "read interface counters in", f"{len(netns_paths)} network namespaces")

"""The pod's /etc/hostname, /etc/hosts and /etc/resolv.conf; and /proc/net/dev parsing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from dockyard.cri.errors import InvalidArgument
from dockyard.cri.network.net_stats import parse_proc_net_dev
from dockyard.cri.network.pod_files import (
    HOSTS_HEADER,
    MAX_SEARCHES,
    host_resolv_for_pod,
    hostname_file,
    hosts_file,
    limit_searches,
    pod_hostname,
    resolv_conf,
)


@dataclass
class DNS:
    servers: Sequence[str] = field(default_factory=list)
    searches: Sequence[str] = field(default_factory=list)
    options: Sequence[str] = field(default_factory=list)


HOST_RESOLV = "# from the host\nnameserver 192.0.2.53\nsearch a b c d e f g h\noptions ndots:2\n"


@pytest.mark.parametrize(
    ("configured", "host", "want"),
    [("web-0", "node1", "web-0"), ("", "node1\n", "node1"), ("x" * 64, "", "x" * 64)],
)
def test_pod_hostname(configured: str, host: str, want: str) -> None:
    assert pod_hostname(configured, host) == want


@pytest.mark.parametrize(
    ("configured", "host", "match"),
    [("", "", "empty"), ("x" * 65, "", "at most 64"), ("a b", "", "whitespace"), ("a/b", "", "'/'")],
)
def test_pod_hostname_rejects(configured: str, host: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        pod_hostname(configured, host)


def test_hostname_file() -> None:
    assert hostname_file("web-0") == "web-0\n"


def test_hosts_file_has_localhost_and_the_pod_ips() -> None:
    text = hosts_file("web-0", ["10.88.0.5", "fd00::5"])
    lines = text.splitlines()
    assert text.startswith(HOSTS_HEADER)
    assert "127.0.0.1\tlocalhost" in lines and "::1\tlocalhost ip6-localhost ip6-loopback" in lines
    assert lines[-2:] == ["10.88.0.5\tweb-0", "fd00::5\tweb-0"]


def test_hosts_file_without_ips_has_no_hostname_line() -> None:
    assert "web-0" not in hosts_file("web-0")


def test_hosts_file_rejects_a_non_ip() -> None:
    with pytest.raises(InvalidArgument, match=r"ips\[0\]"):
        hosts_file("h", ["10.88.0"])


@pytest.mark.parametrize(
    ("searches", "kept", "dropped"),
    [
        ([], [], []),
        (list("abcdef"), list("abcdef"), []),
        (list("abcdefgh"), list("abcdef"), ["g", "h"]),
        (["a", "a", "b"], ["a", "b"], []),
    ],
)
def test_limit_searches(searches: list[str], kept: list[str], dropped: list[str]) -> None:
    assert limit_searches(searches) == (kept, dropped)
    assert len(limit_searches(searches)[0]) <= MAX_SEARCHES


@pytest.mark.parametrize(
    ("dns", "want"),
    [
        (DNS(servers=["10.96.0.10"], searches=["default.svc.cluster.local", "svc.cluster.local"],
             options=["ndots:5"]),
         "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n"),
        (DNS(servers=["10.96.0.10", "fd00::a"]), "nameserver 10.96.0.10\nnameserver fd00::a\n"),
        (DNS(searches=[f"d{i}" for i in range(8)]), "search d0 d1 d2 d3 d4 d5\n"),
        (DNS(options=["ndots:1", "edns0"]), "options ndots:1 edns0\n"),
        # nothing set: the host's file, search list cut to 6
        (DNS(), "# from the host\nnameserver 192.0.2.53\nsearch a b c d e f\noptions ndots:2\n"),
        (None, "# from the host\nnameserver 192.0.2.53\nsearch a b c d e f\noptions ndots:2\n"),
    ],
)
def test_resolv_conf(dns: DNS | None, want: str) -> None:
    assert resolv_conf(dns, HOST_RESOLV) == want


@pytest.mark.parametrize(
    ("dns", "field"),
    [
        (DNS(servers=["10.96.0.10", "dns.example"]), r"dns_config.servers\[1\]"),
        (DNS(searches=["a b"]), r"dns_config.searches\[0\]"),
        (DNS(searches=["ok", ""]), r"dns_config.searches\[1\]"),
        (DNS(options=["nd ots"]), r"dns_config.options\[0\]"),
    ],
)
def test_resolv_conf_names_the_bad_field(dns: DNS, field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        resolv_conf(dns, HOST_RESOLV)


@pytest.mark.parametrize(
    ("host", "want"),
    [
        ("", ""),
        ("nameserver 1.1.1.1", "nameserver 1.1.1.1\n"),
        ("search\nnameserver 1.1.1.1\n", "nameserver 1.1.1.1\n"),
        ("domain example\nsearch a a b\n", "domain example\nsearch a b\n"),
    ],
)
def test_host_resolv_for_pod(host: str, want: str) -> None:
    assert host_resolv_for_pod(host) == want


PROC_NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:    1466      17    3    0    0     0          0         0      586       7    1    0    0     0       0          0
"""


def test_parse_proc_net_dev() -> None:
    assert parse_proc_net_dev(PROC_NET_DEV) == {
        "lo": {"rx_bytes": 140, "tx_bytes": 140, "rx_errors": 0, "tx_errors": 0},
        "eth0": {"rx_bytes": 1466, "tx_bytes": 586, "rx_errors": 3, "tx_errors": 1},
    }


def test_parse_proc_net_dev_rejects_short_lines() -> None:
    with pytest.raises(ValueError, match="eth0"):
        parse_proc_net_dev(PROC_NET_DEV.splitlines()[0] + "\n\n eth0: 1 2 3\n")

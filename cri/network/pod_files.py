"""The files a pod's containers share: /etc/hostname, /etc/hosts, /etc/resolv.conf.

Pure: the daemon passes in what it read (the host's resolv.conf and hostname)
and writes what comes out.  Errors name the CRI field
(``dns_config.servers[1]``, ``hostname``).

The 6-search-domain limit: glibc before 2.26 read at most 6 ``search``
domains (and 256 characters), musl still reads at most 6 and ignores the
rest.  kubelet truncates and warns; containerd refuses the pod.  We truncate,
like kubelet, because the pod is still useful with the first 6 (they are the
most specific ones in kubelet's ordering) and refusing it turns a DNS detail
into a pod that never starts; ``limit_searches`` returns what was dropped so
the caller can say so.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Protocol

from dockyard.cri.errors import InvalidArgument

MAX_SEARCHES = 6
MAX_HOSTNAME = 64  # HOST_NAME_MAX

HOSTS_HEADER = "# Kubernetes-managed hosts file (written by dockyardd).\n"
_HOSTS_BASE = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


class DNSConfigLike(Protocol):
    """The CRI's DNSConfig (protobuf repeated fields read as sequences)."""

    @property
    def servers(self) -> Sequence[str]: ...
    @property
    def searches(self) -> Sequence[str]: ...
    @property
    def options(self) -> Sequence[str]: ...


def pod_hostname(configured: str, host_hostname: str) -> str:
    """The pod's hostname: the config's, or the host's when it sets none (host network)."""
    name = configured or host_hostname.strip()
    if not name:
        raise InvalidArgument("hostname: empty, and the host has none to fall back on")
    if len(name) > MAX_HOSTNAME:
        raise InvalidArgument(f"hostname: {len(name)} characters, at most {MAX_HOSTNAME}")
    if any(c.isspace() or c in "/\x00" for c in name):
        raise InvalidArgument(f"hostname: {name!r} contains whitespace, '/' or NUL")
    return name


def hostname_file(hostname: str) -> str:
    return hostname + "\n"


def hosts_file(hostname: str, ips: Sequence[str] = ()) -> str:
    """/etc/hosts: localhost lines, then each pod IP with the hostname."""
    lines = [HOSTS_HEADER, _HOSTS_BASE]
    for index, ip in enumerate(ips):
        try:
            address = ipaddress.ip_address(ip)
        except ValueError as err:
            raise InvalidArgument(f"pod ips[{index}]: {ip!r} is not an IP address") from err
        lines.append(f"{address}\t{hostname}\n")
    return "".join(lines)


def limit_searches(searches: Sequence[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped): the first MAX_SEARCHES distinct domains, and the rest."""
    kept: list[str] = []
    dropped: list[str] = []
    for domain in searches:
        if domain in kept:
            continue  # a duplicate costs a slot and adds nothing
        (kept if len(kept) < MAX_SEARCHES else dropped).append(domain)
    return kept, dropped


def resolv_conf(dns: DNSConfigLike | None, host_resolv: str) -> str:
    """/etc/resolv.conf from the pod's DNSConfig, or the host's when it sets nothing."""
    if dns is None or not (list(dns.servers) or list(dns.searches) or list(dns.options)):
        return host_resolv_for_pod(host_resolv)
    lines: list[str] = []
    for index, server in enumerate(dns.servers):
        try:
            lines.append(f"nameserver {ipaddress.ip_address(server)}")
        except ValueError as err:
            raise InvalidArgument(f"dns_config.servers[{index}]: {server!r} is not an IP address") from err
    searches = list(dns.searches)
    for index, domain in enumerate(searches):
        if not domain or any(c.isspace() for c in domain):
            raise InvalidArgument(f"dns_config.searches[{index}]: {domain!r} is empty or contains whitespace")
    kept, _ = limit_searches(searches)
    if kept:
        lines.append("search " + " ".join(kept))
    options = list(dns.options)
    for index, option in enumerate(options):
        if not option or any(c.isspace() for c in option):
            raise InvalidArgument(f"dns_config.options[{index}]: {option!r} is empty or contains whitespace")
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def host_resolv_for_pod(host_resolv: str) -> str:
    """The host's resolv.conf with its search list cut to MAX_SEARCHES.

    ``domain`` and ``search`` override each other (the last one wins in
    glibc); only ``search`` lines are touched, every other line is kept.
    """
    out: list[str] = []
    for line in host_resolv.splitlines():
        words = line.split()
        if words and words[0] == "search":
            kept, _ = limit_searches(words[1:])
            if kept:
                out.append("search " + " ".join(kept))
            continue
        out.append(line)
    return "".join(line + "\n" for line in out)

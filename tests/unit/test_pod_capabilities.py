"""A pod's bandwidth annotations and DNS config -> the CNI bandwidth and dns capabilities."""

from __future__ import annotations

import pytest
from dockyard.cri.errors import InvalidArgument
from dockyard.cri.network.pod_capabilities import (
    BURST_UNLIMITED,
    EGRESS,
    INGRESS,
    bandwidth,
    dns,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10M", 10_000_000), ("1k", 1000), ("1Ki", 1024), ("1.5G", 1_500_000_000), ("2Gi", 2 * 2**30),
        ("100", 100), ("1e6", 1_000_000), ("5E3", 5000), ("1500m", 2), ("0.5k", 500), (".5M", 500_000),
        ("+3k", 3000), ("1P", 10**15), ("1Ei", 2**60), ("100u", 1),
    ],
)
def test_parse_quantity(text: str, value: int) -> None:
    """Kubernetes' quantity syntax, rounded up to an integer as Quantity.Value() does."""
    assert parse_quantity(text, "f") == value


@pytest.mark.parametrize("text", ["", "10 M", "M", "10MB", "1.2.3", "ten", "10Mi5", "0x10", "1e", "9" * 70])
def test_parse_quantity_refuses(text: str) -> None:
    with pytest.raises(InvalidArgument, match="^f: "):
        parse_quantity(text, "f")


@pytest.mark.parametrize(
    ("annotations", "want"),
    [
        ({}, None),
        ({"other": "1M"}, None),
        ({INGRESS: "10M"}, {"ingressRate": 10_000_000, "ingressBurst": BURST_UNLIMITED}),
        ({EGRESS: "1Mi", INGRESS: "2k"}, {"ingressRate": 2000, "ingressBurst": BURST_UNLIMITED,
                                          "egressRate": 2**20, "egressBurst": BURST_UNLIMITED}),
    ],
)
def test_bandwidth(annotations: dict[str, str], want: dict[str, int] | None) -> None:
    assert bandwidth(annotations) == want


@pytest.mark.parametrize(
    ("annotations", "match"),
    [
        ({INGRESS: "100"}, r"config.annotations\[kubernetes.io/ingress-bandwidth\]: '100' is unreasonably small"),
        ({EGRESS: "2P"}, r"config.annotations\[kubernetes.io/egress-bandwidth\]: '2P' is unreasonably large"),
        ({EGRESS: "fast"}, r"config.annotations\[kubernetes.io/egress-bandwidth\]: 'fast' is not a quantity"),
        ({INGRESS: "-5M"}, "unreasonably small"),
    ],
)
def test_bandwidth_refuses_and_names_the_annotation(annotations: dict[str, str], match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        bandwidth(annotations)


def test_dns() -> None:
    assert dns([], [], []) is None
    assert dns(["10.96.0.10"], ["svc.cluster.local"], ["ndots:5"]) == {
        "servers": ["10.96.0.10"], "searches": ["svc.cluster.local"], "options": ["ndots:5"]}

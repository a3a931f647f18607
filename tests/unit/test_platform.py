"""Choosing a manifest for the node's platform from an index / manifest list."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.cri.errors import NotFound
from dockyard.cri.image.platform import Platform, choose


def entry(name: str, os_: str | None, arch: str | None, variant: str | None = None) -> dict[str, Any]:
    desc: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": name, "size": 1}
    if os_ is not None or arch is not None:
        desc["platform"] = {k: v for k, v in (("os", os_), ("architecture", arch), ("variant", variant)) if v is not None}
    return desc


INDEX = {
    "manifests": [
        entry("amd64", "linux", "amd64"),
        entry("arm64", "linux", "arm64", "v8"),
        entry("armv6", "linux", "arm", "v6"),
        entry("armv7", "linux", "arm", "v7"),
        entry("win", "windows", "amd64"),
        entry("attestation", "unknown", "unknown"),
        entry("noplatform", None, None),
    ]
}


@pytest.mark.parametrize(
    ("index", "want", "chosen"),
    [
        (INDEX, Platform("linux", "amd64"), "amd64"),
        (INDEX, Platform("linux", "arm64", "v8"), "arm64"),
        (INDEX, Platform("linux", "arm64"), "arm64"),
        (INDEX, Platform("linux", "aarch64"), "arm64"),
        (INDEX, Platform("linux", "arm", "v7"), "armv7"),
        (INDEX, Platform("linux", "arm"), "armv7"),
        (INDEX, Platform("linux", "arm", "v6"), "armv6"),
        (INDEX, Platform("windows", "amd64"), "win"),
        (INDEX, Platform("linux", "amd64", "v1"), "amd64"),
        (INDEX, Platform("linux", "x86_64", "v2"), "amd64"),
        # arm v8 (32-bit) node runs the v7 image over the v6 one
        (INDEX, Platform("linux", "arm", "v8"), "armv7"),
        # manifest saying arm64 without variant matches a v8 node
        ({"manifests": [entry("a", "linux", "arm64")]}, Platform("linux", "arm64", "v8"), "a"),
        # an exact variant beats an earlier compatible one
        ({"manifests": [entry("v1", "linux", "amd64"), entry("v3", "linux", "amd64", "v3")]},
         Platform("linux", "amd64", "v3"), "v3"),
        # ties keep index order
        ({"manifests": [entry("first", "linux", "amd64"), entry("second", "linux", "amd64")]},
         Platform("linux", "amd64"), "first"),
    ],
)
def test_choose(index: dict[str, Any], want: Platform, chosen: str) -> None:
    assert choose(index, want)["digest"] == chosen


@pytest.mark.parametrize(
    ("index", "want", "message_has"),
    [
        (INDEX, Platform("linux", "s390x"), "linux/s390x"),
        ({"manifests": [entry("a", "linux", "arm64")]}, Platform("linux", "amd64", "v1"), "platform linux/amd64 "),
        (INDEX, Platform("linux", "arm", "v5"), "available: linux/amd64, linux/arm64/v8, linux/arm/v6"),
        ({"manifests": [entry("a", "linux", "amd64", "v3")]}, Platform("linux", "amd64"), "linux/amd64/v3"),
        ({"manifests": []}, Platform("linux", "amd64"), "available: none"),
        ({}, Platform("linux", "amd64"), "no manifests"),
    ],
)
def test_no_match(index: dict[str, Any], want: Platform, message_has: str) -> None:
    with pytest.raises(NotFound) as info:
        choose(index, want)
    assert message_has in str(info.value)


def test_host_is_normalised() -> None:
    host = Platform.host()
    assert host.os == "linux"
    assert host == host.normalized()
    assert host.architecture not in ("x86_64", "aarch64")

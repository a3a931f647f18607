"""The node's platform and choosing a manifest for it from an index.

Pure: `choose` takes a parsed OCI index / Docker manifest list and returns one
of its descriptors. Facts it relies on:

- Architectures come in Go's spelling (amd64, arm64, arm, 386, ppc64le,
  s390x, riscv64); `uname -m` names are translated by `Platform.host()`.
- Variants: arm64 is "v8" whether or not a manifest says so; 32-bit arm with
  no variant means "v7"; amd64 without a variant means "v1" (and "v1" is
  written as no variant). A CPU can run
  lower variants of its own architecture (an arm v7 node runs v6 and v5
  images; an amd64 v3 node runs v2 and v1), so those match too, best
  (highest variant not above ours) first.
- Index entries with no platform (e.g. buildx attestation manifests, which
  say unknown/unknown) never match.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Any

from dockyard.cri.errors import NotFound

_MACHINE_TO_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}

# Variants of an architecture, lowest first; a node runs its own and lower ones.
_VARIANT_ORDER = {
    "arm": ("v5", "v6", "v7", "v8"),
    "arm64": ("v8",),
    "amd64": ("v1", "v2", "v3", "v4"),
}
_DEFAULT_VARIANT = {"arm": "v7", "arm64": "v8"}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def host(cls) -> Platform:
        machine = _platform.machine()
        arch, variant = _MACHINE_TO_ARCH.get(machine, (machine, ""))
        return cls("linux", arch, variant).normalized()

    def normalized(self) -> Platform:
        arch = self.architecture.lower()
        arch = {"aarch64": "arm64", "x86_64": "amd64"}.get(arch, arch)
        variant = self.variant.lower()
        if arch == "arm64" and variant == "8":
            variant = "v8"
        if arch == "amd64" and variant == "v1":
            variant = ""  # v1 is plain amd64; keep it out of names and messages
        return Platform(self.os.lower(), arch, variant or _DEFAULT_VARIANT.get(arch, ""))

    def string(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return text + f"/{self.variant}" if self.variant else text

    def rank(self, other: Platform) -> int | None:
        """How well `other` (an image's platform) suits this node: 0 is exact,
        higher is a worse (older-variant) fit, None is cannot run."""
        mine, theirs = self.normalized(), other.normalized()
        if (mine.os, mine.architecture) != (theirs.os, theirs.architecture):
            return None
        if mine.variant == theirs.variant:
            return 0
        order = _VARIANT_ORDER.get(mine.architecture)
        ours_v, theirs_v = mine.variant or "v1", theirs.variant or "v1"
        if order is None or ours_v not in order or theirs_v not in order:
            return None
        distance = order.index(ours_v) - order.index(theirs_v)
        return distance if distance > 0 else None


def platform_of(descriptor: dict[str, Any]) -> Platform | None:
    spec = descriptor.get("platform")
    if not isinstance(spec, dict):
        return None
    os_, arch = spec.get("os"), spec.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        return None
    variant = spec.get("variant")
    return Platform(os_, arch, variant if isinstance(variant, str) else "")


def choose(index: dict[str, Any], platform: Platform) -> dict[str, Any]:
    """The descriptor in `index["manifests"]` that best suits `platform`.

    Ties keep index order (the first listed wins, as in containerd).
    NotFound names the wanted platform and the ones the index offers.
    """
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise NotFound(f"image index has no manifests list; no match for {platform.string()}")
    best: tuple[int, int] | None = None
    chosen: dict[str, Any] | None = None
    offered: list[str] = []
    for position, descriptor in enumerate(manifests):
        if not isinstance(descriptor, dict):
            continue
        theirs = platform_of(descriptor)
        if theirs is None:
            continue
        offered.append(theirs.normalized().string())
        rank = platform.rank(theirs)
        if rank is not None and (best is None or (rank, position) < best):
            best, chosen = (rank, position), descriptor
    if chosen is None:
        available = ", ".join(offered) if offered else "none"
        raise NotFound(f"no manifest for platform {platform.normalized().string()} in image index (available: {available})")
    return chosen

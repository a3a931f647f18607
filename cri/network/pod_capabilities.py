"""What one pod brings to the CNI capabilities besides its port mappings (pure).

* ``bandwidth``, from the pod's annotations ``kubernetes.io/ingress-bandwidth``
  and ``kubernetes.io/egress-bandwidth``: Kubernetes quantities in bits per
  second ("10M" is 10 000 000), each between 1k and 1P as kubelet's own
  check has it; the bandwidth plugin's runtimeConfig wants ``ingressRate``
  / ``egressRate`` in bits per second and a burst, which containerd sets to
  the largest 32-bit value (no burst limit), and so does this.
* ``dns``, from the pod's DNS config: ``servers``, ``searches``, ``options``
  (containerd's mapping; the plugin may write it into the pod's resolv.conf).

A malformed or unreasonable annotation fails RunPodSandbox with
InvalidArgument naming it, as it does in containerd (there: Unknown).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from typing import Any

from dockyard.cri.errors import InvalidArgument, shorten

INGRESS = "kubernetes.io/ingress-bandwidth"
EGRESS = "kubernetes.io/egress-bandwidth"
BURST_UNLIMITED = 2**32 - 1  # math.MaxUint32, as containerd passes it
MIN_BITS = 1000
MAX_BITS = 10**15

# A Kubernetes quantity: sign, digits with an optional fraction, then a binary
# suffix (Ki..Ei), a decimal one (n, u, m, k, M, G, T, P, E) or an exponent (e3, E-2).
_QUANTITY = re.compile(r"([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?")
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def parse_quantity(text: str, field: str) -> int:
    """A Kubernetes quantity -> its integer value, rounded up as Quantity.Value() does."""
    match = _QUANTITY.fullmatch(text.strip())
    if match is None or len(text) > 64:
        raise InvalidArgument(f"{field}: {shorten(text)!r} is not a quantity (like 10M, 1Gi, 500k)")
    sign, number, suffix = match.groups()
    suffix = suffix or ""
    try:
        scale = _SUFFIX[suffix] if suffix in _SUFFIX else Decimal(10) ** int(suffix[1:])
        value = Decimal(sign + number) * scale
    except (ArithmeticError, ValueError) as err:  # decimal signals (Overflow, InvalidOperation)
        raise InvalidArgument(f"{field}: {shorten(text)!r} is not a quantity") from err
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def bandwidth(annotations: Mapping[str, str]) -> dict[str, int] | None:
    """The bandwidth capability of a pod, or None when it asks for no limit."""
    out: dict[str, int] = {}
    for key, direction in ((INGRESS, "ingress"), (EGRESS, "egress")):
        raw = annotations.get(key)
        if raw is None:
            continue
        field = f"config.annotations[{key}]"
        bits = parse_quantity(raw, field)
        if bits < MIN_BITS:
            raise InvalidArgument(f"{field}: {shorten(raw)!r} is unreasonably small (< 1kbit)")
        if bits > MAX_BITS:
            raise InvalidArgument(f"{field}: {shorten(raw)!r} is unreasonably large (> 1Pbit)")
        out[f"{direction}Rate"] = bits
        out[f"{direction}Burst"] = BURST_UNLIMITED
    return out or None


def dns(servers: Sequence[str], searches: Sequence[str], options: Sequence[str]) -> dict[str, Any] | None:
    """The dns capability from the pod's DNS config (None without one)."""
    if not (servers or searches or options):
        return None
    return {"servers": list(servers), "searches": list(searches), "options": list(options)}

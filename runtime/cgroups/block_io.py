"""linux.resources.blockIO, validated once for both the v1 blkio and the v2
io writers.

Weights are 10..1000 (the v1/BFQ range; the OCI spec's range).  0 means "not
set", as in runc.  A device is named by major:minor, both required.
"""

from __future__ import annotations

from ..kernel.errors import InvalidSpec
from ..kernel.lean.records import Record
from . import spec_values as sv

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from typing import Any

FIELD = "linux.resources.blockIO"

# spec key -> short name used by both writers ("read_bps" -> v1 file
# blkio.throttle.read_bps_device, v2 io.max key rbps).
THROTTLES = {
    "throttleReadBpsDevice": "read_bps",
    "throttleWriteBpsDevice": "write_bps",
    "throttleReadIOPSDevice": "read_iops",
    "throttleWriteIOPSDevice": "write_iops",
}
class WeightDevice(Record):
    major: int
    minor: int
    weight: int | None
    leaf_weight: int | None
class Throttle(Record):
    kind: str  # a value of THROTTLES
    major: int
    minor: int
    rate: int
class BlockIO(Record):
    weight: int | None
    leaf_weight: int | None
    weight_devices: tuple[WeightDevice, ...]
    throttles: tuple[Throttle, ...]


def _weight(obj: dict[str, Any], key: str, field: str) -> int | None:
    value = sv.integer(obj, key, field, minimum=0, maximum=1000)
    if value is None or value == 0:
        return None
    if value < 10:
        raise InvalidSpec(field, f"{value} is outside [10, 1000]")
    return value


def _device(obj: dict[str, Any], field: str) -> tuple[int, int]:
    major = sv.required_integer(obj, "major", f"{field}.major", minimum=0, maximum=(1 << 32) - 1)
    minor = sv.required_integer(obj, "minor", f"{field}.minor", minimum=0, maximum=(1 << 32) - 1)
    return major, minor


def parse(resources: dict[str, Any]) -> BlockIO:
    bio = sv.section(resources, "blockIO", FIELD)
    devices: list[WeightDevice] = []
    for i, raw in enumerate(sv.items(bio, "weightDevice", f"{FIELD}.weightDevice")):
        field = f"{FIELD}.weightDevice[{i}]"
        dev = sv.entry(raw, field)
        major, minor = _device(dev, field)
        devices.append(WeightDevice(major, minor, _weight(dev, "weight", f"{field}.weight"),
                                    _weight(dev, "leafWeight", f"{field}.leafWeight")))
    throttles: list[Throttle] = []
    for key, kind in THROTTLES.items():
        for i, raw in enumerate(sv.items(bio, key, f"{FIELD}.{key}")):
            field = f"{FIELD}.{key}[{i}]"
            dev = sv.entry(raw, field)
            major, minor = _device(dev, field)
            rate = sv.required_integer(dev, "rate", f"{field}.rate", minimum=0, maximum=sv.UINT64_MAX)
            throttles.append(Throttle(kind, major, minor, rate))
    return BlockIO(
        _weight(bio, "weight", f"{FIELD}.weight"),
        _weight(bio, "leafWeight", f"{FIELD}.leafWeight"),
        tuple(devices),
        tuple(throttles),
    )

"""Signal names <-> numbers, as ``dockyard-runc kill`` accepts them.

Facts: glibc reserves real-time signals 32 and 33 for its threads, so
userspace's SIGRTMIN is 34 and SIGRTMAX 64 (``signal.SIGRTMIN`` says the
same); "RTMIN+3" is 37.  Names are matched case-insensitively with or
without the "SIG" prefix, like kill(1) and runc.  Signal 0 (the existence
probe of kill(2)) is not a signal one can deliver, so it is refused.
"""

from __future__ import annotations

from .kernel.errors import InvalidArgument
from .kernel.lean import leansignal

_RTMIN = int(leansignal.SIGRTMIN)
_RTMAX = int(leansignal.SIGRTMAX)
_LAST = leansignal.NSIG - 1

# Every name Python knows, aliases included (SIGIOT, SIGCLD, SIGPOLL): the
# names signal.Signals is built from (SIG*, but not the SIG_DFL/SIG_BLOCK kind).
_BY_NAME: dict[str, int] = {
    name[3:]: value for name, value in vars(leansignal).items()
    if name.startswith("SIG") and not name.startswith("SIG_") and isinstance(value, int)
}

# A number's usual name is its alphabetically first one (SIGABRT, not SIGIOT),
# which is the name signal.Signals(num).name gives.
_NAME_OF: dict[int, str] = {}
for _name in sorted(_BY_NAME):
    _NAME_OF.setdefault(_BY_NAME[_name], "SIG" + _name)


def _rt_offset(text: str, sign: str) -> int | None:
    _, _, digits = text.partition(sign)
    return int(digits) if digits.isdigit() else None


def parse_signal(text: str) -> int:
    """"9", "KILL", "SIGKILL", "kill", "RTMIN+3", "SIGRTMAX-1" -> number."""
    raw = text.strip()
    name = raw.upper()
    name = name.removeprefix("SIG")
    num: int | None = None
    if name.isdigit():
        num = int(name)
    elif name in _BY_NAME:
        num = _BY_NAME[name]
    elif name.startswith("RTMIN+"):
        off = _rt_offset(name, "+")
        num = None if off is None else _RTMIN + off
    elif name.startswith("RTMAX-"):
        off = _rt_offset(name, "-")
        num = None if off is None else _RTMAX - off
    if num is None:
        raise InvalidArgument("parse signal", text, "unknown signal name")
    if not 1 <= num <= _LAST or (name.startswith("RT") and not _RTMIN <= num <= _RTMAX):
        raise InvalidArgument("parse signal", text, f"signal number out of range 1..{_LAST}")
    return num


def signal_name(num: int) -> str:
    """The usual name of ``num``: "SIGKILL", "SIGRTMIN+3", "SIGRTMAX-1";
    "SIG32" for the two glibc-internal ones, which have no name."""
    if not 1 <= num <= _LAST:
        raise InvalidArgument("signal name", str(num), f"signal number out of range 1..{_LAST}")
    if num == _RTMIN:
        return "SIGRTMIN"
    if num == _RTMAX:
        return "SIGRTMAX"
    if _RTMIN < num < _RTMAX:
        # kill -l's split: the lower half counts up from RTMIN, the rest down from RTMAX.
        if num - _RTMIN <= (_RTMAX - _RTMIN) // 2:
            return f"SIGRTMIN+{num - _RTMIN}"
        return f"SIGRTMAX-{_RTMAX - num}"
    return _NAME_OF.get(num, f"SIG{num}")

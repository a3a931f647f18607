"""Signal names <-> numbers for `kill`."""

from __future__ import annotations

import pytest

from dockyard.runtime.kernel.errors import InvalidArgument
from dockyard.runtime.signals import parse_signal, signal_name


@pytest.mark.parametrize(("text", "num"), [
    ("9", 9), ("KILL", 9), ("SIGKILL", 9), ("kill", 9), ("sigkill", 9), (" TERM ", 15),
    ("1", 1), ("64", 64), ("HUP", 1), ("SIGUSR1", 10), ("SIGCHLD", 17), ("CLD", 17),
    ("IOT", 6), ("ABRT", 6), ("SIGWINCH", 28), ("STOP", 19), ("SIGSYS", 31),
    ("RTMIN", 34), ("SIGRTMIN", 34), ("RTMIN+3", 37), ("rtmin+3", 37), ("SIGRTMAX-1", 63),
    ("RTMAX", 64), ("RTMIN+30", 64), ("RTMAX-30", 34), ("SIG32", 32),
])
def test_parse_signal(text: str, num: int) -> None:
    assert parse_signal(text) == num


@pytest.mark.parametrize("text", [
    "", "0", "65", "-9", "SIG", "FOO", "SIGFOO", "RTMIN+", "RTMIN+31", "RTMAX-31", "RTMIN-1",
    "RTMAX+1", "RTMIN+x", "9x", "KILL9"])
def test_parse_signal_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_signal(text)
    assert info.value.op == "parse signal"
    assert info.value.target == text


@pytest.mark.parametrize(("num", "name"), [
    (9, "SIGKILL"), (6, "SIGABRT"), (17, "SIGCHLD"), (29, "SIGIO"), (32, "SIG32"),
    (34, "SIGRTMIN"), (37, "SIGRTMIN+3"), (49, "SIGRTMIN+15"), (50, "SIGRTMAX-14"),
    (63, "SIGRTMAX-1"), (64, "SIGRTMAX"),
])
def test_signal_name(num: int, name: str) -> None:
    assert signal_name(num) == name


@pytest.mark.parametrize("num", [0, -1, 65])
def test_signal_name_rejects(num: int) -> None:
    with pytest.raises(InvalidArgument):
        signal_name(num)


def test_every_number_round_trips() -> None:
    for num in range(1, 65):
        assert parse_signal(signal_name(num)) == num

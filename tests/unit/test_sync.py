"""The parent <-> init protocol over a real socketpair: typed messages, no
unexpected message or EOF mistaken for success, errors re-raised as their class."""

from __future__ import annotations

import ast
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.runtime.kernel import errors
from dockyard.runtime.kernel.errors import RuntimeFault
from dockyard.runtime import sync
from dockyard.runtime.sync import Channel

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"


@pytest.fixture
def pair() -> Iterator[tuple[Channel, Channel]]:
    parent, child = Channel.pair()
    yield parent, child
    for ch in (parent, child):
        ch.close()


def test_round_trip(pair: tuple[Channel, Channel]) -> None:
    parent, child = pair
    child.send("pid", pid=1234, names=["a", "b"])
    assert parent.recv("pid") == {"type": "pid", "pid": 1234, "names": ["a", "b"]}
    parent.send("idmap-done")
    assert child.recv("idmap-done", what="parent") == {"type": "idmap-done"}


def test_one_message_per_packet(pair: tuple[Channel, Channel]) -> None:
    parent, child = pair
    child.send("idmap")
    child.send("ready")
    assert parent.recv("idmap")["type"] == "idmap"
    assert parent.recv("ready")["type"] == "ready"


def test_any_of_expected(pair: tuple[Channel, Channel]) -> None:
    parent, child = pair
    child.send("ready")
    assert parent.recv("hooks", "ready")["type"] == "ready"


def test_unexpected_type(pair: tuple[Channel, Channel]) -> None:
    parent, child = pair
    child.send("hooks")
    with pytest.raises(RuntimeFault) as info:
        parent.recv("pid", "ready")
    assert type(info.value) is RuntimeFault
    text = str(info.value)
    assert "'hooks'" in text and "pid/ready" in text


def test_eof(pair: tuple[Channel, Channel]) -> None:
    parent, child = pair
    child.close()
    with pytest.raises(RuntimeFault) as info:
        parent.recv("pid", what="container init")
    assert "container init" in str(info.value) and "pid" in str(info.value)


@pytest.mark.parametrize(("sent", "cls"), [
    (errors.SyscallError("mount", "/rootfs/proc", errno.EPERM, "bind"), errors.SyscallError),
    (errors.NotFound("exec", "/bin/nope", "no such file"), errors.NotFound),
    (errors.InvalidArgument("parse", "x", "bad"), errors.InvalidArgument),
    (errors.AlreadyExists("create", "c1", "exists"), errors.AlreadyExists),
    (errors.FailedPrecondition("start", "c1", "stopped"), errors.FailedPrecondition),
    (errors.Unsupported("apparmor", "p", "no apparmor"), errors.Unsupported),
    (errors.HookFailed("run hook", "/h", "exit 1"), errors.HookFailed),
    (RuntimeFault("op", "t", "d", errno.EIO), RuntimeFault),
])
def test_error_reraised_as_same_class(pair: tuple[Channel, Channel], sent: RuntimeFault,
                                      cls: type[RuntimeFault]) -> None:
    parent, child = pair
    child.send_error(sent)
    with pytest.raises(RuntimeFault) as info:
        parent.recv("ready")
    got = info.value
    assert type(got) is cls
    assert (got.op, got.target, got.detail, got.errno) == (sent.op, sent.target, sent.detail, sent.errno)
    assert str(got) == str(sent)


def test_invalid_spec_becomes_invalid_argument(pair: tuple[Channel, Channel]) -> None:
    parent, child = pair
    child.send_error(errors.InvalidSpec("process.cwd", "must be absolute"))
    with pytest.raises(errors.InvalidArgument) as info:
        parent.recv("ready")
    assert type(info.value) is errors.InvalidArgument
    assert info.value.target == "process.cwd"
    assert info.value.detail == "must be absolute"


def test_error_subclass_outside_protocol_becomes_runtime_fault(pair: tuple[Channel, Channel]) -> None:
    class Odd(errors.RuntimeFault):
        pass

    parent, child = pair
    child.send_error(Odd("op", "t", "d"))
    with pytest.raises(RuntimeFault) as info:
        parent.recv("ready")
    assert type(info.value) is RuntimeFault and info.value.op == "op"


def test_error_beats_expected_type(pair: tuple[Channel, Channel]) -> None:
    """An error is raised even when the caller also 'expects' error messages."""
    parent, child = pair
    child.send_error(errors.NotFound("exec", "/x"))
    with pytest.raises(errors.NotFound):
        parent.recv("error")


@pytest.mark.parametrize("packet", [b"not json", b"[1, 2]", b"\xff"])
def test_garbage_packet_is_runtime_fault(pair: tuple[Channel, Channel], packet: bytes) -> None:
    parent, child = pair
    os.write(child.fileno(), packet)
    with pytest.raises(RuntimeFault):
        parent.recv("ready")


def test_close_is_idempotent_and_leaves_other_fds_alone(pair: tuple[Channel, Channel]) -> None:
    """create's cleanup can close an end twice; the second close must not
    hit whatever file reused the number meanwhile."""
    parent, _child = pair
    number = parent.fileno()
    devnull = os.open("/dev/null", os.O_RDONLY)
    parent.close()
    os.dup2(devnull, number)  # the number now names another file
    os.close(devnull)
    try:
        parent.close()
        os.fstat(number)  # still open: the second close did nothing
    finally:
        os.close(number)


def test_ends_are_close_on_exec(pair: tuple[Channel, Channel]) -> None:
    """The container's program must never inherit the channel."""
    for end in pair:
        assert not os.get_inheritable(end.fileno())


def test_two_sends_are_two_reads(pair: tuple[Channel, Channel]) -> None:
    """SOCK_SEQPACKET keeps message bounds for read(2) as for recv: two sends
    are two reads."""
    parent, child = pair
    child.send("pid", pid=1)
    child.send("ready")
    assert parent.recv("pid")["pid"] == 1
    assert parent.recv("ready") == {"type": "ready"}


def test_error_echoing_a_huge_value_fits_in_one_message(pair: tuple[Channel, Channel]) -> None:
    """An init failure that names a 1 MiB argument (an exec of a hostile argv)
    still reaches the parent in one packet: errors echo a value's head and
    its length, not the value (it used to fall back to the init's stderr and
    fill a pipe nobody read)."""
    parent, child = pair
    child.send_error(errors.NotFound("exec", "A" * (1 << 20), "x" * (1 << 20)))
    with pytest.raises(errors.NotFound) as info:
        parent.recv("ready")
    assert info.value.target == "A" * errors.ECHO_LIMIT + f"... ({1 << 20} characters)"
    assert len(str(info.value)) < 2 * errors.DETAIL_LIMIT


@pytest.mark.parametrize(("text", "limit", "expected"), [
    ("", 5, ""),
    ("abcde", 5, "abcde"),
    ("a" * 37, 5, "a" * 37),
    ("a" * 38, 5, "aaaaa... (38 characters)"),
    ("a" * 1000, 5, "aaaaa... (1000 characters)"),
])
def test_shorten(text: str, limit: int, expected: str) -> None:
    assert errors.shorten(text, limit) == expected
    assert errors.shorten(expected, limit) == expected


def test_wait_exec_returns_when_the_child_end_closes(pair: tuple[Channel, Channel]) -> None:
    """After ready, the child's end closing (its execve: the end is close-on-exec) is success."""
    parent, child = pair
    child.send("ready")
    parent.recv("ready")
    child.close()
    parent.wait_exec()


def test_wait_exec_raises_what_the_child_reports(pair: tuple[Channel, Channel]) -> None:
    parent, child = pair
    child.send_error(errors.NotFound("exec", "/bin/nope", "no such executable file in the container"))
    with pytest.raises(errors.NotFound):
        parent.wait_exec()
    child.send("ready")
    with pytest.raises(RuntimeFault) as info:
        parent.wait_exec()
    assert "unexpected message 'ready'" in str(info.value)


def _exchanged() -> dict[str, set[str]]:
    """Every message type the runtime's code passes to a channel's send or recv (by constant or string)."""
    found: dict[str, set[str]] = {}
    for path in RUNTIME.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("send", "recv") and node.args):
                continue
            first = node.args[0]
            if isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id == "sync":
                kind = getattr(sync, first.attr)
            elif isinstance(first, ast.Name) and first.id.isupper() and path.name == "sync.py":
                kind = getattr(sync, first.id)
            elif isinstance(first, ast.Constant) and isinstance(first.value, str):
                kind = first.value
            else:
                continue
            found.setdefault(kind, set()).add(f"{path.relative_to(RUNTIME)}:{node.lineno}")
    return found


def test_the_table_lists_every_message_the_code_sends() -> None:
    """sync.MESSAGES (the docstring's table as data) is exactly what spawn.py and init.py exchange."""
    exchanged = _exchanged()
    assert set(exchanged) == set(sync.MESSAGES), {k: sorted(v) for k, v in exchanged.items()
                                                  if k not in sync.MESSAGES}
    for name, (sender, receiver) in sync.MESSAGES.items():
        assert name in sync.__doc__ and sender != receiver, name  # type: ignore[operator]
    for asked, answer in sync.PAIRS.items():
        assert sync.MESSAGES[asked][1] == "parent" and sync.MESSAGES[answer][0] == "parent", (asked, answer)

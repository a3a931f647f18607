"""Exec limits, pure: which argvs an exec can take (check_exec_argv) and how
an exec's output is trimmed to fit one CRI reply (fit_exec_output)."""

from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2

from dockyard.cri.errors import InvalidArgument
from dockyard.cri.message_size import ENVELOPE_BYTES, MAX_MESSAGE_BYTES, fit_exec_output
from dockyard.cri.oci.process_args import MAX_ARG_STRLEN, MAX_EXEC_ARGS, MAX_EXEC_BYTES, check_exec_argv

MiB = 1 << 20


@pytest.mark.parametrize(("argv", "named"), [
    ([], "cmd: must not be empty"),
    ([""], "cmd[0]: the program to run is an empty string"),
    (["sh", "a\0b"], "cmd[1]: contains a NUL byte"),
    (["\0"], "cmd[0]: contains a NUL byte"),
    (["A" * MAX_ARG_STRLEN], f"cmd[0]: {MAX_ARG_STRLEN} bytes, longer than"),
    (["sh", "\u00e9" * (MAX_ARG_STRLEN // 2)], "cmd[1]:"),
    (["x"] * (MAX_EXEC_ARGS + 1), f"cmd: {MAX_EXEC_ARGS + 1} arguments"),
    (["sh"] + ["y" * (MAX_ARG_STRLEN - 1)] * 9, "cmd: "),
])
def test_refused_argv(argv: list[str], named: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_exec_argv(argv, "cmd")
    assert str(info.value).startswith(named), str(info.value)[:200]
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("argv", [
    ["true"],
    ["sh", "-c", ""],                          # empty arguments after the program are fine
    ["A" * (MAX_ARG_STRLEN - 1)],
    ["x"] * MAX_EXEC_ARGS,
    ["y" * (MAX_EXEC_BYTES // 2 - 1)] * 2 if MAX_EXEC_BYTES // 2 < MAX_ARG_STRLEN else ["y"],
])
def test_accepted_argv(argv: list[str]) -> None:
    check_exec_argv(argv, "cmd")


def reply_size(stdout: bytes, stderr: bytes) -> int:
    return api_pb2.ExecSyncResponse(stdout=stdout, stderr=stderr, exit_code=255).ByteSize()


@pytest.mark.parametrize(("out", "err", "dropped", "kept_out", "kept_err"), [
    (b"a" * 10, b"b" * 10, (0, 0), 10, 10),                              # small: untouched
    (b"a" * (16 * MiB), b"", (0, 0), 16 * MiB - ENVELOPE_BYTES, 0),      # one big stream gets all the room
    (b"", b"b" * (16 * MiB), (0, 0), 0, 16 * MiB - ENVELOPE_BYTES),
    (b"a" * (16 * MiB), b"b" * (16 * MiB), (5, 7), 8 * MiB - ENVELOPE_BYTES // 2, 8 * MiB - ENVELOPE_BYTES // 2),
    (b"a" * (16 * MiB), b"b" * 100, (0, 0), 16 * MiB - ENVELOPE_BYTES - 100, 100),  # the small one is kept whole
    (b"a" * 100, b"b" * 100, (3, 0), 100, 100),                         # the shim's cap cut it: said so
])
def test_fit_exec_output(out: bytes, err: bytes, dropped: tuple[int, int], kept_out: int, kept_err: int) -> None:
    fitted = fit_exec_output(out, err, stdout_dropped=dropped[0], stderr_dropped=dropped[1])
    assert fitted.stdout == out[:kept_out]
    assert fitted.stderr.startswith(err[:kept_err])
    note = fitted.stderr[kept_err:]
    truncated = kept_out < len(out) or kept_err < len(err) or any(dropped)
    assert (b"[dockyard: exec output truncated" in note) == truncated
    if kept_out < len(out) or dropped[0]:
        assert f"stdout kept {kept_out} of {len(out) + dropped[0]} bytes".encode() in note
    if kept_err < len(err) or dropped[1]:
        assert f"stderr kept {kept_err} of {len(err) + dropped[1]} bytes".encode() in note
    assert reply_size(fitted.stdout, fitted.stderr) <= MAX_MESSAGE_BYTES

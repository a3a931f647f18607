"""api/shim.py: frames and messages, bytes in and messages out, no sockets; the shim's dispatch of them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.api import shim as api
from dockyard.api.shim import Code, FrameBuffer, ProtocolError, ShimError


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


MESSAGES: list[dict[str, Any]] = [
    api.request(1, "ping"),
    api.request(2, "create", {"container_id": "c", "bundle": "/b"}),
    api.response(2, {"pid": 42}),
    api.error_response(3, ShimError(Code.NOT_FOUND, "container x not found")),
    api.exit_event("c", "", 42, 137, 1_700_000_000_000_000_000),
    api.oom_event("c"),
    api.output_event("c", "stdout", "aGk="),
    api.response(5, {"pid": 43, "fds": ["stdin", "stdout", "stderr"]}),
    {"id": 4, "result": {"text": "ünïcødé ✓"}},
]


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_roundtrip_in_any_chunking(message: dict[str, Any], chunk: int) -> None:
    data = api.encode(message) * 2
    buf = FrameBuffer()
    out: list[dict[str, Any]] = []
    for i in range(0, len(data), chunk):
        out += buf.feed(data[i:i + chunk])
    assert out == [message, message]
    assert buf.pending == 0


def test_header_is_big_endian_length() -> None:
    data = api.encode({"id": 1, "result": {}})
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    assert json.loads(data[4:]) == {"id": 1, "result": {}}


def test_incomplete_frame_is_held() -> None:
    buf = FrameBuffer()
    data = api.encode(api.request(1, "ping"))
    assert buf.feed(data[:-1]) == []
    assert buf.pending == len(data) - 1
    assert buf.feed(data[-1:]) == [api.request(1, "ping")]


@pytest.mark.parametrize("data, fragment", [
    (frame(b"[1, 2]"), "not an object"),
    (frame(b"{bad json"), "not UTF-8 JSON"),
    (frame(b"\xff\xfe{}"), "not UTF-8 JSON"),
    ((api.MAX_FRAME + 1).to_bytes(4, "big"), "exceeds"),
])
def test_bad_frames_are_protocol_errors(data: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        FrameBuffer().feed(data)


def test_encode_refuses_oversized_message() -> None:
    with pytest.raises(ProtocolError, match="exceeds"):
        api.encode({"id": 1, "result": {"x": "a" * (api.MAX_FRAME + 1)}})


@pytest.mark.parametrize("message, expected", [
    (api.request(7, "ping"), (7, "ping", {})),
    (api.request(8, "kill", {"container_id": "c"}), (8, "kill", {"container_id": "c", "exec_id": "", "signal": 15, "all": False})),
    (api.request(9, "create", {"container_id": "c", "bundle": "/b", "tty": True}),
     (9, "create", {"container_id": "c", "bundle": "/b", "stdin": False, "stdin_once": False, "tty": True, "log_path": "",
                     "start": False, "restore": ""})),
    (api.request(10, "wait", {"container_id": "c", "exec_id": "e"}), (10, "wait", {"container_id": "c", "exec_id": "e"})),
    (api.request(11, "exec", {"container_id": "c", "exec_id": "e", "process": {}}),
     (11, "exec", {"container_id": "c", "exec_id": "e", "process": {}, "tty": False, "stdin": False,
                   "capture": False, "io": "capture", "stdout": True, "stderr": True})),
    (api.request(12, "exec", {"container_id": "c", "exec_id": "e", "process": {}, "io": "fds", "stdout": False}),
     (12, "exec", {"container_id": "c", "exec_id": "e", "process": {}, "tty": False, "stdin": False,
                   "capture": False, "io": "fds", "stdout": False, "stderr": True})),
    (api.request(13, "attach", {"container_id": "c"}),
     (13, "attach", {"container_id": "c", "stdin": False, "stdout": True, "stderr": True})),
    (api.request(14, "attach", {"container_id": "c", "stdin": True, "stderr": False}),
     (14, "attach", {"container_id": "c", "stdin": True, "stdout": True, "stderr": False})),
    (api.request(15, "exec_sync", {"container_id": "c", "exec_id": "e", "process": {}}),
     (15, "exec_sync", {"container_id": "c", "exec_id": "e", "process": {}, "timeout_ms": 0})),
])
def test_parse_request_fills_defaults(message: dict[str, Any], expected: tuple[int, str, dict[str, Any]]) -> None:
    request = api.parse_request(message)
    assert (request.id, request.method, api.to_wire(request.params)) == expected
    assert isinstance(request.params, api.METHODS[request.method][0])
    assert request.version == api.METHOD_SINCE.get(request.method, 1)


@pytest.mark.parametrize("message, fragment", [
    ({"id": 1, "method": "fly"}, "unknown method"),
    ({"id": 1, "method": "start", "params": {}}, "missing param 'container_id'"),
    ({"id": 1, "method": "start", "params": {"container_id": 5}}, "must be str"),
    ({"id": 1, "method": "start", "params": {"container_id": "c", "extra": 1}}, "unknown params extra"),
    ({"id": 1, "method": "start", "params": {"container_id": "../x"}}, "invalid container_id"),
    ({"id": 1, "method": "start", "params": {"container_id": ".."}}, "invalid container_id"),
    ({"id": 1, "method": "kill", "params": {"container_id": "c", "signal": True}}, "must be int"),
    ({"id": 1, "method": "kill", "params": {"container_id": "c", "signal": 0}}, "not in 1..64"),
    ({"id": 1, "method": "resize_pty", "params": {"container_id": "c", "width": 0, "height": 10}}, "out of range"),
    ({"id": 1, "method": "exec", "params": {"container_id": "c", "exec_id": "a/b", "process": {}}}, "invalid exec_id"),
    ({"id": 1, "method": "ping", "params": []}, "params must be an object"),
    ({"id": 1, "method": "exec", "params": {"container_id": "c", "exec_id": "e", "process": {}, "io": "pty"}},
     "io 'pty' is not one of capture, fds"),
    ({"id": 1, "method": "exec", "params": {"container_id": "c", "exec_id": "e", "process": {}, "io": "fds",
                                            "capture": True}}, "capture and io=fds exclude each other"),
    ({"id": 1, "method": "attach", "params": {"container_id": "c", "stdin": 1}}, "must be bool"),
    ({"id": 1, "method": "attach", "params": {}}, "missing param 'container_id'"),
    ({"id": 1, "method": "create", "params": {"container_id": "c", "bundle": "/b", "restore": "ck"}},
     "restore must be an absolute path"),
    ({"id": 1, "method": "create", "params": {"container_id": "c", "bundle": "/b", "restore": "/ck", "tty": True}},
     "a restored container has no terminal"),
    ({"id": 1, "method": "checkpoint", "params": {"container_id": "c", "image_path": "img", "work_path": "/w"}},
     "image_path must be an absolute path"),
    ({"id": 1, "method": "checkpoint", "params": {"container_id": "c", "image_path": "/i", "work_path": ""}},
     "work_path must be an absolute path"),
    ({"id": 1, "method": "checkpoint", "params": {"container_id": "c", "image_path": "/i", "work_path": "/w",
                                                  "timeout": -1}}, "timeout must not be negative"),
    ({"id": 1, "method": "checkpoint", "params": {"container_id": "c", "image_path": "/i", "work_path": "/w",
                                                  "timeout": 1.5}}, "must be int"),
    ({"id": 1, "method": "claim", "params": {"dir": "shims/p"}}, "dir must be an absolute path"),
    ({"id": 1, "method": "claim", "params": {}}, "missing param 'dir'"),
    ({"id": 1, "v": 2, "method": "exec_sync", "params": {"container_id": "c", "exec_id": "e", "process": {},
                                                         "timeout_ms": -1}}, "timeout_ms -1 is negative"),
    ({"id": 1, "v": 2, "method": "exec_sync", "params": {"container_id": "c", "exec_id": "", "process": {}}},
     "invalid exec_id"),
    ({"id": 1, "v": 2, "method": "exec_sync", "params": {"container_id": "c", "exec_id": "e", "process": {},
                                                         "capture": True}}, "unknown params capture"),
])
def test_bad_requests_are_invalid_argument(message: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ShimError, match=fragment) as info:
        api.parse_request(message)
    assert info.value.code is Code.INVALID_ARGUMENT


@pytest.mark.parametrize("req_id", [None, "1", True, 1.5])
def test_request_without_integer_id_is_a_protocol_error(req_id: object) -> None:
    with pytest.raises(ProtocolError):
        api.parse_request({"id": req_id, "method": "ping"})


@pytest.mark.parametrize("code", api.CODES)
def test_error_response_round_trips_every_code(code: str) -> None:
    with pytest.raises(ShimError) as info:
        api.parse_reply(api.error_response(5, ShimError(code, "why")))
    assert (info.value.code, info.value.message) == (code, "why")


@pytest.mark.parametrize("code", api.CODES)
def test_a_decoded_code_is_the_constant_itself(code: str) -> None:
    # Over the wire the code is a fresh string; parse_reply hands back Code's own object.
    (message,) = FrameBuffer().feed(api.encode(api.error_response(5, ShimError(code, "why"))))
    with pytest.raises(ShimError) as info:
        api.parse_reply(message)
    assert info.value.code is code


def test_codes_lists_every_constant_of_code() -> None:
    constants = {v for k, v in vars(Code).items() if k.isupper()}
    assert set(api.CODES) == constants and len(api.CODES) == len(constants)


@pytest.mark.parametrize("message", [
    {"id": 1, "result": {"text": "caf\u00e9 \U0001f600 \"q\" \n", "n": [1, 2.5, -3, True, False, None]}},
    {"event": "output", "container_id": "c", "stream": "stdout", "data": "aGVsbG8="},
    {"id": 2, "result": {"nested": {"a": [], "b": {}}, "big": 10 ** 30, "f": 1e-7}},
])
def test_encode_writes_what_json_dumps_compact_writes(message: dict[str, object]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    assert api.encode(message) == len(body).to_bytes(4, "big") + body


def test_encode_refuses_what_json_cannot_write() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        api.encode({"id": 1, "result": {"x": object()}})


def test_unknown_error_code_becomes_internal() -> None:
    with pytest.raises(ShimError) as info:
        api.parse_reply({"id": 1, "error": {"code": "Weird", "message": "m"}})
    assert info.value.code is Code.INTERNAL and "Weird" in info.value.message


def test_parse_reply_result_and_event_check() -> None:
    assert api.parse_reply(api.response(3, {"pid": 1})) == (3, {"pid": 1})
    assert api.is_event(api.oom_event("c")) and not api.is_event(api.response(1, {}))
    with pytest.raises(ProtocolError):
        api.parse_reply({"id": 1})


def test_paths() -> None:
    d = api.shim_dir("/run/dockyard/", "pod1")
    assert d == "/run/dockyard/shims/pod1"
    assert api.socket_path(d) == "/run/dockyard/shims/pod1/shim.sock"


def test_every_method_has_a_params_and_a_result_record() -> None:
    for method, (params, result) in api.METHODS.items():
        assert issubclass(params, api.Message) and issubclass(result, api.Message), method


@pytest.mark.parametrize("message, version", [
    ({"id": 1, "method": "ping"}, 1),  # a daemon from before the field: version 1
    ({"v": 1, "id": 1, "method": "ping"}, 1),
    ({"v": 2, "id": 1, "method": "ping"}, 2),
])
def test_request_version(message: dict[str, Any], version: int) -> None:
    assert api.parse_request(message).version == version


@pytest.mark.parametrize("v", [3, 0, "1", True, None])
def test_a_version_the_shim_does_not_speak_is_refused(v: object) -> None:
    with pytest.raises(ShimError, match="protocol version") as info:
        api.parse_request({"v": v, "id": 1, "method": "ping"})
    assert info.value.code is Code.INVALID_ARGUMENT


@pytest.mark.parametrize("method, version", [("ping", 1), ("exec", 1), ("wait", 1), ("exec_sync", 2)])
def test_a_request_carries_the_version_that_brought_its_method(method: str, version: int) -> None:
    """So that a newer daemon's requests of the older methods still reach a shim of protocol 1."""
    assert api.request(1, method)["v"] == version


def test_the_newest_method_is_of_this_protocol() -> None:
    assert max(api.METHOD_SINCE.values()) == api.PROTOCOL_VERSION
    assert set(api.METHOD_SINCE) <= set(api.METHODS)


def test_messages_carry_the_version() -> None:
    assert api.response(1, api.NoResult())["v"] == api.PROTOCOL_VERSION
    assert api.error_response(1, ShimError(Code.INTERNAL, "x"))["v"] == api.PROTOCOL_VERSION


def test_a_result_record_is_written_without_its_unset_fields() -> None:
    exec_status = api.ProcessStatus(container_id="c", exec_id="e", pid=3, status="running", exit_status=0, exited_at=0)
    assert api.response(4, exec_status)["result"] == {"container_id": "c", "exec_id": "e", "pid": 3,
                                                      "status": "running", "exit_status": 0, "exited_at": 0}
    listing = api.to_wire(api.ListResult(containers=[exec_status]))
    assert listing == {"containers": [api.to_wire(exec_status)]}
    assert api.parse_result("list", listing) == api.ListResult(containers=[exec_status])


@pytest.mark.parametrize("method, result", [
    ("ping", {"pid": 1, "version": "0.1.0", "protocol": 1}),
    ("create", {"pid": 42}),
    ("exec", {"pid": 42, "fds": ["stdin", "stdout"]}),
    ("wait", {"exit_status": 0, "exited_at": 5}),
    ("wait", {"exit_status": 0, "exited_at": 5, "oom_killed": True, "stdout": "aGk=", "stdout_dropped": 0}),
    ("kill", {}),
    ("stats", {"stats": {"cpu": {}}}),
    ("attach", {"pid": 1, "tty": False}),
    ("exec_sync", {"exit_status": 0, "exited_at": 5, "stdout": "", "stdout_dropped": 0, "stderr": "aGk=",
                   "stderr_dropped": 2, "timed_out": False}),
])
def test_a_result_that_fits_its_record_is_accepted(method: str, result: dict[str, Any]) -> None:
    assert api.parse_reply(api.response(9, result), method) == (9, result)
    assert api.to_wire(api.parse_result(method, result)) == result


@pytest.mark.parametrize("method, result, fragment", [
    ("create", {}, "missing field 'pid'"),
    ("create", {"pid": "42"}, "create result.pid must be int, not str"),
    ("create", {"pid": True}, "must be int, not bool"),
    ("kill", {"surprise": 1}, "unknown fields surprise"),
    ("exec", {"pid": 1, "fds": "stdin"}, "exec result.fds must be list"),
    ("list", {"containers": [{"container_id": "c"}]}, "list result.containers[0]: missing field 'exec_id'"),
    ("stats", {"stats": []}, "stats result.stats must be object, not list"),
])
def test_a_result_that_does_not_fit_is_the_shims_fault(method: str, result: dict[str, Any], fragment: str) -> None:
    """The daemon checks what it receives: a result of the wrong shape is INTERNAL (the shim's fault,
    not the caller's), naming the field."""
    with pytest.raises(ShimError) as info:
        api.parse_reply(api.response(9, result), method)
    assert info.value.code is Code.INTERNAL and fragment in info.value.message
    with pytest.raises(ProtocolError):
        api.parse_result(method, result)


# --- the shim's dispatch: every message gets an answer with a code -----------------


class Peer:
    subscribed = False
    closed = False
    out = bytearray()

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def send_fds(self, message: dict[str, Any], fds: list[int]) -> None:
        self.sent.append(message)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def shim() -> Any:
    """A Shim with its dispatch table and nothing else (no loop, reaper or runtime): enough for ping and errors."""
    from dockyard.shim.service import Shim

    made = object.__new__(Shim)
    made.handlers = made.dispatch_table()
    return made


def test_the_dispatch_table_is_the_protocols_method_list(shim: Any) -> None:
    assert list(shim.handlers) == list(api.METHODS)


@pytest.mark.parametrize("message, req_id, code, fragment", [
    ({"id": 3, "method": "fly"}, 3, Code.INVALID_ARGUMENT, "unknown method 'fly'"),
    ({"id": 4, "method": "start", "params": {"container_id": 7}}, 4, Code.INVALID_ARGUMENT, "must be str"),
    ({"id": 5, "v": 9, "method": "ping"}, 5, Code.INVALID_ARGUMENT, "protocol version 9"),
    ({"id": "six", "method": "ping"}, 0, Code.INVALID_ARGUMENT, "request id must be an integer"),
    ({"method": "ping"}, 0, Code.INVALID_ARGUMENT, "request id must be an integer"),
    ({"id": True, "method": "ping"}, 0, Code.INVALID_ARGUMENT, "request id must be an integer"),
    ({"id": 7, "method": "do_ping"}, 7, Code.INVALID_ARGUMENT, "unknown method 'do_ping'"),
    ({"id": 8, "method": "__init__"}, 8, Code.INVALID_ARGUMENT, "unknown method '__init__'"),
])
def test_a_malformed_or_unknown_request_gets_a_typed_error_reply(
        shim: Any, message: dict[str, Any], req_id: int, code: str, fragment: str) -> None:
    """Nothing the shim cannot take reaches a handler; the sender gets an error reply with a code,
    answering its id when it sent a usable one."""
    peer = Peer()
    shim.handle(peer, message)
    (reply,) = peer.sent
    assert reply["id"] == req_id and reply["v"] == api.PROTOCOL_VERSION
    with pytest.raises(ShimError) as info:
        api.parse_reply(reply)
    assert info.value.code is code and fragment in info.value.message


def test_a_good_request_gets_its_result_record(shim: Any) -> None:
    peer = Peer()
    shim.handle(peer, api.request(11, "ping"))
    (reply,) = peer.sent
    _, result = api.parse_reply(reply, "ping")
    assert result["protocol"] == api.PROTOCOL_VERSION and isinstance(result["pid"], int)

"""remotecommand protocol: negotiation, expected streams, statuses, resizes; requests validation."""

from __future__ import annotations

import json

import pytest
from cri_api.v1 import api_pb2

from dockyard.cri.errors import InvalidArgument
from dockyard.cri.streaming import portforward, remotecommand as rc
from dockyard.cri.streaming.requests import validate_attach, validate_exec, validate_port_forward
from dockyard.cri.streaming.spdy import Headers


@pytest.mark.parametrize("offered,chosen", [
    (["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"], rc.V4),
    (["v5.channel.k8s.io", "v4.channel.k8s.io"], rc.V5),
    (["v3.channel.k8s.io"], rc.V3),
    (["v2.channel.k8s.io", "channel.k8s.io"], rc.V2),
])
def test_negotiate(offered: list[str], chosen: str) -> None:
    assert rc.negotiate(offered) == chosen


@pytest.mark.parametrize("offered", [[], ["channel.k8s.io"], ["v9.channel.k8s.io"]])
def test_negotiate_refuses_clearly(offered: list[str]) -> None:
    """v1 (or nothing) is refused with both lists in the message."""
    with pytest.raises(rc.NegotiationError, match="server supports v5.channel.k8s.io, v4"):
        rc.negotiate(offered)


def test_split_versions() -> None:
    assert rc.split_versions(["v4.channel.k8s.io, v3.channel.k8s.io", "v2.channel.k8s.io"]) == [rc.V4, rc.V3, rc.V2]


T = rc.StreamType


@pytest.mark.parametrize("version,opts,want", [
    (rc.V4, rc.StdioOptions(True, True, True, False), {T.ERROR, T.STDIN, T.STDOUT, T.STDERR}),
    (rc.V4, rc.StdioOptions(True, True, False, True), {T.ERROR, T.STDIN, T.STDOUT, T.RESIZE}),
    (rc.V2, rc.StdioOptions(False, True, False, True), {T.ERROR, T.STDOUT}),
    (rc.V3, rc.StdioOptions(False, False, True, False), {T.ERROR, T.STDERR}),
])
def test_expected_streams(version: str, opts: rc.StdioOptions, want: set[rc.StreamType]) -> None:
    assert rc.expected_streams(version, opts) == want


@pytest.mark.parametrize("types,error", [
    (["error", "stdout"], None),
    (["error", "bogus"], "unknown stream type"),
    (["error", "error"], "a second error"),
    (["error", "stdin"], "stdin stream was not requested"),
    (["error", None], "unknown stream type"),
])
def test_stream_set(types: list[str | None], error: str | None) -> None:
    ss = rc.StreamSet.for_request(rc.V4, rc.StdioOptions(False, True, False, False))
    try:
        for i, t in enumerate(types):
            ss.add(t, 2 * i + 1)
    except rc.StreamSetError as err:
        assert error is not None and error in str(err)
        return
    assert error is None and ss.complete and ss.missing() == []


@pytest.mark.parametrize("version,code,want", [
    (rc.V4, 0, {"metadata": {}, "status": "Success"}),
    (rc.V4, 3, {"metadata": {}, "status": "Failure", "message": "command terminated with non-zero exit code: 3",
                "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}),
    (rc.V5, 137, {"metadata": {}, "status": "Failure", "message": "command terminated with non-zero exit code: 137",
                  "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": "137"}]}}),
])
def test_exit_status_json(version: str, code: int, want: dict[str, object]) -> None:
    assert json.loads(rc.exit_status(version, code)) == want


@pytest.mark.parametrize("version,code,want", [
    (rc.V3, 0, b""), (rc.V2, 2, b"command terminated with non-zero exit code: 2"),
])
def test_exit_status_text(version: str, code: int, want: bytes) -> None:
    assert rc.exit_status(version, code) == want


def test_failure_status() -> None:
    st = json.loads(rc.failure_status(rc.V4, "container x not found"))
    assert st["status"] == "Failure" and st["message"] == "container x not found"
    assert rc.failure_status(rc.V2, "boom") == b"boom"


@pytest.mark.parametrize("chunks,sizes", [
    ([b'{"Width":80,"Height":24}'], [(80, 24)]),
    ([b'{"Width":80,', b'"Height":24}{"Width":1', b'00,"Height":50}'], [(80, 24), (100, 50)]),
    ([b'  {"Width":0,"Height":0}\n'], [(0, 0)]),
    ([b'{"Width":80'], []),
])
def test_resize_decoder(chunks: list[bytes], sizes: list[tuple[int, int]]) -> None:
    dec = rc.ResizeDecoder()
    got = [s for c in chunks for s in dec.feed(c)]
    assert got == sizes


@pytest.mark.parametrize("data", [b'{"Width":-1,"Height":2}', b'{"W":1}', b'[1,2]}', b'{"Width":"a","Height":1}',
                                  b"x" * 5000])
def test_resize_decoder_rejects(data: bytes) -> None:
    with pytest.raises(rc.ResizeError):
        rc.ResizeDecoder().feed(data)


# --- CRI request validation ---------------------------------------------------

@pytest.mark.parametrize("kw,field", [
    (dict(container_id="", cmd=["ls"], stdout=True), "container_id"),
    (dict(container_id="c", cmd=[], stdout=True), "cmd"),
    (dict(container_id="c", cmd=["a\0b"], stdout=True), "cmd[0]"),
    (dict(container_id="c", cmd=["sh"], tty=True, stdout=True, stderr=True), "stderr"),
    (dict(container_id="c", cmd=["sh"]), "stdin/stdout/stderr"),
])
def test_exec_request_rejected(kw: dict[str, object], field: str) -> None:
    req = api_pb2.ExecRequest(**kw)
    with pytest.raises(InvalidArgument, match=f"^{field.replace('[', '.').replace(']', '.')}"):
        validate_exec(req, list(req.cmd))


def test_exec_and_attach_accepted() -> None:
    p = validate_exec(api_pb2.ExecRequest(container_id="c", cmd=["sh"], tty=True, stdin=True, stdout=True), ["sh"])
    assert p.cmd == ("sh",) and p.tty and not p.stderr
    a = validate_attach(api_pb2.AttachRequest(container_id="c", stdout=True, stderr=True))
    assert a.stderr and not a.tty
    with pytest.raises(InvalidArgument, match="^stderr"):
        validate_attach(api_pb2.AttachRequest(container_id="c", tty=True, stderr=True))


@pytest.mark.parametrize("sandbox,ports,field", [("", [80], "pod_sandbox_id"), ("s", [0], "port.0."),
                                                 ("s", [80, 70000], "port.1.")])
def test_port_forward_request_rejected(sandbox: str, ports: list[int], field: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{field}"):
        validate_port_forward(sandbox, ports)


# --- portforward pairing ----------------------------------------------------------

def _h(kind: str, port: str | None, rid: str | None) -> Headers:
    h = [("streamtype", kind)]
    if port is not None:
        h.append(("port", port))
    if rid is not None:
        h.append(("requestid", rid))
    return tuple(h)


def test_portforward_pairs_by_request_id_and_legacy_stream_id() -> None:
    pairs = portforward.RequestPairs()
    assert pairs.add(1, _h("error", "80", "0")) is None
    assert pairs.add(3, _h("error", "81", "1")) is None
    assert pairs.add(5, _h("data", "81", "1")) == portforward.ForwardRequest("1", 81, 5, 3)
    assert pairs.add(7, _h("data", "80", "0")) == portforward.ForwardRequest("0", 80, 7, 1)
    # no requestid: the data stream is the error stream + 2
    assert pairs.add(9, _h("error", "90", None)) is None
    assert pairs.add(11, _h("data", "90", None)) == portforward.ForwardRequest("9", 90, 11, 9)
    assert pairs.pending_streams() == []


@pytest.mark.parametrize("headers,msg", [
    ([_h("bogus", "80", "0")], "unknown stream type"),
    ([_h("error", "80", "0"), _h("data", "81", "0")], "name ports"),
    ([_h("error", "x", "0"), _h("data", "x", "0")], "not a number"),
    ([_h("error", None, "0"), _h("data", None, "0")], "missing"),
    ([_h("error", "22", "0"), _h("data", "22", "0")], "not among the requested"),
    ([_h("error", "80", "0"), _h("error", "80", "0")], "second error"),
])
def test_portforward_pair_errors(headers: list[Headers], msg: str) -> None:
    pairs = portforward.RequestPairs(allowed=(80,))
    with pytest.raises(portforward.PortForwardError, match=msg):
        for i, h in enumerate(headers):
            pairs.add(2 * i + 1, h)

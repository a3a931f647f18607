"""The streaming server end to end: real crictl (client-go's SPDY and WebSocket
clients) and our own SPDY client, against a host-process backend.

The backend is fake (host processes, host loopback) because these tests are
about the server and its protocols; the daemon's shim-backed backend is
tested with the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from bundle import SUBREAPER
from dockyard.cri.streaming import spdy
from dockyard.cri.streaming.server import StreamServerConfig
from spdy_client import run_exec, upgrade
from streaming_fixture import StreamingDaemon, crictl_tty_session, streaming_daemon  # noqa: F401  (fixture)
from ws_exec_client import ws_exec

CRICTL = Path(__file__).resolve().parents[2] / "build" / "bin" / "crictl"
needs_crictl = pytest.mark.skipif(not CRICTL.exists(), reason="build/bin/crictl not built (make test builds it)")


@pytest.fixture(scope="module", autouse=True)
def _grpc_core_started(tmp_path_factory: pytest.TempPathFactory) -> None:
    """gRPC core opens its process-wide poller (an epoll fd and an eventfd)
    on first use and keeps it; start it before the per-test fd leak check
    takes its first snapshot, so only fds a test really leaks are reported."""
    d = StreamingDaemon(tmp_path_factory.mktemp("grpc-warm")).start()
    assert d.endpoint  # starts its gRPC server
    d.stop()


def exec_url(d: StreamingDaemon, cmd: list[str], **kw: Any) -> str:
    kw.setdefault("stdout", True)
    return str(d.call(lambda: d.server.get_exec_url(api_pb2.ExecRequest(container_id=kw.pop("cid", "c"),
                                                                       cmd=cmd, **kw))))


def crictl(d: StreamingDaemon, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[Any]:
    return SUBREAPER.run([str(CRICTL), "--runtime-endpoint", d.endpoint, "--timeout", "20s", *args],
                         timeout=timeout, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_idle(d: StreamingDaemon, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not d.backend.live and d.call(lambda: len(d.server._connections)) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"sessions still running: {len(d.backend.live)} processes")


# --- crictl, the real client --------------------------------------------------

@needs_crictl
@pytest.mark.parametrize("transport", ["spdy", "websocket"])
def test_crictl_exec_binary_stdin_round_trip(streaming_daemon: StreamingDaemon, transport: str) -> None:
    """1 MiB of binary data through crictl exec -i cat comes back byte for byte;
    stderr is separate; a non-zero exit code is reported."""
    data = os.urandom(1 << 20)
    r = crictl(streaming_daemon, "exec", "--transport", transport, "-i", "c1", "sh", "-c", "cat; echo E >&2; exit 3",
               input=data)
    assert r.stdout == data
    assert b"E\n" in r.stderr
    assert b"command terminated with exit code 3" in r.stderr
    assert r.returncode != 0
    ok = crictl(streaming_daemon, "exec", "--transport", transport, "c1", "echo", "hi")
    assert ok.returncode == 0 and ok.stdout == b"hi\n"
    wait_idle(streaming_daemon)


@needs_crictl
@pytest.mark.parametrize("transport", ["spdy", "websocket"])
def test_crictl_exec_tty_resize_and_exit_code(streaming_daemon: StreamingDaemon, transport: str) -> None:
    """crictl exec -it on a pty: typed input echoes, a window resize reaches
    the process (stty size), exit 3 is reported."""
    crictl_tty_session([str(CRICTL), "--runtime-endpoint", streaming_daemon.endpoint, "exec",
                        "--transport", transport, "-it", "c1", "sh"])
    started = streaming_daemon.backend.started[-1]
    assert (133, 51) in started.resizes
    wait_idle(streaming_daemon)


class _Httpd:
    def __init__(self) -> None:
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"pong:" + self.path.encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                return None
        H.timeout = 10  # a connection left open cannot hold stop() for longer
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        # Handler threads hold the accepted connections; tracked (not daemon)
        # threads are joined by server_close(), so stop() leaves no socket for
        # the fd leak check to find while a handler is still closing.
        self.srv.daemon_threads = False
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def httpd() -> Iterator[_Httpd]:
    h = _Httpd()
    yield h
    h.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@needs_crictl
@pytest.mark.parametrize("transport", ["spdy", "websocket"])
def test_crictl_port_forward(streaming_daemon: StreamingDaemon, httpd: _Httpd, transport: str) -> None:
    """crictl port-forward carries several HTTP fetches to the pod's port;
    a port nobody listens on gives a clear error on the error stream."""
    local = _free_port()
    dead = _free_port()
    with SUBREAPER._lock:
        proc = subprocess.Popen([str(CRICTL), "--runtime-endpoint", streaming_daemon.endpoint, "port-forward",
                                 "--transport", transport, "s1", f"{local}:{httpd.port}", f"{local + 1}:{dead}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        SUBREAPER._owned.add(proc.pid)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", local), 1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "crictl port-forward did not listen"
                time.sleep(0.1)
        for i in range(3):
            r = SUBREAPER.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{local}/x{i}"], timeout=20,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert r.stdout == f"pong:/x{i}".encode(), r.stderr
        bad = SUBREAPER.run(["curl", "-sS", "--max-time", "10", f"http://127.0.0.1:{local + 1}/"], timeout=20,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert bad.returncode != 0
        # client-go ends the whole port-forward once an error stream reports
        # a failure ("lost connection to pod"): that is the client's choice.
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        with SUBREAPER._lock:
            SUBREAPER._owned.discard(proc.pid)
    assert f"error forwarding port {dead} to pod s1".encode() in err


@needs_crictl
def test_crictl_invalid_request_is_invalid_argument(streaming_daemon: StreamingDaemon) -> None:
    """tty with stderr is refused before any URL is made."""
    r = crictl(streaming_daemon, "attach", "-t", "c1")   # crictl attach asks stdout+stderr; -t makes it tty
    assert r.returncode != 0


# --- our SPDY client: protocol cases ------------------------------------------

def test_token_is_single_use_and_unknown_is_404(streaming_daemon: StreamingDaemon) -> None:
    """A used or unknown token gets 404 and never runs the command again."""
    url = exec_url(streaming_daemon, ["echo", "once"])
    first = asyncio.run(run_exec(url, stderr=False))
    assert first.status == 101 and first.out("stdout") == b"once\n"
    assert first.error_json() == {"metadata": {}, "status": "Success"}
    again = asyncio.run(run_exec(url, stderr=False))
    assert again.status == 404
    assert asyncio.run(run_exec(url.rsplit("/", 1)[0] + "/nonsense", stderr=False)).status == 404
    # the token of an exec does not open an attach
    url2 = exec_url(streaming_daemon, ["echo"])
    assert asyncio.run(run_exec(url2.replace("/exec/", "/attach/"), stderr=False)).status == 404
    assert len(streaming_daemon.backend.started) == 1
    wait_idle(streaming_daemon)
    assert streaming_daemon.metrics.c.failed.get(("exec", "bad_token")) == 2


def test_expired_token_is_404(tmp_path: Path) -> None:
    """A token past its lifetime gets 404."""
    d = StreamingDaemon(tmp_path, StreamServerConfig(token_ttl=0.2)).start()
    try:
        url = exec_url(d, ["echo", "late"])
        time.sleep(0.4)
        assert asyncio.run(run_exec(url, stderr=False)).status == 404
        assert d.backend.started == []
    finally:
        d.stop()


@pytest.mark.parametrize("protocols,status,error", [
    (("v3.channel.k8s.io",), 101, b"command terminated with non-zero exit code: 4"),
    (("v2.channel.k8s.io",), 101, b"command terminated with non-zero exit code: 4"),
    (("channel.k8s.io",), 403, None),
    ((), 403, None),
])
def test_protocol_versions(streaming_daemon: StreamingDaemon, protocols: tuple[str, ...], status: int,
                           error: bytes | None) -> None:
    """v2/v3 are served with a text error stream; v1 (or none) is refused with 403."""
    url = exec_url(streaming_daemon, ["sh", "-c", "echo out; exit 4"], stderr=True)
    r = asyncio.run(run_exec(url, protocols=protocols))
    assert r.status == status
    if status == 101:
        assert r.headers["x-stream-protocol-version"] == protocols[0]
        assert r.out("stdout") == b"out\n" and r.out("error") == error
    else:
        assert b"server supports v5.channel.k8s.io" in r.out("body")


@pytest.mark.parametrize("protocols,chosen,error", [
    # Kubernetes' [Conformance] "Pods should support remote command execution
    # over websockets" offers only channel.k8s.io: the error channel is text.
    (["channel.k8s.io"], "channel.k8s.io", b"command terminated with non-zero exit code: 4"),
    (["channel.k8s.io", "v4.channel.k8s.io"], "v4.channel.k8s.io", None),
])
def test_websocket_exec_protocols(streaming_daemon: StreamingDaemon, protocols: list[str], chosen: str,
                                  error: bytes | None) -> None:
    """Exec over WebSocket is served under channel.k8s.io (v1) as well as v4/v5:
    stdout on channel 1, the exit on the error channel, then a normal close."""
    url = exec_url(streaming_daemon, ["sh", "-c", "echo remote execution test; exit 4"], stderr=True)
    r = asyncio.run(ws_exec(url, protocols))
    assert (r.status, r.protocol, r.close_code) == (101, chosen, 1000)
    assert r.out(1) == b"remote execution test\n"
    if error is not None:
        assert r.out(3) == error
    else:
        assert json.loads(r.out(3))["reason"] == "NonZeroExitCode"
    ok = asyncio.run(ws_exec(exec_url(streaming_daemon, ["echo", "fine"]), ["channel.k8s.io"]))
    assert ok.out(1) == b"fine\n" and ok.out(3) == b""  # v1: nothing on the error channel on success
    refused = asyncio.run(ws_exec(exec_url(streaming_daemon, ["true"]), ["base64.channel.k8s.io"]))
    assert refused.status == 403 and b"server supports v5.channel.k8s.io" in refused.body
    wait_idle(streaming_daemon)


def test_tty_resize_reaches_the_process(streaming_daemon: StreamingDaemon) -> None:
    """Resize messages on the resize stream set the pty size before the command reads it."""
    url = exec_url(streaming_daemon, ["sh", "-c", "sleep 0.5; stty size"], tty=True, stdin=True)
    r = asyncio.run(run_exec(url, tty=True, stdin=b"", resize=[(90, 20), (120, 40)]))
    assert b"40 120" in r.out("stdout")
    assert streaming_daemon.backend.started[-1].resizes == [(90, 20), (120, 40)]


def test_attach_and_unknown_container(streaming_daemon: StreamingDaemon) -> None:
    """Attach relays stdin/stdout; an unknown container is a Failure on the error stream."""
    d = streaming_daemon
    url = d.call(lambda: d.server.get_attach_url(api_pb2.AttachRequest(
        container_id="read x; echo got $x", stdin=True, stdout=True)))
    r = asyncio.run(run_exec(url, stdin=b"hello\n", stderr=False))
    assert r.out("stdout") == b"got hello\n"
    url = exec_url(d, ["true"], cid="missing")
    r = asyncio.run(run_exec(url, stderr=False))
    st = r.error_json()
    assert st["status"] == "Failure" and "container missing not found" in str(st["message"])
    wait_idle(d)
    assert d.metrics.c.failed.get(("exec", "backend")) == 1


def test_client_disconnect_cancels_the_process(streaming_daemon: StreamingDaemon) -> None:
    """A client that vanishes mid-stream gets its exec process killed (cancel), and nothing leaks."""
    d = streaming_daemon
    url = exec_url(d, ["sh", "-c", "echo started; sleep 1000"])

    async def go() -> None:
        reader, writer, status, _, rest = await upgrade(url, ["v4.channel.k8s.io"])
        assert status == 101
        conn = spdy.Connection(client=True)
        conn.open_stream((("streamtype", "error"),))
        conn.open_stream((("streamtype", "stdout"),))
        writer.write(conn.data_to_send())
        seen = b""
        data = rest
        async with asyncio.timeout(10):
            while True:
                for ev in conn.receive_data(data):
                    if isinstance(ev, spdy.Data):
                        seen += ev.data
                if b"started" in seen:
                    break
                data = await reader.read(4096)
        writer.transport.abort()
    asyncio.run(go())
    wait_idle(d)
    assert len(d.backend.cancelled) == 1 and d.backend.cancelled[0].popen.returncode == -9
    assert d.metrics.c.failed.get(("exec", "client_gone")) == 1
    assert d.metrics.c.active("exec") == 0


@pytest.mark.parametrize("garbage", [
    b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01",                 # SPDY/2 ping
    b"\x80\x03\x00\x01\x00\x00\x00\x0e\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\xde\xad\xbe\xef",  # bad zlib
    b"\x80\x03\x00\x03\x00\x00\x00\x02xx",                                # short RST_STREAM
])
def test_malformed_frame_closes_connection_server_survives(streaming_daemon: StreamingDaemon, garbage: bytes) -> None:
    """A malformed SPDY frame: GOAWAY(PROTOCOL_ERROR), the connection closes,
    the process is cancelled, and the next session works."""
    d = streaming_daemon
    url = exec_url(d, ["sleep", "1000"])

    async def go() -> list[spdy.Frame]:
        reader, writer, status, _, rest = await upgrade(url, ["v4.channel.k8s.io"])
        assert status == 101
        writer.write(garbage)
        data = rest
        async with asyncio.timeout(10):
            while chunk := await reader.read(4096):
                data += chunk
        writer.close()
        return spdy.FrameReader().feed(data)
    frames = asyncio.run(go())
    assert spdy.GoAway(0, spdy.GoAwayStatus.PROTOCOL_ERROR) in frames
    wait_idle(d)
    r = asyncio.run(run_exec(exec_url(d, ["echo", "fine"]), stderr=False))
    assert r.out("stdout") == b"fine\n"


def test_wrong_stream_set_is_refused(streaming_daemon: StreamingDaemon) -> None:
    """A stream the request did not ask for ends the session without running anything."""
    url = exec_url(streaming_daemon, ["echo", "x"])   # no stdin requested
    r = asyncio.run(run_exec(url, stdin=b"unexpected", stderr=False))
    assert r.out("stdout") == b"" and streaming_daemon.backend.started == []
    wait_idle(streaming_daemon)
    assert streaming_daemon.metrics.c.failed.get(("exec", "protocol")) == 1


def test_bad_http_gets_an_error_and_server_survives(streaming_daemon: StreamingDaemon) -> None:
    """Plain HTTP (no upgrade) is 400; binary junk is 400; the server keeps serving."""
    host, port = streaming_daemon.server.base_url.removeprefix("http://").rsplit(":", 1)
    for raw in (b"GET /exec/x HTTP/1.1\r\nHost: a\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"):
        with socket.create_connection((host, int(port)), 5) as s:
            s.sendall(raw)
            assert s.recv(100).startswith(b"HTTP/1.1 400")
    r = asyncio.run(run_exec(exec_url(streaming_daemon, ["echo", "ok"]), stderr=False))
    assert r.out("stdout") == b"ok\n"


def test_200_concurrent_exec_sessions(streaming_daemon: StreamingDaemon) -> None:
    """200 exec sessions at once each get their own answer and exit status."""
    d = streaming_daemon
    urls = [exec_url(d, ["sh", "-c", f"echo {i}; exit {i % 3}"]) for i in range(200)]

    async def all_of_them() -> list[Any]:
        return await asyncio.gather(*(run_exec(u, stderr=False, timeout=120) for u in urls))
    results = asyncio.run(all_of_them())
    for i, r in enumerate(results):
        assert r.status == 101 and r.out("stdout") == f"{i}\n".encode()
        st = r.error_json()
        if i % 3:
            assert st["details"] == {"causes": [{"reason": "ExitCode", "message": str(i % 3)}]}
        else:
            assert st["status"] == "Success"
    wait_idle(d)
    assert d.metrics.c.opened["exec"] == 200 and d.metrics.c.active("exec") == 0


def test_spdy_port_forward_unlisted_port_and_dead_port(streaming_daemon: StreamingDaemon, httpd: _Httpd) -> None:
    """Our client: a forwarded request works, a port not in the request's list
    and a port nobody listens on get messages on their error streams."""
    d = streaming_daemon
    dead = _free_port()
    url = d.call(lambda: d.server.get_portforward_url(api_pb2.PortForwardRequest(
        pod_sandbox_id="s1", port=[httpd.port, dead])))

    async def go() -> dict[str, bytes]:
        reader, writer, status, headers, rest = await upgrade(url, ["portforward.k8s.io"])
        assert status == 101 and headers["x-stream-protocol-version"] == "portforward.k8s.io"
        conn = spdy.Connection(client=True)
        names: dict[int, str] = {}
        for rid, port in (("0", httpd.port), ("1", dead), ("2", 1)):
            for kind in ("error", "data"):
                sid = conn.open_stream((("streamtype", kind), ("port", str(port)), ("requestid", rid)))
                names[sid] = f"{kind}{rid}"
        data_sid = next(s for s, n in names.items() if n == "data0")
        conn.send_data(data_sid, b"GET /pf HTTP/1.0\r\n\r\n", fin=True)
        writer.write(conn.data_to_send())
        got: dict[str, bytes] = {n: b"" for n in names.values()}
        data = rest
        try:
            async with asyncio.timeout(15):
                while True:
                    for ev in conn.receive_data(data):
                        if isinstance(ev, spdy.Data) and ev.stream_id in names:
                            got[names[ev.stream_id]] += ev.data
                    if got["error1"] and got["error2"] and b"pong:/pf" in got["data0"]:
                        break
                    writer.write(conn.data_to_send())
                    data = await reader.read(65536)
        finally:
            # closed for certain before the loop goes: the fd leak check runs right after
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        return got
    got = asyncio.run(go())
    assert b"pong:/pf" in got["data0"]
    assert f"error forwarding port {dead} to pod s1".encode() in got["error1"]
    assert b"port 1 was not among the requested ports" in got["error2"]
    wait_idle(d)


def test_tls(tmp_path: Path) -> None:
    """With a certificate the server speaks HTTPS and the URL says so."""
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    r = SUBREAPER.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                       "-keyout", str(key), "-out", str(cert), "-days", "1"], timeout=60,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr
    d = StreamingDaemon(tmp_path, StreamServerConfig(tls_cert_file=str(cert), tls_key_file=str(key))).start()
    try:
        url = exec_url(d, ["echo", "x"])
        assert url.startswith("https://127.0.0.1:")
        import ssl
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        host, port = url.removeprefix("https://").split("/")[0].rsplit(":", 1)
        with socket.create_connection((host, int(port)), 5) as raw, ctx.wrap_socket(raw) as s:
            s.sendall(b"GET /exec/unknown HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 404")
    finally:
        d.stop()

"""Exec, Attach and PortForward end to end: dockyardd's streaming server, its shim
backend and a real pod, driven by crictl (SPDY, and WebSocket with
``--transport websocket``) and by the project's SPDY test client.

Each test runs a pod through the ``pods`` fixture, which removes it and then
checks that nothing is left: no mount, netns, cgroup, shim or container
process.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from bundle import SUBREAPER
from cri_api.v1 import api_pb2
from daemon_fixture import CRICTL, daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)
from spdy_client import run_exec, upgrade
from streaming_fixture import crictl_tty_session

from dockyard.cri.streaming import spdy

pytestmark = pytest.mark.root

TRANSPORTS = ["spdy", "websocket"]
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_container(pods: Pods, name: str, command: list[str], **extra: Any) -> tuple[str, str]:
    """A running container in a new pod: (pod id, container id)."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod(name)
    cid = pods.crictl("create", pod, pods.write(f"ctr-{name}", container_config(name, command, **extra)), pod_cfg)
    pods.crictl("start", cid)
    return pod, cid


def crictl_argv(pods: Pods, *args: str) -> list[str]:
    endpoint = f"unix://{pods.daemon.socket}"
    return [str(CRICTL), "--runtime-endpoint", endpoint, "--image-endpoint", endpoint, "--timeout", "30s", *args]


def crictl_bytes(pods: Pods, *args: str, input: bytes | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return SUBREAPER.run(crictl_argv(pods, *args), timeout=timeout, input=input,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def popen(argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
    """A long-lived child the session subreaper knows about (so it never reaps it behind our back)."""
    with SUBREAPER._lock:
        proc = subprocess.Popen(argv, **kw)
        SUBREAPER._owned.add(proc.pid)
    return proc


def finish(proc: subprocess.Popen[bytes]) -> bytes:
    """Kill (if still running) and reap; its stderr if piped; every pipe to it closed."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    with SUBREAPER._lock:
        SUBREAPER._owned.discard(proc.pid)
    err = proc.stderr.read() if proc.stderr is not None else b""
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            f.close()
    return err


def in_container(pods: Pods, cid: str, script: str) -> str:
    return pods.crictl("exec", "-s", cid, "sh", "-c", script)


def execs_in_shim(pods: Pods, pod: str, cid: str) -> list[str]:
    """The exec ids the pod's shim still tracks for ``cid`` (asked over its socket)."""
    from dockyard.api import shim as api

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(pods.state / "shims" / pod / "shim.sock"))
    try:
        sock.sendall(api.encode(api.request(1, "state", {"container_id": cid})))
        frames = api.FrameBuffer()
        while True:
            for message in frames.feed(sock.recv(1 << 16)):
                return list(api.parse_reply(message)[1]["execs"])
    finally:
        sock.close()


def grpc_url(pods: Pods, rpc: str, request: Any) -> str:
    with pods.daemon.channel() as ch:
        return str(getattr(pods.daemon.runtime(ch), rpc)(request, timeout=30).url)


# --- crictl exec ----------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_crictl_exec_tty_echo_resize_exit_code(pods: Pods, transport: str) -> None:
    """crictl exec -it sh on a pty: typed input echoes, a window resize reaches the
    process in the container (stty size), `exit 3` is reported as exit code 3."""
    _, cid = start_container(pods, "tty", SLEEPER)
    crictl_tty_session(crictl_argv(pods, "exec", "--transport", transport, "-it", cid, "sh"))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_crictl_exec_binary_stdin(pods: Pods, transport: str) -> None:
    """crictl exec -i without a tty: 1 MiB of binary data piped through `cat` in the
    container comes back byte for byte, stderr stays separate, the exit code is reported."""
    pod, cid = start_container(pods, "bin", SLEEPER)
    data = os.urandom(1 << 20)
    r = crictl_bytes(pods, "exec", "--transport", transport, "-i", cid, "sh", "-c", "cat; echo E >&2; exit 4",
                     input=data)
    assert r.stdout == data
    assert b"E\n" in r.stderr and b"exit code 4" in r.stderr
    ok = crictl_bytes(pods, "exec", "--transport", transport, cid, "echo", "hi")
    assert (ok.returncode, ok.stdout) == (0, b"hi\n")
    wait_for(lambda: execs_in_shim(pods, pod, cid) == [], what="the shim to forget the streaming execs")


# --- crictl attach -----------------------------------------------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_crictl_attach(pods: Pods, transport: str) -> None:
    """crictl attach -i to a container that prints in a loop and reads stdin: the client
    sees the loop's output and the answer to what it typed; the log is still written;
    detaching leaves the container running (no stdin_once)."""
    script = "while true; do echo tick; sleep 0.2; done & while read l; do echo got:$l; done"
    _, cid = start_container(pods, "att", ["sh", "-c", script], stdin=True)
    proc = popen(crictl_argv(pods, "attach", "--transport", transport, "-i", cid),
                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    out = bytearray()
    try:
        deadline = time.monotonic() + 20
        while b"tick" not in out:
            assert time.monotonic() < deadline, f"no output from attach: {bytes(out)!r}"
            if select.select([proc.stdout], [], [], 1)[0]:
                out += os.read(proc.stdout.fileno(), 4096)
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        while b"got:hello" not in out:
            assert time.monotonic() < deadline, f"stdin did not reach the container: {bytes(out)!r}"
            if select.select([proc.stdout], [], [], 1)[0]:
                out += os.read(proc.stdout.fileno(), 4096)
    finally:
        finish(proc)
    log = (pods.logs / "att" / "att.log").read_text()
    assert " stdout F got:hello" in log and " stdout F tick" in log
    time.sleep(0.3)
    assert json.loads(pods.crictl("inspect", cid))["status"]["state"] == "CONTAINER_RUNNING"


def test_attach_stdin_once_over_spdy(pods: Pods) -> None:
    """A stdin_once container's stdin is closed when the first attach that used stdin ends:
    `cat` sees EOF after the client's input, and the container exits 0."""
    _, cid = start_container(pods, "once", ["sh", "-c", "cat; echo cat-done"], stdin=True, stdin_once=True)
    url = grpc_url(pods, "Attach", api_pb2.AttachRequest(container_id=cid, stdin=True, stdout=True, stderr=True))
    res = asyncio.run(run_exec(url, stdin=b"typed\n"))
    assert res.out("stdout") == b"typed\ncat-done\n"
    assert res.error_json().get("status") == "Success"
    wait_for(lambda: json.loads(pods.crictl("inspect", cid))["status"]["state"] == "CONTAINER_EXITED",
             what="the stdin_once container to exit")


# --- crictl port-forward -------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_crictl_port_forward(pods: Pods, transport: str) -> None:
    """crictl port-forward reaches busybox httpd listening inside the pod's netns (fetched
    by a Python client on loopback, several times); a port nobody listens on in the pod
    gives an error on the error stream that crictl reports."""
    pod, cid = start_container(pods, "web", ["sh", "-c",
                               "mkdir -p /www && echo hello-from-pod > /www/index.html && httpd -f -p 8080 -h /www"])
    wait_for(lambda: "8080" in in_container(pods, cid, "netstat -ltn"), what="httpd to listen")
    local = _free_port()
    dead = _free_port()
    proc = popen(crictl_argv(pods, "port-forward", "--transport", transport, pod, f"{local}:8080", f"{dead}:9"),
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", local), 1).close()
                return True
            except OSError:
                return False
        wait_for(listening, what="crictl port-forward to listen")
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", local, timeout=10)
            conn.request("GET", "/index.html")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (200, b"hello-from-pod\n")
            conn.close()
        # Port 9 in the pod: nobody listens there.
        with socket.create_connection(("127.0.0.1", dead), 10) as s:
            s.settimeout(10)
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
        # (client-go's port-forward ends the whole session after a stream error: nothing to fetch after this.)
        proc.wait(15)
    finally:
        err = finish(proc).decode(errors="replace")
    assert "9" in err and ("refused" in err or "error" in err.lower()), err


def test_port_forward_error_stream_names_the_port(pods: Pods) -> None:
    """Over SPDY, a port nobody listens on in the pod gets a clear message on the
    request's error stream, naming the port."""
    pod, _ = start_container(pods, "pfe", SLEEPER)
    url = grpc_url(pods, "PortForward", api_pb2.PortForwardRequest(pod_sandbox_id=pod))

    async def run() -> bytes:
        reader, writer, status, _, rest = await upgrade(url, ["portforward.k8s.io"])
        assert status == 101
        conn = spdy.Connection(client=True)
        err = conn.open_stream((("streamtype", "error"), ("port", "9"), ("requestid", "0")))
        conn.open_stream((("streamtype", "data"), ("port", "9"), ("requestid", "0")))
        writer.write(conn.data_to_send())
        got = bytearray()
        data = rest
        async with asyncio.timeout(20):
            while True:
                done = False
                for ev in conn.receive_data(data):
                    if isinstance(ev, spdy.Data) and ev.stream_id == err:
                        got += ev.data
                        done = done or ev.fin
                writer.write(conn.data_to_send())
                if done:
                    break
                data = await reader.read(65536)
                if not data:
                    break
        writer.close()
        return bytes(got)
    message = asyncio.run(run()).decode()
    assert "9" in message and "refused" in message.lower(), message


# --- bad input and load ----------------------------------------------------------------------

def test_reused_token_unknown_and_stopped_container(pods: Pods) -> None:
    """A URL's token serves once (the second use gets 404); Exec for an unknown container
    is NOT_FOUND; for a stopped one FAILED_PRECONDITION; tty with stderr is INVALID_ARGUMENT."""
    pod, cid = start_container(pods, "bad", SLEEPER)
    url = grpc_url(pods, "Exec", api_pb2.ExecRequest(container_id=cid, cmd=["echo", "once"], stdout=True))
    first = asyncio.run(run_exec(url, stderr=False))
    assert first.status == 101 and first.out("stdout") == b"once\n"
    again = asyncio.run(run_exec(url, stderr=False))
    assert again.status == 404
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        with pytest.raises(grpc.RpcError) as unknown:
            rt.Exec(api_pb2.ExecRequest(container_id="nosuchcontainer", cmd=["true"], stdout=True), timeout=10)
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as both:
            rt.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["true"], tty=True, stdout=True, stderr=True), timeout=10)
        assert both.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as gone_pod:
            rt.PortForward(api_pb2.PortForwardRequest(pod_sandbox_id="nosuchpod"), timeout=10)
        assert gone_pod.value.code() is grpc.StatusCode.NOT_FOUND
    pods.crictl("stop", "--timeout", "1", cid)
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        for rpc, req in (("Exec", api_pb2.ExecRequest(container_id=cid, cmd=["true"], stdout=True)),
                         ("Attach", api_pb2.AttachRequest(container_id=cid, stdout=True))):
            with pytest.raises(grpc.RpcError) as stopped:
                getattr(rt, rpc)(req, timeout=10)
            assert stopped.value.code() is grpc.StatusCode.FAILED_PRECONDITION, rpc


def test_client_disconnect_kills_the_exec(pods: Pods) -> None:
    """A client that disconnects mid-stream: the exec process in the container is killed,
    the shim forgets the exec, and the daemon holds no fd of it afterwards."""
    pod, cid = start_container(pods, "disc", SLEEPER)
    assert pods.daemon.proc is not None
    daemon_pid = pods.daemon.proc.pid
    url = grpc_url(pods, "Exec", api_pb2.ExecRequest(container_id=cid, cmd=["sh", "-c", "echo started; exec sleep 4242"],
                                                      stdin=True, stdout=True, stderr=True))

    async def connect_and_leave() -> bytes:
        reader, writer, status, _, rest = await upgrade(url, ["v4.channel.k8s.io"])
        assert status == 101
        conn = spdy.Connection(client=True)
        names = {}
        for kind in ("error", "stdin", "stdout", "stderr"):
            names[conn.open_stream((("streamtype", kind),))] = kind
        writer.write(conn.data_to_send())
        got = bytearray()
        data = rest
        async with asyncio.timeout(20):
            while b"started" not in got:
                for ev in conn.receive_data(data):
                    if isinstance(ev, spdy.Data) and names.get(ev.stream_id) == "stdout":
                        got += ev.data
                writer.write(conn.data_to_send())
                if b"started" in got:
                    break
                data = await reader.read(65536)
                assert data, "server closed before the process started"
        writer.transport.abort()
        return bytes(got)
    assert b"started" in asyncio.run(connect_and_leave())
    wait_for(lambda: "4242" not in in_container(pods, cid, "ps -o args"), what="the exec process to be killed")
    wait_for(lambda: execs_in_shim(pods, pod, cid) == [], what="the shim to forget the exec")
    links = [os.readlink(f"/proc/{daemon_pid}/fd/{n}") for n in os.listdir(f"/proc/{daemon_pid}/fd")]
    assert not [ln for ln in links if ln.startswith("pipe:")], f"the daemon still holds pipes: {links}"


def test_200_concurrent_exec_sessions(pods: Pods) -> None:
    """200 exec sessions at once in one container each get their own output and exit code."""
    _, cid = start_container(pods, "many", SLEEPER)
    n = 200
    urls = [grpc_url(pods, "Exec", api_pb2.ExecRequest(container_id=cid, cmd=["sh", "-c", f"echo out{i}; exit {i % 7}"],
                                                        stdout=True, stderr=True)) for i in range(n)]

    async def all_sessions() -> list[Any]:
        return await asyncio.gather(*(run_exec(u, timeout=120) for u in urls))
    results = asyncio.run(all_sessions())
    for i, res in enumerate(results):
        assert res.status == 101, (i, res.status)
        assert res.out("stdout") == f"out{i}\n".encode(), (i, res.out("stdout"), res.out("stderr"), res.error_json())
        code = i % 7
        if code == 0:
            assert res.error_json().get("status") == "Success", (i, res.error_json())
        else:
            causes = res.error_json()["details"]["causes"]  # type: ignore[index]
            assert {"reason": "ExitCode", "message": str(code)} in causes, (i, causes)
    metrics = pods.daemon.scrape()
    assert f'dockyard_streaming_sessions_opened_total{{kind="exec"}} {float(n)}' in metrics
    # A session counts as active until the server has closed its connection, which may be
    # just after the client read its last frame.
    deadline = time.monotonic() + 10
    while 'dockyard_streaming_sessions_active{kind="exec"} 0.0' not in metrics and time.monotonic() < deadline:
        time.sleep(0.05)
        metrics = pods.daemon.scrape()
    assert 'dockyard_streaming_sessions_active{kind="exec"} 0.0' in metrics

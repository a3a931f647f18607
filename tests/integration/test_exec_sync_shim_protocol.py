"""ExecSync against shims of both protocol versions, through a real dockyardd.

A shim of protocol 2 runs the command, waits for it, kills it at the
deadline and forgets it, all in one ``exec_sync`` request.  A shim of
protocol 1, one started by an older daemon that this daemon adopted, does
not know that method: the daemon asks the shim's protocol with ``ping`` and
serves ExecSync through ``exec``, ``wait`` and ``delete``.  The old shim here
is the real one: the shim, runtime and protocol packages of the last commit
before protocol 2, taken from git history.

The daemon's runtime call metrics count the shim calls each ExecSync made.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import REPO, daemon_factory, test_registry  # noqa: F401 (fixtures)
from dockyard.api import shim as api
from procfs import each_process
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

# The last commit whose shim speaks protocol 1 only.
PROTOCOL_1_COMMIT = "e14336e4ccdf97bd8cd46942e323c945b415d553"
# A command line no other process on the machine has: the timed-out exec's, looked for after it.
SLEEPER = ["sleep", "4242"]
COUNT = re.compile(r'^dockyard_runtime_call_duration_seconds_count\{[^}]*\bverb="([a-z_]+)"[^}]*\} (\S+)$', re.M)


def old_shim(tmp: Path) -> Path:
    """A launcher of the protocol-1 shim: its packages from git history, run without site-packages
    (-IS, as the real launcher), so that nothing of today's tree is imported."""
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{PROTOCOL_1_COMMIT}^{{commit}}"],
                      capture_output=True).returncode != 0:
        pytest.skip(f"this checkout lacks commit {PROTOCOL_1_COMMIT[:12]}, the source of the protocol-1 shim "
                    "(a shallow clone?)")
    tree = tmp / "old-shim"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--prefix=dockyard/", PROTOCOL_1_COMMIT,
                              "api", "runtime", "shim"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    launcher = tree / "dockyard-shim"
    launcher.write_text(f"#!{sys.executable} -IS\n"
                        "import sys\n"
                        f"sys.path.insert(0, {str(tree)!r})\n"
                        "from dockyard.shim.main import main\n"
                        "sys.exit(main())\n")
    launcher.chmod(0o755)
    return launcher


def shim_call(pods: Pods, pod_id: str, method: str, **params: Any) -> dict[str, Any]:
    """One request straight to the pod's shim, as protocol 1 speaks it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(api.socket_path(api.shim_dir(str(pods.state), pod_id)))
        sock.sendall(api.encode({"v": 1, "id": 1, "method": method, "params": params}))
        frames = api.FrameBuffer()
        while True:
            data = sock.recv(1 << 16)
            assert data, f"the shim closed the connection before answering {method}"
            for message in frames.feed(data):
                if not api.is_event(message):
                    return api.parse_reply(message, method)[1]


def shim_calls(pods: Pods) -> dict[str, float]:
    """The daemon's shim calls so far, by verb."""
    text = pods.daemon.scrape()
    counts: dict[str, float] = {}
    for verb, value in COUNT.findall(text):
        counts[verb] = counts.get(verb, 0.0) + float(value)
    assert counts, "no runtime call counts in the scrape:\n" + "\n".join(
        line for line in text.splitlines() if "runtime_call" in line)
    return counts


def calls_since(pods: Pods, before: dict[str, float]) -> dict[str, float]:
    return {verb: n - before.get(verb, 0.0) for verb, n in shim_calls(pods).items() if n != before.get(verb, 0.0)}


def sleepers() -> list[int]:
    wanted = "\0".join(SLEEPER).encode()
    return [pid for pid, cmdline in each_process("cmdline") if cmdline.rstrip(b"\0") == wanted]


def start_sleeper_pod(pods: Pods) -> tuple[str, str]:
    pods.daemon.pull("busybox")
    pods.daemon.pull("registry.k8s.io/pause:3.10")
    pod, pod_cfg = pods.run_pod("exec")
    cid = pods.crictl("create", pod, pods.write("c", container_config("c", ["sleep", "1000"])), pod_cfg)
    pods.crictl("start", cid)
    return pod, cid


def exec_sync(pods: Pods, cid: str, cmd: list[str], timeout: int = 0) -> api_pb2.ExecSyncResponse:
    with pods.daemon.channel() as ch:
        return pods.daemon.runtime(ch).ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout),
                                                timeout=60)


def check_exec_sync(pods: Pods, cid: str) -> None:
    """Output and exit code come back; a command past its timeout is killed and DEADLINE_EXCEEDED."""
    got = exec_sync(pods, cid, ["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
    assert (got.stdout, got.stderr, got.exit_code) == (b"out\n", b"err\n", 3)
    with pytest.raises(grpc.RpcError) as late:
        exec_sync(pods, cid, SLEEPER, timeout=1)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "timed out after 1s" in str(late.value.details())
    assert sleepers() == [], "the timed-out command still runs"


def test_a_protocol_2_shim_serves_exec_sync_in_one_call(pods: Pods) -> None:
    """One exec_sync call per ExecSync, nothing else; the shim has forgotten the exec by the answer."""
    pod, cid = start_sleeper_pod(pods)
    assert shim_call(pods, pod, "ping")["protocol"] == api.PROTOCOL_VERSION == 2
    before = shim_calls(pods)
    check_exec_sync(pods, cid)
    # The first ExecSync asks the shim's protocol (once per connection).
    assert calls_since(pods, before) == {"ping": 1.0, "exec_sync": 2.0}
    assert shim_call(pods, pod, "state", container_id=cid)["execs"] == []


def test_a_protocol_1_shim_still_serves_exec_sync(pods: Pods) -> None:
    """A shim from before exec_sync (as one an older daemon started): exec, wait and delete, as before."""
    pods.daemon.stop()
    pods.daemon.config["shim_binary"] = str(old_shim(pods.tmp))
    pods.daemon.start()
    pod, cid = start_sleeper_pod(pods)
    assert shim_call(pods, pod, "ping")["protocol"] == 1
    before = shim_calls(pods)
    check_exec_sync(pods, cid)
    made = calls_since(pods, before)
    # The first ExecSync asks the shim's protocol once; the timed-out one also kills and waits again.
    assert made.get("exec_sync", 0) == 0 and made["ping"] == 1 and made["exec"] == 2, made
    assert made["kill"] == 1 and made["wait"] == 3, made
    # Each exec's delete runs after its answer.
    wait_for(lambda: shim_call(pods, pod, "state", container_id=cid)["execs"] == [], "the shim to forget the execs")


def wait_for(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)

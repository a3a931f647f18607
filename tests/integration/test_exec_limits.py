"""ExecSync and Exec with hostile arguments and huge output: one bad request
never blocks the next one, every refusal is INVALID_ARGUMENT naming the
field, and a reply always fits in one CRI message.

Facts these tests rely on:
- execve(2) refuses a single argument or environment string of 128 KiB or
  more (MAX_ARG_STRLEN, with its NUL) with E2BIG; a string with a NUL byte
  cannot be an argv entry at all (C strings end at the first NUL).
- A pipe holds 64 KiB; a writer blocks once it is full and nobody reads.
- The shim waits for each runtime call it makes (tens of milliseconds); the
  runtime's stdio during ``create`` and ``exec`` is the process's own.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

MiB = 1 << 20
# A runtime that writes 256 KiB to its stderr before it does anything (crun
# and runc print warnings there; so do wrappers), then is runc.
CHATTY_RUNTIME = """#!/bin/sh
head -c 262144 /dev/zero | tr '\\0' w >&2
exec /usr/sbin/runc "$@"
"""


@pytest.fixture
def pods_extra_config(tmp_path: Path) -> dict[str, Any]:
    chatty = tmp_path / "chatty-runc"
    chatty.write_text(CHATTY_RUNTIME)
    chatty.chmod(0o755)
    handlers = {"dockyard-runc": {"binary": "dockyard-runc"}, "chatty": {"binary": str(chatty)}}
    return {"runtimes": {"default": "dockyard-runc", "handlers": handlers}}


def running_container(pods: Pods, name: str, handler: str = "") -> str:
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod(name, handler)
    cid = pods.crictl("create", pod, pods.write(f"ctr-{name}", container_config(name, ["sleep", "1000"])), pod_cfg)
    pods.crictl("start", cid)
    return cid


def exec_sync(pods: Pods, cid: str, cmd: list[str], timeout: float = 30.0) -> api_pb2.ExecSyncResponse:
    with pods.daemon.channel() as ch:
        return pods.daemon.runtime(ch).ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=cmd), timeout=timeout)


def exec_sync_error(pods: Pods, cid: str, cmd: list[str]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        exec_sync(pods, cid, cmd)
    return info.value


def test_hostile_exec_argv_is_refused_and_the_next_exec_works(pods: Pods) -> None:
    """ExecSync with cmd[0] of 1 MiB, [""], or a NUL byte is INVALID_ARGUMENT
    naming the field in a short message (the 1 MiB one used to hang until the
    client's deadline and wedge every later exec), and `true` right after
    each answers at once."""
    cid = running_container(pods, "hostile")
    for cmd, field in ((["A" * MiB], "cmd[0]"), ([""], "cmd[0]"), (["sh", "-c", "echo \0"], "cmd[2]"),
                       (["x"] * 5000, "cmd"), (["sh"] + ["y" * 100_000] * 20, "cmd")):
        err = exec_sync_error(pods, cid, cmd)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.details()[:300])
        assert err.details().startswith(field) and len(err.details()) < 300, err.details()[:300]
        assert exec_sync(pods, cid, ["true"], timeout=20).exit_code == 0
    with pods.daemon.channel() as ch:
        with pytest.raises(grpc.RpcError) as info:
            pods.daemon.runtime(ch).Exec(api_pb2.ExecRequest(container_id=cid, cmd=["A" * MiB], stdout=True))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and info.value.details().startswith("cmd[0]")


def test_longest_argument_execve_takes(pods: Pods) -> None:
    """An argument of 128 KiB - 1 bytes reaches the process whole."""
    cid = running_container(pods, "longarg")
    resp = exec_sync(pods, cid, ["sh", "-c", 'echo -n "$1" | wc -c', "sh", "z" * (128 * 1024 - 1)])
    assert (resp.exit_code, resp.stdout.strip()) == (0, b"131071")


def test_output_past_the_message_limit_is_trimmed_to_fit(pods: Pods) -> None:
    """20 MiB on stdout and 20 MiB on stderr (the shim keeps 16 MiB of each)
    come back as one reply of at most 16 MiB, each stream's head kept, and
    stderr ends saying what was cut (it was RESOURCE_EXHAUSTED: 'Sent message
    larger than max')."""
    cid = running_container(pods, "bigout")
    script = "head -c 20971520 /dev/zero | tr '\\0' o; head -c 20971520 /dev/zero | tr '\\0' e >&2"
    # kubelet's CRI client takes messages up to 16 MiB
    options = [("grpc.max_receive_message_length", 16 * MiB)]
    with grpc.insecure_channel(f"unix://{pods.daemon.socket}", options=options) as ch:
        stub = pods.daemon.runtime(ch)
        resp = stub.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script]), timeout=60)
    assert resp.exit_code == 0
    assert resp.ByteSize() <= 16 * MiB
    assert set(resp.stdout) == {ord("o")} and len(resp.stdout) > 7 * MiB
    head, _, note = resp.stderr.partition(b"\n[dockyard: exec output truncated")
    assert set(head) == {ord("e")} and len(head) > 7 * MiB
    assert f"stdout kept {len(resp.stdout)} of {20 * MiB} bytes".encode() in note, note
    assert f"stderr kept {len(head)} of {20 * MiB} bytes".encode() in note, note


def test_a_runtime_that_writes_before_it_returns_does_not_wedge_the_shim(pods: Pods) -> None:
    """A runtime (here a wrapper of runc) that writes 256 KiB to its stderr,
    which is the process's own, before it returns: the shim drains the
    process's pipes while it waits for the runtime, so create, exec and
    every later call answer (the shim used to wait on the runtime while the
    runtime waited on a full pipe, 60 s per call); what it wrote is in the
    container's log as the process's stderr, as under containerd."""
    cid = running_container(pods, "chatty", handler="chatty")
    done: list[api_pb2.ExecSyncResponse] = []
    worker = threading.Thread(target=lambda: done.append(exec_sync(pods, cid, ["echo", "hi"], timeout=30)))
    worker.start()
    worker.join(40)
    assert done and done[0].stdout == b"hi\n", done
    assert done[0].stderr.count(b"w") == 262144
    log = (pods.logs / "chatty" / "chatty.log").read_text()
    assert log.count("w") >= 262144 and " stderr " in log

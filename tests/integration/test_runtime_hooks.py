"""OCI hooks: when each kind runs, where, with what state on stdin, and what a failure does."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from bundle import Bundle, runc_gap

pytestmark = pytest.mark.root

HOST_HOOKS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")


def recording_hook(name: str, log: str, shell: str = "/bin/sh") -> dict[str, Any]:
    """A hook that appends `=== name $HOOK_VAR` and the state it got on stdin to `log`."""
    script = f'{{ echo "=== {name} $HOOK_VAR $1"; cat; echo; }} >> {log}'
    return {"path": shell, "args": ["sh", "-c", script, "sh", f"arg-{name}"], "env": [f"HOOK_VAR=env-{name}"]}


def parse_log(text: str) -> list[tuple[list[str], dict[str, Any] | None]]:
    """[(header words, state or None)] in the order they were appended."""
    records = []
    for chunk in text.split("=== ")[1:]:
        header, _, body = chunk.partition("\n")
        body = body.strip()
        records.append((header.split(), json.loads(body) if body else None))
    return records


@pytest.fixture
def hook_log(tmp_path: Path) -> Path:
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    return logdir


def configure_all_hooks(bundle: Bundle, hook_log: Path) -> Path:
    """Record every hook kind (and the program's start) in one log file; return its host path."""
    log = hook_log / "hooks.log"
    hooks: dict[str, list[dict[str, Any]]] = {name: [recording_hook(name, str(log))] for name in HOST_HOOKS}
    # startContainer runs in the container: busybox's sh, and the log through a bind mount on /tmp.
    hooks["startContainer"] = [recording_hook("startContainer", "/tmp/hooks.log")]
    bundle.config["hooks"] = hooks
    bundle.config["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(hook_log), "options": ["bind"]})
    bundle.sh('echo "=== process" >> /tmp/hooks.log; exec sleep 1000')
    return log


@runc_gap("runs poststart hooks during create")
def test_create_runs_only_the_create_hooks(bundle: Bundle, hook_log: Path) -> None:
    """create runs prestart, createRuntime and createContainer, in that order, and nothing else."""
    log = configure_all_hooks(bundle, hook_log)
    bundle.create_ok()
    try:
        assert [header[0] for header, _ in parse_log(log.read_text())] == [
            "prestart", "createRuntime", "createContainer"
        ]
    finally:
        bundle.delete(force=True)


def test_hooks_order_args_env_and_state(bundle: Bundle, hook_log: Path) -> None:
    """create-time hooks run first; startContainer runs inside the container before the program;
    poststop runs last, at delete. Each hook gets its args, its env and the state JSON on stdin."""
    log = configure_all_hooks(bundle, hook_log)
    bundle.create_ok()
    try:
        pid = bundle.state()["pid"]
        assert bundle.invoke("start", bundle.id).returncode == 0
        deadline = time.monotonic() + 5
        while "=== process" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        bundle.delete(force=True)

    records = parse_log(log.read_text())
    names = [header[0] for header, _ in records]
    assert names[:3] == ["prestart", "createRuntime", "createContainer"]
    assert names[-1] == "poststop"
    assert sorted(names[3:-1]) == sorted(["startContainer", "poststart", "process"])
    assert names.index("startContainer") < names.index("process")

    # Hooks that run in the container's pid namespace may see the init as pid 1 (runc does).
    in_container_pids = (pid, 1)
    for header, state in records:
        name = header[0]
        if name == "process":
            continue
        assert header[1:] == [f"env-{name}", f"arg-{name}"], f"{name} got the wrong env or args"
        assert state is not None, f"{name} got no state on stdin"
        assert state["id"] == bundle.id
        assert state["bundle"] == str(bundle.path)
        assert "ociVersion" in state
        if name == "poststop":
            assert state["status"] == "stopped"
        elif name == "startContainer":
            assert state["status"] in ("created", "running"), f"{name}: {state['status']}"
            assert state["pid"] in in_container_pids
        elif name == "poststart":
            assert state["status"] in ("created", "running"), f"{name}: {state['status']}"
            assert state["pid"] == pid
        else:
            assert state["status"] in ("creating", "created"), f"{name}: {state['status']}"
            assert state["pid"] in (in_container_pids if name == "createContainer" else (pid,))


def test_failing_prestart_hook_fails_create(bundle: Bundle, hook_log: Path) -> None:
    """a prestart hook that exits non-zero fails create (exit 1, says hook) and leaves no state."""
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "cat >/dev/null; exit 3"]}]}
    bundle.sh(f"echo ran > {hook_log}/ran")
    done = bundle.create()
    assert done.returncode == 1
    assert "hook" in done.stderr.lower()
    assert not bundle.exists()
    assert not (hook_log / "ran").exists()


def test_failing_create_runtime_hook_fails_create(bundle: Bundle) -> None:
    """a createRuntime hook that fails makes create fail and leaves no state."""
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/false", "args": ["false"]}]}
    done = bundle.create()
    assert done.returncode == 1
    assert not bundle.exists()


def test_hook_timeout(bundle: Bundle) -> None:
    """a hook that outlives its timeout is killed and fails create promptly."""
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    started = time.monotonic()
    done = bundle.create()
    assert done.returncode == 1
    assert time.monotonic() - started < 10
    assert not bundle.exists()


def test_failing_poststop_hook_does_not_block_delete(bundle: Bundle, hook_log: Path) -> None:
    """a failing poststop hook is a warning: delete still removes the container."""
    bundle.config["hooks"] = {"poststop": [{"path": "/bin/false", "args": ["false"]}]}
    bundle.start_detached("sleep 1000")
    bundle.invoke("delete", "--force", bundle.id)
    assert not bundle.exists()

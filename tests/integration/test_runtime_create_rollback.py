"""create fails at each stage it can fail in, and each time leaves nothing behind.

The stages (see runtime/spawn.py and runtime/init.py): the parent before the
fork (console socket, namespace paths), the parent after the fork (cgroup
limits the kernel refuses), the init before pivot_root (mounts,
createContainer hooks), and the init after it (cwd, privileges, the
executable).  The autouse leak check covers processes, cgroups and mounts;
each test also checks the state root and the container's cgroup directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bundle import Bundle, runc_gap

pytestmark = pytest.mark.root


def _console_socket_missing(config: dict[str, Any], bundle: Bundle) -> list[str]:
    config["process"]["terminal"] = True
    return ["--console-socket", str(bundle.path / "no-such.sock")]


def _namespace_path_missing(config: dict[str, Any], bundle: Bundle) -> list[str]:
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"]
    config["linux"]["namespaces"].append({"type": "network", "path": "/proc/no-such-pid/ns/net"})
    return []


def _cgroup_value_refused(config: dict[str, Any], bundle: Bundle) -> list[str]:
    # well-formed, but no such CPU: the kernel refuses the write after the fork
    config["linux"]["resources"]["cpu"] = {"cpus": "999"}
    return []


def _bind_source_missing(config: dict[str, Any], bundle: Bundle) -> list[str]:
    config["mounts"].append({"destination": "/mnt", "type": "bind", "source": "/no/such/source",
                             "options": ["bind"]})
    return []


def _create_container_hook_fails(config: dict[str, Any], bundle: Bundle) -> list[str]:
    config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-said-no >&2; exit 7"]}]}
    return []


def _cwd_not_a_directory(config: dict[str, Any], bundle: Bundle) -> list[str]:
    # a missing cwd is created (as runc does); a file in its place cannot be entered
    config["process"]["cwd"] = "/bin/busybox"
    return []


def _sysctl_missing(config: dict[str, Any], bundle: Bundle) -> list[str]:
    # fails late in the init, while the runtime may still be placing it in
    # the cgroup2 side (spawn._spawn): the init's own report must win
    config["linux"]["sysctl"] = {"net.ipv4.dockyard_no_such_key": "1"}
    return []


def _negative_oom_score_adj(config: dict[str, Any], bundle: Bundle) -> list[str]:
    config["process"]["oomScoreAdj"] = -500
    return []


STAGES: list[Any] = [
    pytest.param(_console_socket_missing, "no-such.sock", id="parent-console-socket"),
    pytest.param(_namespace_path_missing, "/proc/no-such-pid/ns/net", id="parent-namespace-path"),
    pytest.param(_cgroup_value_refused, "cpuset.cpus", id="parent-cgroup-write"),
    pytest.param(_bind_source_missing, "/no/such/source", id="init-bind-mount"),
    pytest.param(_create_container_hook_fails, "createContainer", id="init-createContainer-hook",
                 marks=runc_gap("leaves its cgroups and init behind when a createContainer hook fails")),
    pytest.param(_cwd_not_a_directory, "/bin/busybox", id="init-cwd"),
    pytest.param(_sysctl_missing, "net.ipv4.dockyard_no_such_key", id="init-sysctl"),
    pytest.param(_negative_oom_score_adj, "oomScoreAdj", id="init-oom-score-adj",
                 marks=runc_gap("names /proc/self/oom_score_adj, not the config field")),
]


@pytest.mark.parametrize(("inject", "named"), STAGES)
def test_create_failure_at_each_stage_leaves_nothing(
    bundle: Bundle, inject: Callable[[dict[str, Any], Bundle], list[str]], named: str
) -> None:
    """create exits 1 with a message naming the cause, and no state dir, cgroup, mount or process remains."""
    bundle.sh("sleep 1000")
    extra = inject(bundle.config, bundle)
    done = bundle.create(*extra)
    assert done.returncode == 1, done.stderr
    assert named in done.stderr
    assert not bundle.exists()
    assert not bundle.state_root.exists() or not any(bundle.state_root.iterdir())
    for controller in ("memory", "cpuset", "pids", "freezer"):
        assert not bundle.host_cgroup(controller).exists(), controller

"""AppArmor through CRI in the guest: dockyardd confines a RuntimeDefault
container with its own profile, applies a loaded Localhost profile, refuses
an unloaded one naming the field, and critest's AppArmor specs pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import Daemon
from dockyard.cri.apparmor import default_profile_text
from dockyard.runtime.kernel import apparmor
from google.protobuf import json_format
from guest_daemon import REPO, guest_daemon  # noqa: F401 (fixture)
from guest_env import run
from runtime_service_fixture import container_config, pod_config

DENY_TMP = "dockyard-cri-deny-tmp"


def security(kind: int, ref: str = "") -> dict[str, object]:
    return {"security_context": {"apparmor": {"profile_type": kind, "localhost_ref": ref}}}


def run_container(daemon: Daemon, tmp: Path, name: str, linux: dict[str, object]) -> str:
    pod_cfg = tmp / f"pod-{name}.json"
    pod_cfg.write_text(json.dumps(pod_config(name, tmp / "logs" / name)))
    pod = daemon.crictl("runp", str(pod_cfg)).stdout.strip()
    ctr_cfg = tmp / f"ctr-{name}.json"
    ctr_cfg.write_text(json.dumps(container_config(name, ["sleep", "1000"], linux=linux)))
    cid = daemon.crictl("create", pod, str(ctr_cfg), str(pod_cfg)).stdout.strip()
    daemon.crictl("start", cid)
    return cid


def test_runtime_default_and_localhost(guest_daemon: Daemon, tmp_path: Path) -> None:  # noqa: F811
    """The daemon loads its default profile when a RuntimeDefault container
    needs it (it is removed first), and confines the container with it."""
    run(["apparmor_parser", "--remove"], input=default_profile_text())
    assert "dockyard-default" not in (apparmor.loaded_profiles() or set())
    guest_daemon.pull("busybox")
    cid = run_container(guest_daemon, tmp_path, "rd", security(api_pb2.SecurityProfile.RuntimeDefault))
    out = guest_daemon.crictl("exec", "-s", cid, "cat", "/proc/self/attr/current").stdout.strip()
    assert out == "dockyard-default (enforce)", out
    run(["apparmor_parser", "--replace"], check=True,
        input=f"#include <tunables/global>\nprofile {DENY_TMP} flags=(attach_disconnected) {{\n"
              "  #include <abstractions/base>\n  file,\n  deny /tmp/** w,\n}\n")
    cid = run_container(guest_daemon, tmp_path, "lh", security(api_pb2.SecurityProfile.Localhost, f"localhost/{DENY_TMP}"))
    out = guest_daemon.crictl("exec", "-s", cid, "sh", "-c", "cat /proc/self/attr/current; touch /tmp/x; echo rc=$?",
                              check=False).stdout
    assert out.startswith(f"{DENY_TMP} (enforce)") and "rc=1" in out, out


def test_unloaded_localhost_profile_is_invalid(guest_daemon: Daemon, tmp_path: Path) -> None:  # noqa: F811
    guest_daemon.pull("busybox")
    pod_dict = pod_config("nolh", tmp_path / "logs")
    pod_cfg = json_format.ParseDict(pod_dict, api_pb2.PodSandboxConfig())
    ctr = json_format.ParseDict(container_config("c", ["true"], linux=security(
        api_pb2.SecurityProfile.Localhost, "localhost/dockyard-not-loaded")), api_pb2.ContainerConfig())
    with guest_daemon.channel() as ch:
        rt = guest_daemon.runtime(ch)
        pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pod_cfg)).pod_sandbox_id
        with pytest.raises(grpc.RpcError) as info:
            rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=ctr, sandbox_config=pod_cfg))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "apparmor.localhost_ref" in info.value.details() and "not loaded" in info.value.details()


def test_critest_apparmor_specs(guest_daemon: Daemon, tmp_path: Path) -> None:  # noqa: F811
    """critest's 9 AppArmor specs (skipped on the build VM, whose kernel has AppArmor off)."""
    # critest loads its test profiles with `sudo apparmor_parser`; the suite is root already.
    (tmp_path / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (tmp_path / "sudo").chmod(0o755)
    critest = REPO / "build" / "bin" / "critest"
    endpoint = f"unix://{guest_daemon.socket}"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
    done = run([str(critest), "--runtime-endpoint", endpoint, "--image-endpoint", endpoint,
                "--ginkgo.no-color", "--ginkgo.focus", "AppArmor"], timeout=900, env=env)
    tail = done.stdout[-4000:]
    assert done.returncode == 0, tail
    assert "0 Failed" in tail and " Passed" in tail and "Ran 0 of" not in tail, tail

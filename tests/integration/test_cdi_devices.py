"""CDI devices through crictl: the spec files this test writes (into the daemon's cdi_spec_dirs) give
a container a device node, env, a mount, a hook and a group; an unknown device is INVALID_ARGUMENT
naming the field that asked for it, with nothing left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from google.protobuf import json_format
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root


@pytest.fixture
def pods_extra_config(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "cdi-etc").mkdir()
    (tmp_path / "cdi-run").mkdir()
    return {"cdi_spec_dirs": [str(tmp_path / "cdi-etc"), str(tmp_path / "cdi-run")]}


def write_spec(pods: Pods, where: str, name: str, doc: dict[str, Any]) -> None:
    (pods.tmp / where / name).write_text(json.dumps(doc))


def test_cdi_device_edits_reach_the_container(pods: Pods) -> None:
    """CDI_devices and the cdi.k8s.io/ annotation both resolve; the container gets the device node (with a
    cgroup rule letting it write), the env, the read-only mount, the extra group, and the hook runs; a spec in
    the later directory hides the same device in the earlier one; a spec written after the daemon started counts."""
    pods.daemon.pull("busybox")
    shared = pods.tmp / "vendor-lib"
    shared.mkdir()
    (shared / "libvendor.so").write_text("vendor library\n")
    hook_out = pods.tmp / "hook-state.json"
    hook_script = pods.tmp / "hook.sh"
    hook_script.write_text(f"#!/bin/sh\ncat > {hook_out}\n")
    hook_script.chmod(0o755)
    write_spec(pods, "cdi-etc", "old.json", {
        "cdiVersion": "0.6.0", "kind": "dockyard.test/null",
        "devices": [{"name": "dev0", "containerEdits": {"env": ["CDI_WHICH=etc"]}}]})
    pod, pod_cfg = pods.run_pod("cdi")
    write_spec(pods, "cdi-run", "null.json", {
        "cdiVersion": "0.6.0", "kind": "dockyard.test/null",
        "devices": [{"name": "dev0", "containerEdits": {
            "env": ["CDI_WHICH=run"],
            "deviceNodes": [{"path": "/dev/cdi-null", "hostPath": "/dev/null"}],
            "mounts": [{"hostPath": str(shared), "containerPath": "/opt/vendor", "options": ["ro", "bind"]}],
            "hooks": [{"hookName": "createRuntime", "path": str(hook_script)}]}}],
        "containerEdits": {"additionalGids": [4242]}})
    (pods.tmp / "cdi-run" / "extra.yaml").write_text(
        "cdiVersion: 0.5.0\nkind: dockyard.test/env\ndevices:\n- name: flag\n  containerEdits:\n    env: [CDI_FLAG=yes]\n")
    cfg = container_config("c", ["sleep", "1000"], CDI_devices=[{"name": "dockyard.test/null=dev0"}],
                           annotations={"cdi.k8s.io/test": "dockyard.test/env=flag"})
    cid = pods.crictl("create", pod, pods.write("c", cfg), pod_cfg)
    pods.crictl("start", cid)
    assert json.loads(hook_out.read_text())["id"] == cid
    out = pods.crictl("exec", "-s", cid, "sh", "-c",
                      "stat -c '%F %t:%T' /dev/cdi-null; echo hi > /dev/cdi-null && echo wrote; "
                      "echo $CDI_WHICH $CDI_FLAG; cat /opt/vendor/libvendor.so; touch /opt/vendor/x 2>&1; id -G")
    lines = out.splitlines()
    assert lines[0] == "character special file 1:3", out
    assert lines[1:4] == ["wrote", "run yes", "vendor library"], out
    assert "Read-only file system" in lines[4]
    assert "4242" in lines[5].split()


def test_unknown_cdi_device_is_invalid_argument(pods: Pods) -> None:
    """An undefined device, a malformed name and a device of a broken spec file are INVALID_ARGUMENT
    naming the field (and the broken file's error); the pod is left as it was."""
    pods.daemon.pull("busybox")
    (pods.tmp / "cdi-etc" / "broken.json").write_text("{ not json")
    pod, pod_cfg = pods.run_pod("cdibad")
    sandbox = json_format.ParseDict(json.loads(Path(pod_cfg).read_text()), api_pb2.PodSandboxConfig())
    cases = [
        ({"CDI_devices": [{"name": "dockyard.test/gpu=0"}]},
         "config.CDI_devices[0].name: CDI device 'dockyard.test/gpu=0' is not defined in "
         f"{pods.tmp}/cdi-etc, {pods.tmp}/cdi-run (no spec file defines kind dockyard.test/gpu); "
         f"{pods.tmp}/cdi-etc/broken.json was skipped: cannot read it"),
        ({"annotations": {"cdi.k8s.io/plugin": "dockyard.test/gpu=1"}},
         "config.annotations[cdi.k8s.io/plugin]: CDI device 'dockyard.test/gpu=1' is not defined"),
        ({"CDI_devices": [{"name": "gpu0"}]}, "config.CDI_devices[0].name: 'gpu0' is not a qualified CDI device name"),
    ]
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        for i, (extra, message) in enumerate(cases):
            config = json_format.ParseDict(container_config(f"c{i}", ["true"], **extra), api_pb2.ContainerConfig())
            with pytest.raises(grpc.RpcError) as info:
                rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=config,
                                                                  sandbox_config=sandbox))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
            assert info.value.details().startswith(message), info.value.details()
    assert pods.crictl("ps", "-a", "-q") == ""
    assert not os.listdir(pods.state / "containers") if (pods.state / "containers").exists() else True

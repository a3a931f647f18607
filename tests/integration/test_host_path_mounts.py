"""hostPath mount sources, through crictl and gRPC against a real daemon:
a source that does not exist is created as a directory (containerd's
behaviour) and the container writes into it; a source inside the daemon's
own root or state directory is refused with INVALID_ARGUMENT naming
config.mounts[i].host_path, and leaves no container and no directory behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from google.protobuf import json_format
from runtime_service_fixture import Pods, container_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root


def test_missing_host_path_is_created(pods: Pods, tmp_path: Path) -> None:
    """crictl create with a hostPath that does not exist: the path is made (0755, parents too),
    bound into the container, and what the container writes there is on the host."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("hostpath")
    source = tmp_path / "volumes" / "not" / "yet"
    cfg = container_config("c", ["sleep", "1000"], mounts=[{"container_path": "/data", "host_path": str(source)}])
    cid = pods.crictl("create", pod, pods.write("c", cfg), pod_cfg)
    assert source.is_dir() and stat.S_IMODE(source.stat().st_mode) == 0o755
    pods.crictl("start", cid)
    pods.crictl("exec", "-s", cid, "sh", "-c", "echo written-inside > /data/f")
    assert (source / "f").read_text() == "written-inside\n"


def test_host_path_in_daemon_dirs_is_refused(pods: Pods, tmp_path: Path) -> None:
    """Sources inside root_dir or state_dir, directly, through '..' or through a symlink, are
    INVALID_ARGUMENT naming the mount's index; nothing is created and no container is left."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("guarded")
    sandbox_config = json_format.Parse(Path(pod_cfg).read_text(), api_pb2.PodSandboxConfig())
    link = tmp_path / "innocent"
    link.symlink_to(pods.daemon.root / "content")
    refused = [
        str(pods.daemon.root / "snapshots"),
        str(pods.state / "shims" / "made-up"),
        f"{tmp_path}/../{os.path.relpath(pods.daemon.root, tmp_path.parent)}/images",
        str(link / "blobs"),
    ]
    fine = tmp_path / "fine"
    with pods.daemon.channel() as ch:
        rt = pods.daemon.runtime(ch)
        for source in refused:
            cfg = api_pb2.ContainerConfig(
                metadata=api_pb2.ContainerMetadata(name="c"), image=api_pb2.ImageSpec(image="busybox"),
                command=["true"], mounts=[api_pb2.Mount(container_path="/ok", host_path=str(fine)),
                                          api_pb2.Mount(container_path="/data", host_path=source)])
            with pytest.raises(grpc.RpcError) as info:
                rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                  sandbox_config=sandbox_config))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.details().startswith(f"config.mounts[1].host_path: {source}"), info.value.details()
        assert list(rt.ListContainers(api_pb2.ListContainersRequest()).containers) == []
    assert not fine.exists()  # refused before anything was made
    assert not (pods.state / "shims" / "made-up").exists()

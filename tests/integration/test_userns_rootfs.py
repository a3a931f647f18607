"""A pod with its own user namespace (hostUsers: false) sees its image's files as their owners:
root's files are root's inside (the rootfs's layers are idmapped with the pod's map), root can
write where the image lets root write, and the host sees the mapped ids: through the container's
mounts for the image's files, on disk in the upper layer for what the container wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from daemon_fixture import daemon_factory, test_registry  # noqa: F401 (fixtures)
from runtime_service_fixture import Pods, container_config, pod_config, pods  # noqa: F401 (fixture)

pytestmark = pytest.mark.root
HOST_BASE = 3_000_000  # container 0 is this host id; well away from any real user
SIZE = 65536
LAYERS3 = "127.0.0.1:5000/layers3:latest"


def userns_pod(pods: Pods, name: str) -> tuple[str, str]:
    mapping = [{"host_id": HOST_BASE, "container_id": 0, "length": SIZE}]
    pod_mode = 0  # NamespaceMode POD
    return pods.run_pod(name, linux={"security_context": {"namespace_options": {
        "userns_options": {"mode": pod_mode, "uids": mapping, "gids": mapping}}}})


def test_image_files_keep_their_owners_in_a_userns_pod(pods: Pods) -> None:
    """Inside: /bin/busybox, /etc and / are 0:0 and root writes to / and /etc (copy-up); an image volume
    in the pod is root's too.  On the host: the container's /bin/busybox is HOST_BASE:HOST_BASE, and the
    files root made are HOST_BASE-owned in the upper layer on disk."""
    pods.daemon.pull("busybox")
    layers3 = pods.daemon.pull(LAYERS3)
    pod, pod_cfg = userns_pod(pods, "userns")
    cid = pods.crictl("create", pod, pods.write("c", container_config(
        "c", ["sleep", "1000"],
        mounts=[{"container_path": "/vol", "image": {"image": layers3}, "readonly": True}])), pod_cfg)
    pods.crictl("start", cid)
    out = pods.crictl("exec", "-s", cid, "sh", "-c",
                      "cat /proc/self/uid_map; stat -c '%u:%g %n' /bin/busybox /etc /etc/passwd / /vol/etc/keep-me; "
                      "touch /made-by-root && echo x >> /etc/passwd && stat -c '%u:%g %n' /made-by-root /etc/passwd")
    lines = out.splitlines()
    assert lines[0].split() == ["0", str(HOST_BASE), str(SIZE)], out
    assert lines[1:] == ["0:0 /bin/busybox", "0:0 /etc", "0:0 /etc/passwd", "0:0 /", "0:0 /vol/etc/keep-me",
                         "0:0 /made-by-root", "0:0 /etc/passwd"], out

    pid = json.loads(pods.crictl("inspect", cid))["info"]["pid"]
    st = os.stat(f"/proc/{pid}/root/bin/busybox")
    assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE)
    upper = next(Path(pods.daemon.root, "snapshots", "snapshots").glob("*/fs/made-by-root"))
    for name in ("made-by-root", "etc/passwd"):
        st = os.stat(upper.parent / name)
        assert (st.st_uid, st.st_gid) == (HOST_BASE, HOST_BASE), name
    assert not any(Path(pods.state, "idm").iterdir()) if Path(pods.state, "idm").exists() else True
    # the idmapped layers were detached once the overlay held them (its options still name their paths)
    assert not [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if "/idm/" in ln.split()[4]]


def test_without_a_user_namespace_nothing_changes(pods: Pods) -> None:
    """A pod in the host's user namespace still sees the plain overlay (no idmapped layers)."""
    pods.daemon.pull("busybox")
    pod, pod_cfg = pods.run_pod("hostusers")
    cid = pods.crictl("create", pod, pods.write("c", container_config("c", ["sleep", "1000"])), pod_cfg)
    pods.crictl("start", cid)
    assert pods.crictl("exec", "-s", cid, "sh", "-c", "cat /proc/self/uid_map; stat -c '%u' /bin/busybox").split() \
        == ["0", "0", "4294967295", "0"]


def test_idmapped_file_mount_from_a_private_directory(pods: Pods) -> None:
    """An idmapped bind of a *file* whose host directory the container's user cannot search (kubelet's
    /dev/termination-log of a hostUsers: false pod lives in its 0750 pod dir) mounts as a file: the
    runtime took its type from the path and, unable to stat it from inside the user namespace, made a
    directory mount point, and move_mount failed with EINVAL."""
    pods.daemon.pull("busybox")
    private = pods.tmp / "private"
    private.mkdir(mode=0o700)
    (private / "termination-log").write_text("")
    (private / "dir").mkdir()
    pod, pod_cfg = userns_pod(pods, "usernsfile")
    mapping = [{"host_id": HOST_BASE, "container_id": 0, "length": SIZE}]
    mounts = [{"container_path": "/dev/termination-log", "host_path": str(private / "termination-log"),
               "uidMappings": mapping, "gidMappings": mapping},
              {"container_path": "/data", "host_path": str(private / "dir"), "uidMappings": mapping, "gidMappings": mapping}]
    cid = pods.crictl("create", pod, pods.write("c", container_config(
        "c", ["sh", "-c", "echo done > /dev/termination-log; touch /data/x; sleep 1000"], mounts=mounts)), pod_cfg)
    pods.crictl("start", cid)
    assert pods.crictl("exec", "-s", cid, "sh", "-c", "test -f /dev/termination-log && stat -c %u:%g /data/x") == "0:0"
    assert (private / "termination-log").read_text() == "done\n"
    st = os.stat(private / "dir" / "x")
    assert (st.st_uid, st.st_gid) == (0, 0)  # the mount's own map: container root writes as host root here


def test_bad_user_namespace_requests_name_the_field(pods: Pods) -> None:
    """Through the daemon: a user namespace without mappings, or with a mode pods cannot have, is
    INVALID_ARGUMENT naming the field, and leaves no pod (the fixture checks netns, cgroups, mounts)."""
    cases = [
        ({"mode": 0}, "config.linux.security_context.namespace_options.userns_options.uids"),
        ({"mode": 1}, "config.linux.security_context.namespace_options.userns_options.mode"),
    ]
    for i, (options, field) in enumerate(cases):
        cfg = pods.write(f"bad{i}", pod_config(f"bad{i}", pods.logs / f"bad{i}", linux={
            "security_context": {"namespace_options": {"userns_options": options}}}))
        done = pods.daemon.crictl("runp", cfg, check=False)
        assert done.returncode != 0 and "InvalidArgument" in done.stderr and field in done.stderr, done.stderr
    assert pods.crictl("pods", "-q") == ""

"""The container's filesystem: root, masked and read-only paths, mounts, devices, sysctl."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from bundle import SUBREAPER, Bundle

pytestmark = pytest.mark.root


def mountinfo_line(bundle: Bundle, destination: str) -> list[str]:
    """The container's own mountinfo entry for `destination`, split into fields."""
    out = bundle.run_ok(f"grep ' {destination} ' /proc/self/mountinfo")
    lines = out.splitlines()
    assert lines, f"{destination} is not a mount point inside the container"
    return lines[-1].split()  # the last one is on top


def add_mount(bundle: Bundle, destination: str, type_: str, source: str, options: list[str]) -> None:
    bundle.config["mounts"].append({"destination": destination, "type": type_, "source": source, "options": options})


def test_readonly_rootfs(bundle: Bundle) -> None:
    """root.readonly makes / read-only: a write fails with EROFS."""
    out = bundle.run_ok("touch /newfile 2>&1; echo rc=$?")
    assert "Read-only file system" in out
    assert out.strip().endswith("rc=1")
    assert not (bundle.rootfs / "newfile").exists()


def test_writable_rootfs(writable_bundle: Bundle) -> None:
    """without root.readonly a write to / succeeds and lands in the bundle's rootfs."""
    writable_bundle.run_ok("echo hello > /newfile")
    assert (writable_bundle.rootfs / "newfile").read_text() == "hello\n"


def test_masked_paths(writable_bundle: Bundle) -> None:
    """a masked file reads as /dev/null and a masked directory is empty."""
    (writable_bundle.rootfs / "secret").mkdir()
    (writable_bundle.rootfs / "secret" / "key").write_text("hidden\n")
    (writable_bundle.rootfs / "secret.txt").write_text("hidden\n")
    writable_bundle.config["linux"]["maskedPaths"] += ["/secret", "/secret.txt"]
    out = writable_bundle.run_ok(
        "ls -A /secret | wc -l; wc -c < /secret.txt; wc -c < /proc/timer_list; stat -c '%F %t:%T' /proc/timer_list"
    )
    dir_entries, file_bytes, proc_bytes, proc_kind = out.splitlines()
    assert int(dir_entries) == 0
    assert int(file_bytes) == 0
    # /proc/timer_list (in the default maskedPaths) is not empty on the host.
    assert Path("/proc/timer_list").read_text()
    assert int(proc_bytes) == 0
    assert proc_kind == "character special file 1:3"


def test_readonly_paths(bundle: Bundle) -> None:
    """a readonlyPaths entry is read-only even where the namespace would allow the write."""
    # The UTS namespace makes /proc/sys/kernel/hostname writable for root, so
    # only the read-only bind can refuse this.
    out = bundle.run_ok("{ echo other > /proc/sys/kernel/hostname; } 2>&1; echo rc=$?; hostname")
    assert "Read-only file system" in out
    assert out.splitlines()[-2:] == ["rc=1", "dockyard"]


def test_readonly_paths_control(bundle: Bundle) -> None:
    """without the readonlyPaths entry the same write works (so the test above can fail)."""
    bundle.config["linux"]["readonlyPaths"].remove("/proc/sys")
    out = bundle.run_ok("echo other > /proc/sys/kernel/hostname; hostname")
    assert out.strip() == "other"


def test_tmpfs_size_and_mode(writable_bundle: Bundle) -> None:
    """a tmpfs mount gets its size= and mode= options."""
    add_mount(writable_bundle, "/mnt/t", "tmpfs", "tmpfs", ["size=1m", "mode=0710"])
    out = writable_bundle.run_ok("grep ' /mnt/t ' /proc/mounts; stat -c %a /mnt/t")
    line, mode = out.splitlines()
    options = line.split()[3].split(",")
    assert "size=1024k" in options
    assert mode == "710"


@pytest.mark.parametrize(
    ("options", "present", "absent"),
    [
        (["nosuid", "nodev", "noexec"], {"nosuid", "nodev", "noexec"}, {"ro"}),
        (["nosuid", "ro"], {"nosuid", "ro"}, {"nodev", "noexec"}),
        ([], {"rw"}, {"nosuid", "nodev", "noexec"}),
    ],
)
def test_mount_flags(writable_bundle: Bundle, options: list[str], present: set[str], absent: set[str]) -> None:
    """per-mount flags (ro, nosuid, nodev, noexec) are exactly those the options ask for."""
    add_mount(writable_bundle, "/mnt/flags", "tmpfs", "tmpfs", options)
    fields = mountinfo_line(writable_bundle, "/mnt/flags")
    flags = set(fields[5].split(","))
    assert present <= flags
    assert not (absent & flags)


def test_bind_ro(writable_bundle: Bundle, tmp_path: Path) -> None:
    """a bind mount with ro shows the host files and refuses writes; the host dir is untouched."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("from host\n")
    add_mount(writable_bundle, "/mnt/b", "bind", str(src), ["bind", "ro"])
    out = writable_bundle.run_ok("cat /mnt/b/hello; touch /mnt/b/new 2>&1; echo rc=$?")
    assert out.splitlines()[0] == "from host"
    assert "Read-only file system" in out
    assert not (src / "new").exists()


def test_bind_rw_writes_reach_host(writable_bundle: Bundle, tmp_path: Path) -> None:
    """a read-write bind mount shares the host directory."""
    src = tmp_path / "src"
    src.mkdir()
    add_mount(writable_bundle, "/mnt/b", "bind", str(src), ["bind"])
    writable_bundle.run_ok("echo written > /mnt/b/out")
    assert (src / "out").read_text() == "written\n"


@pytest.fixture
def host_tree_with_submount(tmp_path: Path) -> Iterator[Path]:
    """A host dir with a tmpfs mounted below it (unmounted afterwards)."""
    src = tmp_path / "tree"
    sub = src / "sub"
    sub.mkdir(parents=True)
    mounted = SUBREAPER.run(["mount", "-t", "tmpfs", "-o", "size=1m", "dockyard-test-sub", str(sub)], timeout=10)
    assert mounted.returncode == 0
    try:
        (sub / "inner").write_text("in submount\n")
        yield src
    finally:
        assert SUBREAPER.run(["umount", str(sub)], timeout=10).returncode == 0


@pytest.mark.parametrize(("kind", "sees_submount"), [("rbind", True), ("bind", False)])
def test_rbind_carries_submounts(
    writable_bundle: Bundle, host_tree_with_submount: Path, kind: str, sees_submount: bool
) -> None:
    """rbind brings the mounts below the source along; bind does not."""
    add_mount(writable_bundle, "/mnt/r", "bind", str(host_tree_with_submount), [kind])
    out = writable_bundle.run_ok("cat /mnt/r/sub/inner 2>/dev/null || echo missing")
    assert out.strip() == ("in submount" if sees_submount else "missing")


@pytest.mark.parametrize("mount_type", ["tmpfs", "bind"])
def test_symlinked_destination_stays_inside_rootfs(
    writable_bundle: Bundle, tmp_path: Path, mount_type: str
) -> None:
    """a mount destination that is a symlink out of the rootfs is resolved inside the rootfs."""
    outside = tmp_path / "outside-target"
    # An absolute target climbing out with ..: resolved on the host, it would be `outside`.
    (writable_bundle.rootfs / "evil").symlink_to(f"/../../../..{outside}")
    src = tmp_path / "bind-src"
    src.mkdir()
    if mount_type == "tmpfs":
        add_mount(writable_bundle, "/evil", "tmpfs", "tmpfs", ["size=1m"])
    else:
        add_mount(writable_bundle, "/evil", "bind", str(src), ["bind"])
    writable_bundle.sh("touch /evil/marker")
    writable_bundle.run()
    assert not outside.exists(), "the mount followed a symlink out of the rootfs"
    assert not (tmp_path / "outside-target" / "marker").exists()


DEFAULT_DEVICES = {
    "/dev/null": "1:3",
    "/dev/zero": "1:5",
    "/dev/full": "1:7",
    "/dev/random": "1:8",
    "/dev/urandom": "1:9",
    "/dev/tty": "5:0",
}


def test_default_devices(bundle: Bundle) -> None:
    """the default devices exist as character devices with the right numbers, and work."""
    listing = " ".join(DEFAULT_DEVICES)
    out = bundle.run_ok(
        f"for d in {listing}; do echo $d $(stat -c '%F' $d) $(stat -c '%t %T' $d); done; "
        "head -c 5 /dev/zero | wc -c; head -c 7 /dev/urandom | wc -c; echo x > /dev/null && echo null-ok; "
        "test -c /dev/ptmx -o -L /dev/ptmx && echo ptmx-ok; test -d /dev/pts && echo pts-ok"
    )
    lines = out.splitlines()
    found = {}
    for line in lines[: len(DEFAULT_DEVICES)]:
        path, rest = line.split(" ", 1)
        kind, major, minor = rest.rsplit(" ", 2)
        assert kind == "character special file", line
        found[path] = f"{int(major, 16)}:{int(minor, 16)}"
    assert found == DEFAULT_DEVICES
    assert lines[len(DEFAULT_DEVICES):] == ["5", "7", "null-ok", "ptmx-ok", "pts-ok"]


def test_linux_devices_entry(bundle: Bundle) -> None:
    """a linux.devices entry creates that device node with its type, numbers, mode and owner."""
    bundle.config["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0},
        {"path": "/dev/dockyard-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1000},
    ]
    bundle.config["linux"]["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    ]
    out = bundle.run_ok("stat -c '%F %t:%T %a %u:%g' /dev/fuse /dev/dockyard-null")
    fuse, alias = out.splitlines()
    assert fuse == "character special file a:e5 666 0:0"
    assert alias == "character special file 1:3 640 1000:1000"


def test_device_cgroup_denies_unlisted_device(bundle: Bundle) -> None:
    """with devices deny-all, a node the config did not allow cannot be opened even by root."""
    bundle.config["process"]["capabilities"] = {k: ["CAP_MKNOD"] for k in ("bounding", "effective", "permitted")}
    out = bundle.run_ok("mknod /dev/sda-copy b 8 0 && head -c1 /dev/sda-copy 2>&1; echo rc=$?")
    assert "Operation not permitted" in out
    assert out.strip().endswith("rc=1")


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("net.ipv4.ip_forward", "1", "/proc/sys/net/ipv4/ip_forward"),
        ("kernel.shmmax", "1048576", "/proc/sys/kernel/shmmax"),
    ],
)
def test_sysctl(bundle: Bundle, key: str, value: str, path: str) -> None:
    """linux.sysctl sets namespaced sysctls inside the container only."""
    host_before = Path(path).read_text()
    bundle.config["linux"]["sysctl"] = {key: value}
    assert bundle.run_ok(f"cat {path}").strip() == value
    assert Path(path).read_text() == host_before


def test_sysctl_not_namespaced_is_refused(bundle: Bundle) -> None:
    """a sysctl outside the container's namespaces (kernel.panic) fails create and names it."""
    before = Path("/proc/sys/kernel/panic").read_text()
    bundle.config["linux"]["sysctl"] = {"kernel.panic": "7"}
    done = bundle.create()
    assert done.returncode == 1
    assert "kernel.panic" in done.stderr
    assert Path("/proc/sys/kernel/panic").read_text() == before
    assert not bundle.exists()


def test_proc_and_sys_mounted(bundle: Bundle) -> None:
    """/proc shows the container's pid namespace and /sys is mounted read-only."""
    out = bundle.run_ok("""echo $$; ls /proc | grep -c '^[0-9]'; awk '$5 == "/sys"' /proc/self/mountinfo""")
    pid, count, sys_line = out.splitlines()
    assert pid == "1"
    assert int(count) <= 3  # sh, grep/ls and their pipeline; never the host's processes
    assert "ro" in sys_line.split()[5].split(",")


@pytest.fixture
def shared_host_dir(tmp_path: Path) -> Iterator[Path]:
    """A host dir that is a shared mount of its own, as kubelet makes the dirs of bidirectional volumes."""
    top = tmp_path / "shared"
    top.mkdir()
    for argv in (["mount", "--bind", str(top), str(top)], ["mount", "--make-rshared", str(top)]):
        assert SUBREAPER.run(argv, timeout=10).returncode == 0
    try:
        yield top
    finally:
        SUBREAPER.run(["umount", "-R", "-l", str(top)], timeout=10)


def test_rshared_rootfs_and_bidirectional_volume(bundle: Bundle, shared_host_dir: Path) -> None:
    """With rootfsPropagation rshared and an rshared volume, a mount made in the container
    appears on the host; the container's cgroup mount (no cgroup namespace, host /sys bound)
    still works, and pivot_root accepts the shared layout."""
    caps = ["CAP_SYS_ADMIN", "CAP_KILL"]
    bundle.config["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    bundle.config["linux"]["rootfsPropagation"] = "rshared"
    bundle.config["linux"]["namespaces"] = [
        ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] not in ("cgroup", "network")]
    bundle.config["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": str(shared_host_dir), "options": ["rbind", "rshared"]})
    out = bundle.run_ok("mkdir -p /mnt/sub && mount -t tmpfs tmpfs /mnt/sub && echo mounted; ls /sys/fs/cgroup")
    assert out.splitlines()[0] == "mounted"
    assert "memory" in out.split()
    host_mounts = Path("/proc/self/mountinfo").read_text()
    assert f" {shared_host_dir}/sub " in host_mounts


def test_rshared_rootfs_in_a_joined_netns_leaves_the_node_cgroups_alone(bundle: Bundle, tmp_path: Path) -> None:
    """A container that joins a network namespace by path (every kubelet container joins its
    pod's) with rootfsPropagation rshared (a pod with a Bidirectional volume) on a node whose
    "/" is rshared (systemd's default) gets a sysfs of its own: its /sys/fs/cgroup tmpfs and
    cgroup binds must not propagate onto the node's /sys/fs/cgroup (they did while /sys was a
    bind of the node's, a peer of it: the node then saw no hugetlb and the next container
    with hugepage limits failed).

    The "node" is a private mount namespace whose "/" is made rshared, so the host's own
    mounts (private here) are never at risk; the wrapper records that namespace's
    /sys/fs/cgroup mounts after the container has exited."""
    seen = tmp_path / "node-cgroup-mounts.txt"
    wrapper = tmp_path / "runtime-in-rshared-node"
    wrapper.write_text(
        "#!/bin/sh\n"
        "exec unshare --mount --propagation private sh -c '"
        "mount --make-rshared / || exit 99; \"$0\" \"$@\"; rc=$?; "
        f"grep \" /sys/fs/cgroup \" /proc/self/mountinfo >{seen}; exit $rc' {bundle.runtime} \"$@\"\n")
    wrapper.chmod(0o755)
    bundle.runtime = wrapper
    bundle.config["linux"]["rootfsPropagation"] = "rshared"
    bundle.config["linux"]["namespaces"] = [
        {"type": "network", "path": f"/proc/{os.getpid()}/ns/net"} if ns["type"] == "network" else ns
        for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "cgroup"]
    out = bundle.run_ok("ls /sys/fs/cgroup")
    assert "memory" in out.split()
    node = seen.read_text().splitlines()
    assert len(node) == 1, f"the container's /sys/fs/cgroup reached the node: {node}"

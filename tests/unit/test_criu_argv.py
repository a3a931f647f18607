"""runtime/criu.py's pure parts: which mounts criu treats as external, the dump and restore command
lines (namespaces joined by path are external, under runc's keys), the init's stdio keys, the
cgroup binds and roots, and the error lines picked from a criu log.  criu itself runs in the
guest (tests/guest/test_checkpoint.py)."""

from __future__ import annotations

import pytest
from dockyard.runtime import criu
from dockyard.runtime.spec import parse_spec

SPEC = parse_spec({
    "ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["sh"], "cwd": "/"},
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/etc/hosts", "type": "bind", "source": "/pods/p/hosts", "options": ["rbind", "ro"]},
        {"destination": "/dev/shm", "type": "none", "source": "/pods/p/shm", "options": ["rbind", "rw"]},
        {"destination": "/data", "type": "none", "source": "/vol", "options": ["bind"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
    ],
})


def test_external_mounts_are_the_binds_by_destination() -> None:
    assert criu.external_mounts(SPEC, ["/sys/fs/cgroup/cpu"]) == {
        "/etc/hosts": "/pods/p/hosts", "/dev/shm": "/pods/p/shm", "/data": "/vol", "/sys/fs/cgroup/cpu": ""}


def test_dump_argv() -> None:
    argv = criu.dump_argv("criu", 42, "/b/rootfs", "/ck/img", "/ck/work", ["/etc/hosts", "/data"], 4026531992,
                          {"leave_running": True, "tcp_established": True}, ["file[1a:2b]"], 4026531836)
    assert argv == [
        "criu", "dump", "--tree", "42", "--images-dir", "/ck/img", "--work-dir", "/ck/work", "--log-file",
        "dump.log", "-v4", "--root", "/b/rootfs", "--external", "mnt[]:sm",
        "--external", "mnt[/etc/hosts]:/etc/hosts", "--external", "mnt[/data]:/data",
        "--external", "net[4026531992]:extRootNetNS", "--external", "pid[4026531836]:extRootPidNS",
        "--external", "file[1a:2b]", "--leave-running", "--tcp-established", "--manage-cgroups=soft"]


def test_dump_argv_with_namespaces_of_its_own() -> None:
    argv = criu.dump_argv("criu", 7, "/r", "/i", "/w", [], None, {"manage_cgroups_mode": "ignore"})
    assert not [a for a in argv if a.startswith(("net[", "pid["))]
    assert "--leave-running" not in argv and argv[-1] == "--manage-cgroups=ignore"


def test_restore_argv() -> None:
    argv = criu.restore_argv("criu", "/nb/rootfs", "/nb/ck", "/nb/work", {"/etc/hosts": "/pods/q/hosts"},
                             {"pipe:[77]": 1, criu.NET_KEY: 5, criu.PID_KEY: 6}, ["cpu,cpuacct:/kubepods/c"],
                             "/nb/work/restored.pid", {"file_locks": True})
    assert argv == [
        "criu", "restore", "--images-dir", "/nb/ck", "--work-dir", "/nb/work", "--log-file", "restore.log", "-v4",
        "--root", "/nb/rootfs", "--restore-detached", "--restore-sibling", "--pidfile", "/nb/work/restored.pid",
        "--external", "mnt[]:sm", "--external", "mnt[/etc/hosts]:/pods/q/hosts",
        "--inherit-fd", "fd[1]:pipe:[77]", "--inherit-fd", "fd[5]:extRootNetNS", "--inherit-fd", "fd[6]:extRootPidNS",
        "--cgroup-root", "cpu,cpuacct:/kubepods/c", "--file-locks", "--manage-cgroups=soft"]


@pytest.mark.parametrize("link, mnt_id, inode, key", [
    ("pipe:[1234]", 0, 0, "pipe:[1234]"),
    ("socket:[99]", 0, 0, "socket:[99]"),
    ("/dev/null", 26, 5, "file[1a:5]"),
    ("", 0, 0, ""),
])
def test_stdio_key(link: str, mnt_id: int, inode: int, key: str) -> None:
    assert criu.stdio_key(link, mnt_id, inode) == key


def test_stdio_inherits_maps_the_old_stdio_to_fds_0_to_2() -> None:
    assert criu.stdio_inherits(["file[1a:5]", "pipe:[8]", "pipe:[9]", "extra"]) == {
        "file[1a:5]": 0, "pipe:[8]": 1, "pipe:[9]": 2}
    assert criu.stdio_inherits(["", "pipe:[8]"]) == {"pipe:[8]": 1}


def test_log_errors_keeps_the_last_error_lines() -> None:
    log = "(00.1) info\n(00.2) Error (a.c:1): first\n(00.3) Error (b.c:2): second\n(00.4) done\n"
    assert criu.log_errors(log) == "(00.2) Error (a.c:1): first; (00.3) Error (b.c:2): second"
    assert criu.log_errors(log, limit=1) == "(00.3) Error (b.c:2): second"
    assert criu.log_errors("(00.1) no errors here\n") == "(00.1) no errors here"
    assert criu.log_errors("") == "(empty log)"


def test_cgroup_binds_and_roots_v2() -> None:
    binds, roots = criu.cgroup_mounts_and_roots(True, [], {"": "/sys/fs/cgroup/kubepods/pod1/c1"})
    assert binds == {"/sys/fs/cgroup": "/sys/fs/cgroup/kubepods/pod1/c1"} and roots == ["/kubepods/pod1/c1"]


def test_cgroup_binds_and_roots_v1() -> None:
    mounts = [("/sys/fs/cgroup/cpu,cpuacct", "cpu,cpuacct"), ("/sys/fs/cgroup/memory", "memory"),
              ("/sys/fs/cgroup/systemd", "name=systemd"), ("/sys/fs/cgroup/net_cls", "net_cls")]
    paths = {"cpu": "/sys/fs/cgroup/cpu,cpuacct/k/c", "memory": "/sys/fs/cgroup/memory/k/c",
             "systemd": "/sys/fs/cgroup/systemd/k/c"}
    binds, roots = criu.cgroup_mounts_and_roots(False, mounts, paths)
    assert binds == {"/sys/fs/cgroup/cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/k/c",
                     "/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory/k/c",
                     "/sys/fs/cgroup/systemd": "/sys/fs/cgroup/systemd/k/c"}
    assert roots == ["cpu,cpuacct:/k/c", "memory:/k/c", "name=systemd:/k/c"]  # net_cls: no path, left alone

"""The container's process: identity, namespaces, capabilities, limits, environment, exit."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bundle import SUBREAPER, Bundle, runc_gap

pytestmark = pytest.mark.root

CAP_NUMBERS = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_RAW": 13,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_ADMIN": 21,
    "CAP_MKNOD": 27,
    "CAP_AUDIT_WRITE": 29,
    "CAP_SETFCAP": 31,
}
DOCKER_DEFAULT = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # fmt: skip
RUNC_DEFAULT = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def cap_mask(names: list[str]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAP_NUMBERS[name]
    return mask


def status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def ns_inode(link: str) -> int:
    # "net:[4026531840]" -> 4026531840
    return int(link.strip().rpartition("[")[2].rstrip("]"))


def test_hostname(bundle: Bundle) -> None:
    """the process sees the config's hostname in its own UTS namespace."""
    bundle.config["hostname"] = "box-7"
    assert bundle.run_ok("hostname").strip() == "box-7"
    assert os.uname().nodename != "box-7"


@runc_gap("ignores domainname (added in runc 1.2)")
def test_domainname(bundle: Bundle) -> None:
    """the config's domainname is set in the container's UTS namespace."""
    bundle.config["domainname"] = "example.test"
    assert bundle.run_ok("cat /proc/sys/kernel/domainname").strip() == "example.test"


NAMESPACES = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt", "cgroup": "cgroup"}


def test_namespaces_differ_from_host(bundle: Bundle) -> None:
    """each namespace listed without a path is new; an unlisted one (user) is the host's."""
    script = "; ".join(f"readlink /proc/self/ns/{ns}" for ns in [*NAMESPACES.values(), "user"])
    links = bundle.run_ok(script).split()
    inside = dict(zip([*NAMESPACES.values(), "user"], map(ns_inode, links)))
    for ns in NAMESPACES.values():
        assert inside[ns] != os.stat(f"/proc/self/ns/{ns}").st_ino, f"{ns} namespace is the host's"
    assert inside["user"] == os.stat("/proc/self/ns/user").st_ino


def test_namespace_joined_by_path(new_bundle: Any) -> None:
    """a namespace given by `path` is joined: the container's inode equals the target's."""
    target: Bundle = new_bundle()
    target_pid = target.start_detached("sleep 1000")
    try:
        joiner: Bundle = new_bundle()
        for ns in joiner.config["linux"]["namespaces"]:
            if ns["type"] in ("network", "uts", "ipc"):
                ns["path"] = f"/proc/{target_pid}/ns/{NAMESPACES[ns['type']]}"
        links = joiner.run_ok("for ns in net uts ipc pid; do readlink /proc/self/ns/$ns; done")
        net, uts, ipc, pid = map(ns_inode, links.split())
        assert net == os.stat(f"/proc/{target_pid}/ns/net").st_ino
        assert uts == os.stat(f"/proc/{target_pid}/ns/uts").st_ino
        assert ipc == os.stat(f"/proc/{target_pid}/ns/ipc").st_ino
        assert pid != os.stat(f"/proc/{target_pid}/ns/pid").st_ino
    finally:
        target.delete(force=True)


# For uid 0 the kernel recomputes the sets at execve: permitted and effective
# become bounding | inheritable, so the root cases list equal sets. For a
# non-root uid only the ambient set survives execve (busybox has no file caps).
CAP_CASES = [
    pytest.param(0, dict.fromkeys(("bounding", "effective", "permitted"), RUNC_DEFAULT),
                 {"CapBnd": RUNC_DEFAULT, "CapEff": RUNC_DEFAULT, "CapPrm": RUNC_DEFAULT,
                  "CapInh": [], "CapAmb": []}, id="root-runc-default"),
    pytest.param(0, dict.fromkeys(("bounding", "effective", "permitted"), DOCKER_DEFAULT),
                 {"CapBnd": DOCKER_DEFAULT, "CapEff": DOCKER_DEFAULT, "CapPrm": DOCKER_DEFAULT,
                  "CapInh": [], "CapAmb": []}, id="root-docker-default"),
    pytest.param(0, {}, {"CapBnd": [], "CapEff": [], "CapPrm": [], "CapInh": [], "CapAmb": []},
                 id="root-no-caps"),
    pytest.param(1000, dict.fromkeys(("bounding", "effective", "permitted"), DOCKER_DEFAULT),
                 {"CapBnd": DOCKER_DEFAULT, "CapEff": [], "CapPrm": [], "CapInh": [], "CapAmb": []},
                 id="user-no-ambient"),
    pytest.param(1000, {"bounding": DOCKER_DEFAULT, "effective": ["CAP_NET_RAW", "CAP_CHOWN"],
                        "permitted": ["CAP_NET_RAW", "CAP_CHOWN"],
                        "inheritable": ["CAP_NET_RAW", "CAP_CHOWN"],
                        "ambient": ["CAP_NET_RAW", "CAP_CHOWN"]},
                 {"CapBnd": DOCKER_DEFAULT, "CapEff": ["CAP_NET_RAW", "CAP_CHOWN"],
                  "CapPrm": ["CAP_NET_RAW", "CAP_CHOWN"], "CapInh": ["CAP_NET_RAW", "CAP_CHOWN"],
                  "CapAmb": ["CAP_NET_RAW", "CAP_CHOWN"]}, id="user-ambient"),
]  # fmt: skip


@pytest.mark.parametrize(("uid", "caps", "expected"), CAP_CASES)
def test_capabilities(bundle: Bundle, uid: int, caps: dict[str, list[str]], expected: dict[str, list[str]]) -> None:
    """the five capability sets in /proc/self/status are the ones the config asks for."""
    bundle.config["process"]["user"] = {"uid": uid, "gid": uid}
    bundle.config["process"]["capabilities"] = caps
    fields = status_fields(bundle.run_ok("cat /proc/self/status"))
    got = {key: int(fields[key], 16) for key in expected}
    assert got == {key: cap_mask(names) for key, names in expected.items()}


@pytest.mark.parametrize("no_new_privs", [True, False])
def test_no_new_privileges(bundle: Bundle, no_new_privs: bool) -> None:
    """process.noNewPrivileges sets (or leaves clear) the NoNewPrivs bit."""
    bundle.config["process"]["noNewPrivileges"] = no_new_privs
    fields = status_fields(bundle.run_ok("cat /proc/self/status"))
    assert fields["NoNewPrivs"] == ("1" if no_new_privs else "0")


def test_the_process_gets_sigpipe_and_sigxfsz_back(bundle: Bundle) -> None:
    """The container's program does not ignore SIGPIPE or SIGXFSZ, which the runtime's own
    interpreter ignores and execve would pass on (what the caller ignores is passed on, as runc does)."""
    fields = status_fields(bundle.run_ok("cat /proc/self/status"))
    ignored = int(fields["SigIgn"], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)), fields["SigIgn"]


def test_user_groups_and_umask(bundle: Bundle) -> None:
    """process.user sets uid, gid, exactly the additionalGids as supplementary groups, and umask."""
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [100, 1001], "umask": 0o027}
    out = bundle.run_ok("id -u; id -g; umask; grep ^Groups: /proc/self/status")
    uid, gid, umask, groups = out.splitlines()
    assert (uid, gid) == ("1000", "1000")
    assert int(umask, 8) == 0o027
    assert sorted(int(g) for g in groups.split()[1:]) == [100, 1001]


def test_user_without_additional_gids_has_no_host_groups(bundle: Bundle) -> None:
    """a uid/gid with no additionalGids runs with no supplementary group from the host."""
    bundle.config["process"]["user"] = {"uid": 65534, "gid": 65534}
    out = bundle.run_ok("id -u; id -g; grep ^Groups: /proc/self/status")
    uid, gid, groups = out.splitlines()
    assert (uid, gid) == ("65534", "65534")
    assert groups.split()[1:] == []


@pytest.mark.parametrize(("soft", "hard"), [(1024, 1024), (512, 2048), (4096, 8192)])
def test_rlimit_nofile(bundle: Bundle, soft: int, hard: int) -> None:
    """process.rlimits sets the soft and hard limits (RLIMIT_NOFILE)."""
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": soft, "hard": hard}]
    assert bundle.run_ok("ulimit -Sn; ulimit -Hn").split() == [str(soft), str(hard)]


def test_rlimit_several(bundle: Bundle) -> None:
    """every listed rlimit is applied, not only the first."""
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 300, "hard": 300},
        {"type": "RLIMIT_NPROC", "soft": 77, "hard": 88},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    ]
    limits = Path("/proc/self/limits")
    assert limits.exists()
    out = bundle.run_ok("grep -E '^Max (open files|processes|core file size)' /proc/self/limits")
    rows = {line[:25].strip(): line[25:].split()[:2] for line in out.splitlines()}
    assert rows == {"Max core file size": ["0", "0"], "Max processes": ["77", "88"], "Max open files": ["300", "300"]}


def test_rlimit_takes_the_whole_unsigned_range(bundle: Bundle) -> None:
    """rlim_t is unsigned 64-bit: 2**63 is a number like any other and the
    all-ones value is unlimited (Python's resource module could pass neither)."""
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_CORE", "soft": 2**63, "hard": 2**64 - 1}]
    out = bundle.run_ok("grep '^Max core file size' /proc/self/limits")
    assert out[25:].split()[:2] == [str(2**63), "unlimited"]


def test_rlimit_raise_past_the_hard_limit_is_an_error(bundle: Bundle) -> None:
    """raising a hard limit needs CAP_SYS_RESOURCE, which root lacks here:
    create fails naming process.rlimits and leaves nothing behind."""
    own_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # the runtime inherits it
    if own_hard >= int(Path("/proc/sys/fs/nr_open").read_text()):
        pytest.skip("the open-files hard limit is already the kernel's maximum: nothing to raise it to")
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": own_hard + 1}]
    done = bundle.create()
    assert done.returncode == 1, f"create succeeded: {done.stdout}{done.stderr}"
    assert "process.rlimits" in done.stderr and "setrlimit" in done.stderr, done.stderr
    assert not bundle.exists()


def test_cwd_and_env(bundle: Bundle) -> None:
    """process.cwd is the working directory and process.env is the whole environment."""
    bundle.config["process"]["cwd"] = "/etc"
    bundle.config["process"]["env"] += ["FOO=bar", "SPACED=a b  c"]
    out = bundle.run_ok('pwd; echo "$FOO"; echo "$SPACED"; env')
    lines = out.splitlines()
    assert lines[:3] == ["/etc", "bar", "a b  c"]
    names = {line.partition("=")[0] for line in lines[3:]}
    assert "PYTEST_CURRENT_TEST" not in names, "the runtime's environment leaked into the container"


@pytest.mark.parametrize(
    ("script", "code"),
    [("exit 0", 0), ("exit 3", 3), ("exit 255", 255), ("kill -9 $$", 137), ("kill -TERM $$", 143)],
)
def test_exit_code(bundle: Bundle, script: str, code: int) -> None:
    """`run` exits with the container's code; a process killed by signal N gives 128+N."""
    # Without a pid namespace $$ is not an init, so the kernel delivers the signal.
    bundle.config["linux"]["namespaces"] = [
        ns for ns in bundle.config["linux"]["namespaces"] if ns["type"] != "pid"
    ]
    bundle.sh(script)
    assert bundle.run().returncode == code


def test_oom_score_adj_positive(bundle: Bundle) -> None:
    """a positive process.oomScoreAdj is written to the container's oom_score_adj."""
    bundle.config["process"]["oomScoreAdj"] = 500
    assert bundle.run_ok("cat /proc/self/oom_score_adj").strip() == "500"


def test_oom_score_adj_negative_is_an_error(bundle: Bundle) -> None:
    """a negative oomScoreAdj that cannot be written (no CAP_SYS_RESOURCE) fails create, naming it.

    The issue requires an error rather than a silent clamp; runc fails here too.
    """
    own = int(Path("/proc/self/oom_score_adj").read_text())
    bundle.config["process"]["oomScoreAdj"] = -500
    assert own > -500
    done = bundle.create()
    assert done.returncode == 1, f"create succeeded: {done.stdout}{done.stderr}"
    assert "oomScoreAdj" in done.stderr or "oom_score_adj" in done.stderr
    assert not bundle.exists()


# Puts fd argv[1] at number argv[2] (inheritable), then execs argv[3:].
MOVE_FD_THEN_EXEC = (
    "import os, sys; src, dst = int(sys.argv[1]), int(sys.argv[2]); os.dup2(src, dst); "
    "os.close(src); os.execv(sys.argv[3], sys.argv[3:])"
)


def run_with_extra_fd(bundle: Bundle, fd_number: int, *run_flags: str) -> str:
    """`run` the bundle with a pipe holding b"from-host" open as `fd_number` in the runtime."""
    read_end, write_end = os.pipe()
    os.write(write_end, b"from-host\n")
    os.close(write_end)
    bundle.write_config()
    try:
        done = SUBREAPER.run(
            [sys.executable, "-c", MOVE_FD_THEN_EXEC, str(read_end), str(fd_number),
             str(bundle.runtime), "--root", str(bundle.state_root),
             "run", *run_flags, "--bundle", str(bundle.path), bundle.id],
            timeout=30, pass_fds=(read_end,), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, text=True, env=bundle.env(),
        )  # fmt: skip
    finally:
        os.close(read_end)
    assert done.returncode == 0, done.stderr
    return str(done.stdout)


def test_no_host_fd_reaches_the_container(bundle: Bundle) -> None:
    """an fd open in the runtime's caller is not inherited by the container (only 0, 1, 2)."""
    # A second command keeps sh from exec'ing ls, whose own directory fd would show.
    bundle.sh("ls /proc/$$/fd; echo end")
    assert sorted(run_with_extra_fd(bundle, 5).split()[:-1]) == ["0", "1", "2"]


def test_preserve_fds(bundle: Bundle) -> None:
    """--preserve-fds N passes fds 3..3+N-1 of the caller to the container's process."""
    bundle.sh("ls /proc/$$/fd; cat <&3")
    lines = run_with_extra_fd(bundle, 3, "--preserve-fds", "1").split()
    assert sorted(lines[:-1]) == ["0", "1", "2", "3"]
    assert lines[-1] == "from-host"


def test_missing_cwd_is_created(writable_bundle: Bundle) -> None:
    """a process.cwd the rootfs lacks is created inside the rootfs (as runc does), and the process starts there."""
    writable_bundle.config["process"]["cwd"] = "/work/dir"
    assert writable_bundle.run_ok("pwd").strip() == "/work/dir"
    assert (writable_bundle.rootfs / "work" / "dir").is_dir()


@runc_gap("runc 1.1 ignores linux.personality")
def test_personality_linux32(bundle: Bundle) -> None:
    """linux.personality LINUX32 makes uname report a 32-bit machine."""
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    assert bundle.run_ok("uname -m").strip() in ("i686", "i386", "armv8l", "armv7l")


@runc_gap("runc 1.1 has no time namespaces")
def test_time_namespace_boottime_offset(bundle: Bundle) -> None:
    """a time namespace with a boottime offset shifts /proc/uptime inside the container only."""
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 10_000_000, "nanosecs": 0}}
    inside = float(bundle.run_ok("cat /proc/uptime").split()[0])
    outside = float(Path("/proc/uptime").read_text().split()[0])
    assert inside - outside > 9_999_000

"""Checkpoint and restore through CRIU: the command lines (pure) and running criu.

What a checkpoint of one of our containers has to tell CRIU, as runc tells
it (libcontainer's criu code is the model; these are criu's own options):

* ``--root``: the container's rootfs as this namespace sees it.  At restore
  it is the *new* container's rootfs, prepared by the caller like any
  other (the CRI daemon applies the old container's file changes to it).
* External mounts.  A bind mount from the host (``/etc/hosts``, volumes,
  ``/dev/shm``, a host ``/sys``, cgroup directories) cannot be dumped: CRIU
  records it under a key and, at restore, binds whatever the key is mapped
  to.  The key is the mount's destination (``--external mnt[DEST]:DEST`` at
  dump, ``mnt[DEST]:NEW_SOURCE`` at restore), so a restore into another
  bundle maps each mount to that bundle's source.  Mounts the host made
  under an external bind (the host's /sys and its submounts) are left to
  ``--external mnt[]``, which finds them by their host path.
* A network namespace joined by path (the pod's) is external too: dumped as
  ``--external net[INODE]:extRootNetNS`` and restored into the namespace the
  new spec names, passed to criu as an open fd (``--inherit-fd``).
* A PID namespace joined by path (the pod's, when its containers share
  one) likewise: ``--external pid[INODE]:extRootPidNS`` at dump (criu
  cannot dump a PID namespace without its init, which is the pod's pause),
  and at restore the new spec's namespace as an inherited fd; the restored
  processes take their old pids in it.
* The init's stdio: the shim's pipes, and the host's /dev/null for a
  container without stdin.  descriptors.json in the image holds what /proc
  shows for them, as runc writes it; stdio-keys.json criu's names for them:
  a pipe's identity (``pipe:[N]``), or for a file outside the container's
  mounts ``file[MNT_ID:INODE]``, which the dump must declare ``--external``
  (criu cannot find its mount: "Can't lookup mount=24 for fd=0").  At
  restore the new stdio, this process's fds 0-2, stand in for them
  (``--inherit-fd fd[I]:KEY``).
* Cgroups: the restored tasks go into the new container's cgroup
  (``--cgroup-root``, per v1 controller), which the caller created; with
  ``--manage-cgroups-mode soft`` criu leaves the limits of a cgroup it did
  not make alone.
* The restored init becomes this process's child (``--restore-sibling``,
  ``--restore-detached``), so once the runtime exits it is the shim's, as
  after ``run --detach``.

A failed criu run is reported with the ``Error`` lines of its log (the log
file stays in the work dir).
"""

from __future__ import annotations

from .kernel.errors import RuntimeFault
from .kernel.lean import jsonfast, leanos

TYPE_CHECKING = False  # typing stays off the hot paths: runtime/kernel/lean/README.md
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .spec import Spec

DESCRIPTORS = "descriptors.json"
STDIO_KEYS = "stdio-keys.json"
DUMP_LOG = "dump.log"
RESTORE_LOG = "restore.log"
NET_KEY = "extRootNetNS"
PID_KEY = "extRootPidNS"
# Bind mounts from outside the container found by criu itself ("m": their
# master/slave peers outside too; "s": shared with outside).
AUTO_MOUNTS = "mnt[]:sm"
MANAGE_CGROUPS_MODES = ("soft", "full", "strict", "ignore")


def is_bind(m: Any) -> bool:
    return m.type == "bind" or "bind" in m.options or "rbind" in m.options


def external_mounts(spec: Spec, cgroup_binds: Sequence[str] = ()) -> dict[str, str]:
    """Destination -> host source of each mount criu must treat as external: the spec's binds
    and the cgroup directories bound from the host (``cgroup_binds``: their destinations,
    sources filled in by the caller)."""
    out: dict[str, str] = {}
    for m in spec.mounts:
        if is_bind(m):
            out[m.destination] = m.source
    for dest in cgroup_binds:
        out.setdefault(dest, "")
    return out


def common_flags(opts: Mapping[str, Any]) -> list[str]:
    flags = []
    for name in ("tcp_established", "ext_unix_sk", "shell_job", "file_locks"):
        if opts.get(name):
            flags.append("--" + name.replace("_", "-"))
    mode = opts.get("manage_cgroups_mode") or "soft"
    flags.append(f"--manage-cgroups={mode}")  # an optional argument: only with '='
    return flags


def dump_argv(criu: str, pid: int, rootfs: str, image_dir: str, work_dir: str, externals: Sequence[str],
              net_inode: int | None, opts: Mapping[str, Any], external_files: Sequence[str] = (),
              pid_inode: int | None = None) -> list[str]:
    """``criu dump`` of the tree under ``pid`` (pure)."""
    argv = [criu, "dump", "--tree", str(pid), "--images-dir", image_dir, "--work-dir", work_dir,
            "--log-file", DUMP_LOG, "-v4", "--root", rootfs, "--external", AUTO_MOUNTS]
    for dest in externals:
        argv += ["--external", f"mnt[{dest}]:{dest}"]
    if net_inode is not None:
        argv += ["--external", f"net[{net_inode}]:{NET_KEY}"]
    if pid_inode is not None:
        argv += ["--external", f"pid[{pid_inode}]:{PID_KEY}"]
    for key in external_files:
        argv += ["--external", key]
    if opts.get("leave_running"):
        argv.append("--leave-running")
    return argv + common_flags(opts)


def restore_argv(criu: str, rootfs: str, image_dir: str, work_dir: str, externals: Mapping[str, str],
                 inherit: Mapping[str, int], cgroup_roots: Sequence[str], pid_file: str,
                 opts: Mapping[str, Any]) -> list[str]:
    """``criu restore`` into a new container (pure).  ``inherit``: key -> an fd criu gets."""
    argv = [criu, "restore", "--images-dir", image_dir, "--work-dir", work_dir, "--log-file", RESTORE_LOG,
            "-v4", "--root", rootfs, "--restore-detached", "--restore-sibling", "--pidfile", pid_file,
            "--external", AUTO_MOUNTS]
    for dest, source in externals.items():
        argv += ["--external", f"mnt[{dest}]:{source}"]
    for key, fd in inherit.items():
        argv += ["--inherit-fd", f"fd[{fd}]:{key}"]
    for root in cgroup_roots:
        argv += ["--cgroup-root", root]
    return argv + common_flags(opts)


def stdio_key(link: str, mnt_id: int, inode: int) -> str:
    """criu's name for a dumped stdio fd (pure): a pipe or socket by its identity, any other file
    (the host's /dev/null, which the container's mounts do not show) as an external file."""
    if link.startswith(("pipe:", "socket:")):
        return link
    return f"file[{mnt_id:x}:{inode:x}]" if link else ""


def stdio_inherits(keys: Sequence[str]) -> dict[str, int]:
    """The dumped init's stdio keys -> the inherit-fd map for our fds 0-2 (pure): the new stdio
    (the shim's) stands in for the old."""
    return {k: i for i, k in enumerate(keys[:3]) if k}


def log_errors(text: str, limit: int = 6) -> str:
    """The last ``Error`` lines of a criu log, joined (pure)."""
    lines = [ln.strip() for ln in text.splitlines() if "Error" in ln]
    return "; ".join(lines[-limit:]) or (text.strip().splitlines() or ["(empty log)"])[-1]


def read_stdio_keys(image_dir: str) -> list[str]:
    try:
        raw = jsonfast.load_file(leanos.path.join(image_dir, STDIO_KEYS))
    except FileNotFoundError:
        return []
    return [str(d) for d in raw] if isinstance(raw, list) else []


def save_descriptors(image_dir: str, pid: int) -> list[str]:
    """descriptors.json (runc's: the init's stdio as /proc shows them) and stdio-keys.json (ours:
    criu's names for them); returns the external files' keys, for ``--external`` at dump."""
    links, keys = [], []
    for fd in range(3):
        try:
            link = leanos.readlink(f"/proc/{pid}/fd/{fd}")
            st = leanos.stat(f"/proc/{pid}/fd/{fd}")
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                mnt_id = next(int(ln.split()[1]) for ln in f if ln.startswith("mnt_id:"))
        except (OSError, StopIteration):
            link, st, mnt_id = "", None, 0
        links.append(link)
        keys.append(stdio_key(link, mnt_id, st.st_ino if st is not None else 0))
    for name, doc in ((DESCRIPTORS, links), (STDIO_KEYS, keys)):
        with open(leanos.path.join(image_dir, name), "w") as f:
            f.write(jsonfast.dumps(doc))
    return [k for k in keys if k.startswith("file[")]


def run(argv: list[str], work_dir: str, log_name: str, what: str, target: str,
        pass_fds: Sequence[int] = (), inherit_stdio: bool = False) -> None:
    """Run criu; RuntimeFault carrying its log's errors when it fails.  ``inherit_stdio``: criu
    gets this process's fds 0-2 (a restore hands them to the restored init); otherwise its
    output is kept for the error."""
    import subprocess

    pipe = None if inherit_stdio else subprocess.PIPE
    try:
        done = subprocess.run(argv, stdin=None, stdout=pipe, stderr=None if inherit_stdio else subprocess.STDOUT,
                              pass_fds=tuple(pass_fds), check=False)
    except FileNotFoundError as err:
        raise RuntimeFault(what, target, f"criu is not installed ({argv[0]} not found)") from err
    if done.returncode == 0:
        return
    try:
        with open(leanos.path.join(work_dir, log_name), errors="replace") as f:
            log = f.read()
    except OSError:
        log = (done.stdout or b"").decode(errors="replace") or "criu wrote no log"
    raise RuntimeFault(what, target, f"criu exited {done.returncode}: {log_errors(log)} "
                                     f"(log: {leanos.path.join(work_dir, log_name)})")


def cgroup_mounts_and_roots(v2: bool, v1_mounts: Sequence[tuple[str, str]], paths: Mapping[str, str],
                            cgroup2_root: str = "/sys/fs/cgroup") -> tuple[dict[str, str], list[str]]:
    """The container's cgroup binds (destination -> its cgroup directory on the host) as the
    runtime makes them without a private cgroup namespace (rootfs/setup.py, _mount_cgroup), and
    criu's ``--cgroup-root`` for each hierarchy (pure).  ``paths``: the manager's directories
    by controller ("" for cgroup2)."""
    if v2:
        path = paths.get("", "")
        return {"/sys/fs/cgroup": path}, ["/" + leanos.path.relpath(path, cgroup2_root).lstrip("./")]
    mounts: dict[str, str] = {}
    roots: list[str] = []
    for mountpoint, options in v1_mounts:
        ctl = options.split(",")[0].removeprefix("name=")
        path = paths.get(ctl) or paths.get(options) or ""
        if not path:
            continue
        mounts["/sys/fs/cgroup/" + leanos.path.basename(mountpoint)] = path
        roots.append(f"{options}:/{leanos.path.relpath(path, mountpoint)}")
    return mounts, roots

"""dockyard-runc checkpoint: dump a running container with CRIU (runc's flags).

The images go to ``--image-path`` (with descriptors.json, the init's stdio,
as runc writes it), criu's log and scratch files to ``--work-path``.  Without
``--leave-running`` the container's processes end with the dump and the
container is stopped; delete it as any other.  runtime/criu.py has what is
passed to criu and why."""

from __future__ import annotations

from .. import container, criu
from ..kernel.errors import InvalidArgument, Unsupported
from ..kernel.lean import leanos
from ..status import require
from .args import Parser, add_id
from .main import Context


def add_criu_flags(parser: Parser) -> None:
    parser.add_argument("--image-path", default="")
    parser.add_argument("--work-path", default="")
    parser.add_argument("--tcp-established", action="store_true")
    parser.add_argument("--ext-unix-sk", action="store_true")
    parser.add_argument("--shell-job", action="store_true")
    parser.add_argument("--file-locks", action="store_true")
    parser.add_argument("--manage-cgroups-mode", default="soft")
    # runc's flags this runtime does not implement: refused by name, not ignored
    for flag in ("--lazy-pages", "--auto-dedup"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--empty-ns", default="")


def check_criu_flags(args: object, verb: str) -> tuple[str, str]:
    """(image dir, work dir), both made absolute; InvalidArgument/Unsupported naming the flag."""
    for flag in ("lazy_pages", "auto_dedup", "empty_ns"):
        if getattr(args, flag):
            raise Unsupported(verb, "--" + flag.replace("_", "-"), "not supported by dockyard-runc")
    if args.manage_cgroups_mode not in criu.MANAGE_CGROUPS_MODES:  # type: ignore[attr-defined]
        raise InvalidArgument(verb, "--manage-cgroups-mode",
                              f"must be one of {', '.join(criu.MANAGE_CGROUPS_MODES)}")
    image = leanos.path.abspath(args.image_path or "checkpoint")  # type: ignore[attr-defined]
    work = leanos.path.abspath(args.work_path or image)  # type: ignore[attr-defined]
    return image, work


def run(ctx: Context, argv: list[str]) -> int:
    parser = Parser("checkpoint")
    add_criu_flags(parser)
    parser.add_argument("--leave-running", action="store_true")
    for flag in ("--pre-dump", "--page-server", "--parent-path", "--status-fd"):
        parser.add_argument(flag, default="")
    add_id(parser)
    args = parser.parse(argv)
    for flag in ("pre_dump", "page_server", "parent_path", "status_fd"):
        if getattr(args, flag):
            raise Unsupported("checkpoint", "--" + flag.replace("_", "-"), "not supported by dockyard-runc")
    image, work = check_criu_flags(args, "checkpoint")
    from ..spec import parse_spec

    with ctx.store.lock(args.id):
        c = container.load(ctx.store, args.id)
        require("checkpoint", c.status, args.id)
        spec = parse_spec(ctx.store.load_config(args.id))
        if spec.process is not None and spec.process.terminal and not args.shell_job:
            raise InvalidArgument("checkpoint", args.id, "the container has a terminal: pass --shell-job")
        leanos.makedirs(image, 0o700, exist_ok=True)
        leanos.makedirs(work, 0o700, exist_ok=True)
        external_files = criu.save_descriptors(image, c.state.pid)
        externals = list(criu.external_mounts(spec))
        if any(m.type in ("cgroup", "cgroup2") for m in spec.mounts) and not _private(spec, "cgroup"):
            from .. import cgroups

            mountinfo = cgroups.read_mountinfo()
            binds, _ = criu.cgroup_mounts_and_roots(cgroups.detect(mountinfo_text=mountinfo) == cgroups.Mode.V2,
                                                    cgroups.v1_mounts(mountinfo), c.manager.paths())
            externals += [d for d in binds if d not in externals]
        net = None
        if not _private(spec, "network"):
            net = leanos.stat(f"/proc/{c.state.pid}/ns/net").st_ino
        pid_ns = None
        if not _private(spec, "pid"):  # the pod's (or the host's): its init is not ours to dump
            pid_ns = leanos.stat(f"/proc/{c.state.pid}/ns/pid").st_ino
        argv_ = criu.dump_argv(ctx.criu or "criu", c.state.pid, c.state.rootfs, image, work, externals, net,
                               vars(args), external_files, pid_ns)
        criu.run(argv_, work, criu.DUMP_LOG, "checkpoint", args.id)
    return 0


def _private(spec: object, kind: str) -> bool:
    """The spec asks for a namespace of its own of this kind (not one joined by path)."""
    ns = spec.linux.namespace(kind)  # type: ignore[attr-defined]
    return bool(ns is not None and not ns.path)

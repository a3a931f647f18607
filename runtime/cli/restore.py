"""dockyard-runc restore: make a container from a checkpoint (runc's flags).

Like create + start in one step, from ``--image-path`` instead of the spec's
process: the state dir, the cgroup (with the spec's limits) and the record
are made as ``create`` makes them, and criu puts the dumped processes back
into them, under the bundle's rootfs, mounts and namespaces (runtime/criu.py
says how each is mapped).  The restored init is this process's child; with
``--detach`` this process leaves and the init goes to the nearest subreaper
(the shim), as after ``run --detach``.  What failed is undone: no record,
cgroup or process is left."""

from __future__ import annotations

from .. import cgroups, container, criu
from ..kernel import syscalls
from ..kernel.errors import RuntimeFault, Unsupported
from ..kernel.lean import leanos
from ..state import ContainerState, process_start_time
from ..undo import Undo
from .args import Parser, add_id
from .checkpoint import add_criu_flags, check_criu_flags
from .main import Context, collect_while_waiting


def run(ctx: Context, argv: list[str]) -> int:
    from ..container import manager_for
    from ..spawn import _now, _rootfs_path, _write_pid_file, load_bundle

    parser = Parser("restore")
    add_criu_flags(parser)
    parser.add_argument("--bundle", "-b", default=".")
    parser.add_argument("--detach", "-d", action="store_true")
    parser.add_argument("--pid-file", default=None)
    parser.add_argument("--console-socket", default=None)
    parser.add_argument("--no-subreaper", action="store_true")
    parser.add_argument("--no-pivot", action="store_true")
    parser.add_argument("--lsm-profile", default="")
    parser.add_argument("--lsm-mount-context", default="")
    add_id(parser)
    args = parser.parse(argv)
    image, work = check_criu_flags(args, "restore")
    for flag in ("console_socket", "lsm_profile", "lsm_mount_context"):
        if getattr(args, flag):
            raise Unsupported("restore", "--" + flag.replace("_", "-"), "not supported by dockyard-runc")
    if not leanos.path.isfile(leanos.path.join(image, "inventory.img")):
        raise RuntimeFault("restore", args.id, f"{image} holds no checkpoint (no inventory.img)")
    bundle = leanos.path.abspath(args.bundle)
    raw, spec = load_bundle(bundle)
    rootfs = _rootfs_path(spec, bundle)
    lx = spec.linux
    if not args.detach and not args.no_subreaper:
        syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    mountinfo = cgroups.read_mountinfo()
    manager = manager_for(lx.cgroups_path, args.id, mountinfo)
    with Undo() as stack:
        ctx.store.create_dir(args.id)
        stack.callback(ctx.store.remove_dir, args.id)
        ctx.store.save_config(args.id, raw)
        manager.create()
        stack.callback(manager.destroy)
        manager.apply(cgroups.with_default_devices(lx.resources, list(lx.devices)))
        externals = {dest: source for dest, source in criu.external_mounts(spec).items()}
        roots: list[str] = []
        cgroup_ns = lx.namespace("cgroup")
        if any(m.type in ("cgroup", "cgroup2") for m in spec.mounts) and not (cgroup_ns and not cgroup_ns.path):
            binds, roots = criu.cgroup_mounts_and_roots(cgroups.detect(mountinfo_text=mountinfo) == cgroups.Mode.V2,
                                                        cgroups.v1_mounts(mountinfo), manager.paths())
            externals.update(binds)
        elif manager.paths():
            _, roots = criu.cgroup_mounts_and_roots(cgroups.detect(mountinfo_text=mountinfo) == cgroups.Mode.V2,
                                                    cgroups.v1_mounts(mountinfo), manager.paths())
        inherit = criu.stdio_inherits(criu.read_stdio_keys(image))
        for kind, key in (("network", criu.NET_KEY), ("pid", criu.PID_KEY)):
            ns = lx.namespace(kind)
            if ns is not None and ns.path:
                fd = leanos.open(ns.path, leanos.O_RDONLY)  # inherited by criu (pass_fds)
                stack.callback(leanos.close, fd)
                inherit[key] = fd
        leanos.makedirs(work, 0o700, exist_ok=True)
        pid_path = leanos.path.join(work, "restored.pid")
        argv_ = criu.restore_argv(ctx.criu or "criu", rootfs, image, work, externals, inherit, roots, pid_path,
                                  vars(args))
        criu.run(argv_, work, criu.RESTORE_LOG, "restore", args.id, pass_fds=[fd for fd in inherit.values() if fd > 2],
                 inherit_stdio=True)
        with open(pid_path) as f:
            pid = int(f.read().strip())
        started = process_start_time(pid)
        if started is None:
            raise RuntimeFault("restore", args.id, f"the restored init (pid {pid}) exited at once")
        pid_ns = lx.namespace("pid")
        state = ContainerState(
            id=args.id, bundle=bundle, rootfs=rootfs, pid=pid, pid_start=started[0], created=_now(),
            cgroup_path=lx.cgroups_path, oci_version=spec.oci_version, annotations=spec.annotations,
            private_pidns=bool(pid_ns and not pid_ns.path), cgroups=manager.describe(),
        )
        ctx.store.save(state)
        if args.pid_file:
            _write_pid_file(args.pid_file, pid)
        stack.pop_all()
    if args.detach:
        return 0
    collect_while_waiting()
    with container.forwarded_signals(pid):
        code = container.wait_exit(pid)
    container.delete(ctx.store, args.id, force=True)
    return code

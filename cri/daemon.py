"""dockyardd: the CRI daemon's entry point.

    dockyardd [--config FILE]     serve CRI v1 on the configured unix socket
    dockyardd config default      print the default configuration

Startup order, and why:
  1. Parse the config; any error stops here naming the key (exit 2).
  2. Open the stores (content, snapshots, image metadata).
  3. Start /metrics and the gRPC servers *before* recovery: clients that
     connect early get UNAVAILABLE from instrument.py instead of a refused
     connection, which kubelet treats the same but which is visible in logs.
     Two servers: CRI on ``socket.path`` (group-readable), and the admin
     protocol of the ``dockyard`` command on ``admin.socket`` (root only).
  4. Run restart.recover in a thread, start the spare shims (cri/shims.py),
     then mark ready.
The streaming server (Exec/Attach/PortForward URLs) starts before the gRPC
server, since those RPCs need its address.
On SIGTERM/SIGINT: cancel in-flight pulls (their ingest files are removed by
the content store's writers), stop the streaming server (its sessions are
cancelled: exec processes killed through their shims, which still answer),
stop the gRPC server with a short grace, remove the socket, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.cri import grpc_core_env

grpc_core_env.apply()  # before grpc is imported: see the module

import grpc  # type: ignore[import-untyped]  # noqa: E402  # grpcio ships no stubs; types-grpcio is not a dependency

from dockyard.cri import errors, restart  # noqa: E402
from dockyard.cri.grpc_server import server as grpc_server  # noqa: E402
from dockyard.cri.config import Config, load_config, render_default
from dockyard.cri.metrics import Metrics
from dockyard.cri.message_size import MAX_MESSAGE_BYTES
from dockyard.cri.admin import service as admin_service
from dockyard.cri.server import service
from dockyard.cri.server.images import Images
from dockyard.cri.server.instrument import Instrument, Readiness

log = logging.getLogger("dockyard.cri.daemon")

STOP_GRACE_SECONDS = 5.0


@dataclass(slots=True)
class Stores:
    images: Images
    content: Any
    snapshotter: Any
    image_store: Any
    convert_auth: Any
    puller: Any


def open_stores(config: Config, metrics: Metrics) -> Stores:
    """Build the image side from the config (the real registry and storage parts)."""
    from dockyard.cri.content.store import ContentStore
    from dockyard.cri.image import reference
    from dockyard.cri.image.leases import Leases
    from dockyard.cri.image.platform import Platform
    from dockyard.cri.image.registry import hosts, puller
    from dockyard.cri.image.store import ImageStore
    from dockyard.cri.server import credentials, record
    from dockyard.cri.snapshot.overlay import Snapshotter

    root = config.root_dir
    leases = Leases()  # what pulls in flight hold from GC (cri/image/leases.py)
    content = ContentStore(os.path.join(root, "content"), on_use=leases.hold)
    snapshotter = Snapshotter(os.path.join(root, "snapshots"))
    image_store = ImageStore(os.path.join(root, "images"))
    reg = config.registry
    the_puller = puller.Puller(
        hosts.HostsConfig(reg.config_path),
        content,
        credentials=credentials.credential_source(reg.credentials),
        platform=Platform.host(),
        max_concurrent_layers=reg.max_concurrent_downloads,
        timeout=reg.request_timeout,
        retries=reg.retries,
        no_progress_timeout=reg.image_pull_progress_timeout,
        metrics=metrics,
    )
    images = Images(
        content=content,
        snapshotter=snapshotter,
        store=image_store,
        puller=the_puller,
        metrics=metrics,
        parse_reference=reference.parse_reference,
        make_record=record.make_record,
        leases=leases,
    )
    return Stores(images, content, snapshotter, image_store, credentials.from_cri_auth, the_puller)


def open_runtime(config: Config, stores: Stores, metrics: Metrics | None = None) -> Any:
    """The RuntimeService's state: sandbox/container stores, CNI, shims, events."""
    from dockyard.cri.events import ContainerEvents
    from dockyard.cri.apparmor import AppArmor
    from dockyard.cri.network.cni import CNI
    from dockyard.cri.network.timed import TimedNetwork
    from dockyard.cri.node_facts import read_node_resources
    from dockyard.cri.server.cri_service import CriService, NoMetrics
    from dockyard.cri.store.container import ContainerStore
    from dockyard.cri.store.sandbox import SandboxStore

    cni: Any = CNI(config.cni.conf_dir, config.cni.bin_dirs, config.cni_cache_dir)
    cri = CriService(
        config=config,
        images=stores.images,
        snapshotter=stores.snapshotter,
        cni=TimedNetwork(cni, metrics) if metrics is not None else cni,
        sandboxes=SandboxStore(config.root_dir),
        containers=ContainerStore(config.root_dir),
        events=ContainerEvents(),
        node=read_node_resources(),
        apparmor=AppArmor(),
        metrics=metrics if metrics is not None else NoMetrics(),
    )
    if metrics is not None:
        metrics.count_node(cri.node_counts)
    return cri


def open_stream_server(config: Config, runtime: Any, metrics: Metrics) -> Any:
    from dockyard.cri.server.streaming_backend import ShimStreamBackend
    from dockyard.cri.streaming.server import StreamServer, StreamServerConfig

    st = config.stream_server
    settings = StreamServerConfig(address=st.address, port=st.port, tls_cert_file=st.tls_cert,
                                  tls_key_file=st.tls_key, token_ttl=st.token_ttl)
    return StreamServer(ShimStreamBackend(runtime), settings, metrics.streaming)


def pinned_refs(config: Config, stores: Stores) -> frozenset[str]:
    from dockyard.cri.image.reference import parse_reference

    return frozenset({parse_reference(config.pause_image).string()})


def claim_socket(path: str) -> None:
    """Make the socket's directory and remove a stale socket; refuse a live one."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a previous daemon's leftover
        return
    finally:
        probe.close()
    raise errors.FailedPrecondition(f"socket {path} is in use by another process (is dockyardd already running?)")


# Worker threads for blocking work (asyncio.to_thread).  Most of it waits on
# the disk or the kernel (record and snapshot fsyncs, mounts, cgroup reads),
# not the CPU, and ten pods created at once queued behind the default six
# (bench/density.py); an idle thread costs only its stack.
WORKER_THREADS = 16

# How long a thread running Python keeps the GIL while the event loop waits
# for it.  The workers build stats messages and unpack layers in Python; at
# CPython's 5 ms every wake-up of the loop behind them waited about that long
# (a loop's 2 ms sleep woke 6.0 ms late at the p50 beside a busy thread, 1.2
# ms at 1 ms; this VM, 2026-12-08), and kubelet's relist calls waited with it.
GIL_SWITCH_INTERVAL_S = 0.001


async def serve(config: Config, ready_file: str | None = None) -> int:
    from concurrent.futures import ThreadPoolExecutor

    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="asyncio"))
    metrics = Metrics()
    readiness = Readiness()
    instrument = Instrument(readiness, metrics)
    stores = await asyncio.to_thread(open_stores, config, metrics)
    runtime = open_runtime(config, stores, metrics)
    host, port = config.metrics_host_port
    metrics.serve(host, port)
    streams = open_stream_server(config, runtime, metrics)
    try:
        await streams.start()
    except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
        metrics.close()
        raise errors.FailedPrecondition(f"streaming server on {config.stream_server.address}:"
                                        f"{config.stream_server.port}: {err}") from err
    claim_socket(config.socket_path)
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    server = grpc_server.Server(max_receive_message_length=MAX_MESSAGE_BYTES,
                                max_send_message_length=MAX_MESSAGE_BYTES)
    service.add_services(
        server,
        instrument,
        service.runtime_handlers(config, runtime, streams),
        service.image_handlers(stores.images, stores.convert_auth, pinned_refs(config, stores)),
        service.runtime_streams(runtime, readiness),
    )
    # The admin socket (the `dockyard` command) has a server of its own: root only.
    claim_socket(config.admin_socket_path)
    admin_server = grpc.aio.server(options=options)
    admin_server.add_generic_rpc_handlers(
        (admin_service.admin_handler(instrument, stores.images, runtime, pinned_refs(config, stores)),))
    # cAdvisor's containerd API subset (cri/cadvisor_endpoint.py), when asked for:
    # a server of its own, so the socket answers nothing else.
    cadvisor_server = None
    if config.cadvisor_socket:
        from dockyard.cri.cadvisor_endpoint import cadvisor_handlers

        claim_socket(config.cadvisor_socket)
        cadvisor_server = grpc.aio.server(options=options)
        cadvisor_server.add_generic_rpc_handlers(tuple(cadvisor_handlers(instrument, runtime)))
    # The sockets are born private (grpc binds them when a port is added, not at
    # start); the CRI one is then opened to the group, the admin one stays 0600.
    old_umask = os.umask(0o177)
    try:
        server.add_insecure_port(f"unix://{config.socket_path}")
        admin_server.add_insecure_port(f"unix://{config.admin_socket_path}")
        if cadvisor_server is not None:
            cadvisor_server.add_insecure_port(f"unix://{config.cadvisor_socket}")
        await server.start()
        await admin_server.start()
        if cadvisor_server is not None:
            await cadvisor_server.start()
    finally:
        os.umask(old_umask)
    os.chmod(config.socket_path, config.socket_mode)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    try:
        await asyncio.to_thread(
            restart.recover, stores.content, stores.snapshotter, stores.images, len(list(stores.image_store.list()))
        )
        await restart.recover_runtime(runtime)
        # CNI 1.1's GC: plugins forget attachments of pods this daemon no longer has.
        await runtime.cni.collect_garbage(s.id for s in runtime.sandboxes.list())
        await runtime.shims.start_spares()
        readiness.set_ready()
        log.info("dockyardd ready on unix://%s (metrics on http://%s/metrics, streaming on %s)",
                 config.socket_path, config.metrics_address, streams.base_url)
        if ready_file:
            with open(ready_file, "w") as f:
                f.write(str(os.getpid()))
        await stop.wait()
        log.info("stopping: cancelling pulls in flight")
    finally:
        await streams.stop()
        await runtime.shims.close_all()  # the shims and their containers keep running
        await runtime.sandboxes.flush()  # records still being written (cri/store/record_dir.py)
        await runtime.containers.flush()
        await stores.images.shutdown()
        # After the pulls are cancelled: a spare may still be starting, and
        # waiting for it must not let a pull run on past SIGTERM.
        await runtime.shims.stop_spares()
        await admin_server.stop(STOP_GRACE_SECONDS)
        if cadvisor_server is not None:
            await cadvisor_server.stop(STOP_GRACE_SECONDS)
        await server.stop(STOP_GRACE_SECONDS)
        await stores.puller.aclose()
        metrics.close()
        for path in (config.socket_path, config.admin_socket_path, config.cadvisor_socket):
            if not path:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    log.info("dockyardd stopped")
    return 0


def dump_tasks() -> None:
    """SIGUSR1: log where every asyncio task and every thread waits (for a call
    that seems stuck). Frames are formatted by hand: Task.print_stack goes
    through linecache, which fails on frames of modules loaded by our -IS
    launchers, and the dump must never be the thing that breaks."""
    import threading

    def where(frames: list[Any]) -> str:
        return "\n".join(f"  {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}" for f in frames)

    def awaiting(coro: Any) -> list[Any]:
        # Task.get_stack shows a suspended task's outermost frame only; the
        # place it waits is at the end of the cr_await chain.
        frames: list[Any] = []
        while coro is not None and len(frames) < 50:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                frames.append(frame)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
        return frames

    for task in asyncio.all_tasks():
        log.warning("task %s:\n%s", task.get_name(), where(awaiting(task.get_coro())))
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        frames: list[Any] = []
        f: Any = frame
        while f is not None and len(frames) < 50:
            frames.append(f)
            f = f.f_back
        log.warning("thread %s:\n%s", names.get(ident, ident), where(frames[::-1]))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyardd", description="Dockyard's CRI v1 daemon")
    parser.add_argument("--config", metavar="FILE", help="YAML config (default: built-in defaults)")
    parser.add_argument("--ready-file", metavar="FILE", help=argparse.SUPPRESS)  # tests: written once ready
    sub = parser.add_subparsers(dest="command")
    cfg = sub.add_parser("config", help="configuration helpers")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    cfg_sub.add_parser("default", help="print the full default configuration")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "config":
        sys.stdout.write(render_default())
        return 0
    try:
        config = load_config(args.config)
    except errors.InvalidArgument as err:
        print(f"dockyardd: {err.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Library chatter: grpc's loop notices and httpx's per-request lines would
    # drown the daemon's own debug log (pull progress is logged by the puller).
    for noisy in ("grpc", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return asyncio.run(serve(config, args.ready_file))
    except errors.CriError as err:
        log.error("dockyardd: %s", err.message)
        return 1


if __name__ == "__main__":
    sys.exit(main())

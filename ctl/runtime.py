"""``dockyard containers ls``, ``dockyard pods ls``, ``dockyard info``."""

from __future__ import annotations

import argparse
import json
import time

from dockyard.api import admin_pb2 as pb
from google.protobuf import json_format  # type: ignore[import-untyped]  # no stubs installed

from .client import connect
from .images import _table, human_size


def _age(ns: int) -> str:
    if not ns:
        return ""
    seconds = max(0, int(time.time() - ns / 1e9))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def containers_ls(args: argparse.Namespace) -> int:
    with connect(args.address) as admin:
        containers = admin.ListContainers(pb.ListContainersRequest()).containers
    rows = [("CONTAINER", "NAME", "POD", "IMAGE", "STATE", "CREATED")]
    rows += [(c.id[:13], c.name, c.pod_id[:13], c.image, c.state, _age(c.created_at)) for c in containers]
    _table(rows)
    return 0


def pods_ls(args: argparse.Namespace) -> int:
    with connect(args.address) as admin:
        pods = admin.ListPods(pb.ListPodsRequest()).pods
    rows = [("POD", "NAME", "NAMESPACE", "STATE", "IP", "RUNTIME", "CREATED")]
    rows += [(p.id[:13], p.name, p.namespace, p.state, p.ip, p.runtime_handler, _age(p.created_at)) for p in pods]
    _table(rows)
    return 0


def info(args: argparse.Namespace) -> int:
    with connect(args.address) as admin:
        answer = admin.Info(pb.InfoRequest())
    if args.json:
        print(json.dumps(json_format.MessageToDict(answer, preserving_proto_field_name=True), indent=2))
        return 0
    lines = [
        ("version", answer.version), ("platform", answer.platform), ("CRI socket", answer.cri_socket),
        ("admin socket", answer.admin_socket), ("root dir", answer.root_dir), ("state dir", answer.state_dir),
        ("default runtime", answer.default_runtime), ("runtimes", ", ".join(answer.runtime_handlers)),
        ("network", ("ready: " if answer.network_ready else "NOT ready: ") + answer.network_message),
        ("image filesystem", (f"{human_size(answer.image_fs_used_bytes)}, {answer.image_fs_inodes_used} inodes "
                              f"in {answer.image_fs_mountpoint}")),
        ("images", str(answer.images)), ("pods", str(answer.pods)), ("containers", str(answer.containers)),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    containers = sub.add_parser("containers", aliases=["container", "c"], help="list containers")
    verbs = containers.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("ls", aliases=["list"], help="list every container").set_defaults(run=containers_ls)
    pods = sub.add_parser("pods", aliases=["pod", "p"], help="list pod sandboxes")
    verbs = pods.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("ls", aliases=["list"], help="list every pod sandbox").set_defaults(run=pods_ls)
    p = sub.add_parser("info", help="what the daemon runs with, and how it is")
    p.add_argument("--json", action="store_true", help="the whole answer as JSON")
    p.set_defaults(run=info)

"""``dockyard images``: import, export, ls, rm, pull."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from dockyard.api import admin_pb2 as pb
from dockyard.api.admin import CHUNK_BYTES

from .client import CommandError, connect


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    raise AssertionError("unreachable")


def _chunks(source: BinaryIO, options: pb.ImportOptions) -> Iterator[pb.ImportChunk]:
    yield pb.ImportChunk(options=options)
    while True:
        data = source.read(CHUNK_BYTES)
        if not data:
            return
        yield pb.ImportChunk(data=data)


def import_(args: argparse.Namespace) -> int:
    options = pb.ImportOptions(platform=args.platform or "", base_name=args.base_name or "")
    if args.file == "-":
        source: BinaryIO = sys.stdin.buffer
    else:
        try:
            source = open(args.file, "rb")
        except OSError as err:
            raise CommandError(f"cannot open {args.file}: {err.strerror}") from err
    with source, connect(args.address) as admin:
        answer = admin.ImportImages(_chunks(source, options))
    for image in answer.images:
        names = ", ".join(image.names) if image.names else "(no name)"
        print(f"imported {names} {image.id} ({human_size(image.size)})")
    return 0


def export(args: argparse.Namespace) -> int:
    request = pb.ExportRequest(images=args.images)
    if args.out == "-":
        with connect(args.address) as admin:
            for chunk in admin.ExportImages(request):
                sys.stdout.buffer.write(chunk.data)
        sys.stdout.buffer.flush()
        return 0
    # Into a temp file next to OUT, renamed once complete: a failed export leaves no half archive.
    directory = os.path.dirname(os.path.abspath(args.out))
    fd, temp = tempfile.mkstemp(prefix=".dockyard-export-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, connect(args.address) as admin:
            for chunk in admin.ExportImages(request):
                out.write(chunk.data)
        os.rename(temp, args.out)
    except BaseException:
        os.unlink(temp)
        raise
    return 0


def ls(args: argparse.Namespace) -> int:
    with connect(args.address) as admin:
        images = admin.ListImages(pb.ListImagesRequest()).images
    if args.quiet:
        for image in images:
            for name in image.repo_tags or [image.id]:
                print(name)
        return 0
    rows = [("REF", "IMAGE ID", "SIZE", "PINNED")]
    for image in images:
        for name in image.repo_tags or ["<none>"]:
            rows.append((name, image.id.removeprefix("sha256:")[:12], human_size(image.size),
                         "yes" if image.pinned else ""))
    _table(rows)
    return 0


def rm(args: argparse.Namespace) -> int:
    with connect(args.address) as admin:
        answer = admin.RemoveImages(pb.RemoveImagesRequest(images=args.images))
    for image_id in answer.removed:
        print(f"removed {image_id}")
    if answer.not_found:
        raise CommandError(f"not found: {', '.join(answer.not_found)}")
    return 0


def pull(args: argparse.Namespace) -> int:
    username, _, password = (args.user or "").partition(":")
    with connect(args.address) as admin:
        image = admin.PullImage(pb.PullImageRequest(image=args.ref, platform=args.platform or "",
                                                    username=username, password=password)).image
    print(f"pulled {args.ref} {image.id} ({human_size(image.size)})")
    return 0


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    images = sub.add_parser("images", aliases=["image", "i"], help="manage images")
    verbs = images.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("import", help="import the images of a docker-archive or OCI layout tar (gzip or not)")
    p.add_argument("file", metavar="FILE|-", help="the archive, or - for standard input")
    p.add_argument("--platform", help="the platform to take from a multi-platform image (default: the node's)")
    p.add_argument("--base-name", help="repository for OCI ref names that are only a tag")
    p.set_defaults(run=import_)
    p = verbs.add_parser("export", help="write images as an OCI layout tar (docker load reads it too)")
    p.add_argument("out", metavar="OUT|-", help="the archive to write, or - for standard output")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.set_defaults(run=export)
    p = verbs.add_parser("ls", aliases=["list"], help="list images")
    p.add_argument("-q", "--quiet", action="store_true", help="names only")
    p.set_defaults(run=ls)
    p = verbs.add_parser("rm", aliases=["remove"], help="remove images (with all their names)")
    p.add_argument("images", metavar="IMAGE", nargs="+")
    p.set_defaults(run=rm)
    p = verbs.add_parser("pull", help="pull an image")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--platform", help="os/arch[/variant] (default: the node's)")
    p.add_argument("--user", "-u", help="USER[:PASSWORD] for the registry")
    p.set_defaults(run=pull)

"""dockyard: the admin command of dockyardd.

    dockyard [--address SOCKET] images import FILE|-     docker-archive or OCI layout tar, gzip or not
    dockyard images export OUT|- IMAGE...
    dockyard images ls [-q] | rm IMAGE... | pull [--platform P] [--user U:P] REF
    dockyard containers ls | pods ls | info [--json]

Like containerd's ctr it is for the node's administrator (root: the admin
socket is not open to others); kubelet and crictl speak CRI on the other socket.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import images, runtime
from .client import CommandError, default_address, fail


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dockyard", description="The admin command of dockyardd.")
    top.add_argument("--address", "-a", default=default_address(),
                     help="dockyardd's admin socket (default: $DOCKYARD_ADDRESS or /run/dockyard/admin.sock)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    images.add_parsers(sub)
    runtime.add_parsers(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except CommandError as err:
        return fail(err.message, err.code)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:
        return fail("output closed", 1)


if __name__ == "__main__":
    sys.exit(main())

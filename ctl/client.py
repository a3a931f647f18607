"""Connecting to dockyardd's admin socket, and what a failed call prints.

Exit codes: 0 success, 1 the daemon refused or failed the call (its gRPC
code and message are printed), 2 the command line was wrong (argparse), 3
the daemon could not be reached.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import grpc  # type: ignore[import-untyped]  # grpcio ships no stubs
from dockyard.api.admin import AdminStub

DEFAULT_ADDRESS = "/run/dockyard/admin.sock"
ADDRESS_ENV = "DOCKYARD_ADDRESS"
# The archive chunks are 1 MiB; leave room for a 4 MiB manifest in an answer.
MAX_MESSAGE = 16 << 20

EXIT_FAILED = 1
EXIT_UNREACHABLE = 3


class CommandError(Exception):
    """Ends the command with a message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def default_address() -> str:
    return os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


@contextmanager
def connect(address: str) -> Iterator[AdminStub]:
    if not os.path.exists(address):
        raise CommandError(f"no admin socket at {address} (is dockyardd running? --address or "
                           f"{ADDRESS_ENV} names another)", EXIT_UNREACHABLE)
    options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
    with grpc.insecure_channel(f"unix://{address}", options=options) as channel:
        try:
            yield AdminStub(channel)
        except grpc.RpcError as err:
            raise rpc_failure(err, address) from err


def rpc_failure(err: grpc.RpcError, address: str) -> CommandError:
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE and "dockyardd is starting" not in (err.details() or ""):
        return CommandError(f"cannot reach dockyardd at {address}: {err.details()}", EXIT_UNREACHABLE)
    return CommandError(f"{code.name}: {err.details()}")


def fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"dockyard: {message}", file=sys.stderr)
    return code

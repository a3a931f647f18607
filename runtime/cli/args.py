"""The verbs' argument parser: argparse with runc's conventions and errors as InvalidArgument."""

from __future__ import annotations

import argparse

from ..errors import InvalidArgument

TYPE_CHECKING = False  # see runtime/records.py: keeps typing out of the start path
if TYPE_CHECKING:
    from typing import NoReturn


class Parser(argparse.ArgumentParser):
    def __init__(self, verb: str, usage: str = "") -> None:
        super().__init__(prog=f"dockyard-runc {verb}", usage=usage or None, add_help=True, allow_abbrev=False)

    def error(self, message: str) -> NoReturn:
        raise InvalidArgument(f"parse {self.prog} arguments", "", message)

    def parse(self, argv: list[str]) -> argparse.Namespace:
        return self.parse_args(argv)


def add_id(parser: Parser) -> None:
    parser.add_argument("id", metavar="CONTAINER_ID")

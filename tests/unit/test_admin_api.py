"""The admin protocol: the checked-in generated code is what api/admin.proto makes, and the
hand-written method table (api/admin.py) is the service the .proto declares."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from dockyard.api import admin, admin_pb2

REPO = Path(__file__).resolve().parents[2]
# Lines that name the protoc/protobuf version that ran (they differ between grpcio-tools releases).
_VERSION_LINES = re.compile(r"^(# Protobuf Python Version: .*|    \d+,)$", re.MULTILINE)


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    """hack/gen-admin-api.sh run now gives the checked-in admin_pb2.py and .pyi (versions aside)."""
    subprocess.run([str(REPO / "hack" / "gen-admin-api.sh"), str(tmp_path)], check=True,
                   env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    for name in ("admin_pb2.py", "admin_pb2.pyi"):
        fresh = _VERSION_LINES.sub("", (tmp_path / name).read_text())
        checked_in = _VERSION_LINES.sub("", (REPO / "api" / name).read_text())
        assert fresh == checked_in, f"api/{name} is out of date: run hack/gen-admin-api.sh"


def test_method_table_is_the_service() -> None:
    service = admin_pb2.DESCRIPTOR.services_by_name["Admin"]
    assert service.full_name == admin.SERVICE
    declared = {}
    for m in service.methods:
        kind = {(False, False): admin.UNARY, (True, False): admin.CLIENT_STREAM,
                (False, True): admin.SERVER_STREAM}[(m.client_streaming, m.server_streaming)]
        declared[m.name] = (kind, m.input_type.full_name, m.output_type.full_name)
    table = {name: (m.kind, m.request.DESCRIPTOR.full_name, m.response.DESCRIPTOR.full_name)
             for name, m in admin.METHODS.items()}
    assert table == declared


def test_generic_handler_wants_every_method() -> None:
    import pytest

    with pytest.raises(ValueError, match="missing"):
        admin.generic_handler({"Info": lambda request, context: None})

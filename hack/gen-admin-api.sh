#!/usr/bin/env bash
# Regenerate api/admin_pb2.py and api/admin_pb2.pyi from api/admin.proto with
# grpcio-tools' protoc (the venv's). The output is checked in;
# tests/unit/test_admin_api.py fails when it no longer matches the .proto.
#   hack/gen-admin-api.sh [OUT_DIR]     (default: api/)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/api}
python=${PYTHON:-$here/.venv/bin/python}
# -I api: the module is imported as dockyard.api.admin_pb2, so the .proto sits
# at the root of its include path and the descriptor's file name is admin.proto.
"$python" -m grpc_tools.protoc -I "$here/api" --python_out="$out" --pyi_out="$out" "$here/api/admin.proto"

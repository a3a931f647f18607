#!/usr/bin/env bash
# Regenerate api/cadvisor_containerd_pb2.py and .pyi from api/cadvisor_containerd.proto
# with grpcio-tools' protoc (the venv's). The output is checked in;
# tests/unit/test_cadvisor_endpoint.py fails when it no longer matches the .proto.
#   hack/gen-cadvisor-api.sh [OUT_DIR]     (default: api/)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/api}
python=${PYTHON:-$here/.venv/bin/python}
"$python" -m grpc_tools.protoc -I "$here/api" --python_out="$out" --pyi_out="$out" "$here/api/cadvisor_containerd.proto"

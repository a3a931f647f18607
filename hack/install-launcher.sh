#!/usr/bin/env bash
# Replace pip's console script for dockyard-runc with a faster launcher.
#
# pip's script runs the venv's Python with site enabled, which imports the
# editable install's path finder and scans site-packages: ~15 ms on a small
# VM, paid three times by every container (create, start, delete).  The
# runtime needs only the standard library, so its launcher runs Python with
# -I -S (isolated, no site) and tells the import system where the
# `dockyard` namespace package lives.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$repo/.venv}
target=$venv/bin/dockyard-runc
tmp=$(mktemp "$target.XXXXXX")
cat > "$tmp" <<PY
#!$venv/bin/python3 -IS
import sys, types
pkg = types.ModuleType("dockyard")
pkg.__path__ = ["$repo"]  # dockyard.runtime -> $repo/runtime
sys.modules["dockyard"] = pkg
from dockyard.runtime.cli.main import main
sys.exit(main())
PY
chmod 0755 "$tmp"
mv "$tmp" "$target"

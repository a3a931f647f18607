#!/usr/bin/env bash
# Replace pip's console scripts for dockyard-runc and dockyard-shim with faster launchers.
#
# pip's script runs the venv's Python with site enabled, which imports the
# editable install's path finder and scans site-packages: ~15 ms on a small
# VM, paid three times by every container (create, start, delete).  The
# runtime and the shim need only the standard library, so their launchers run
# Python with -I -S (isolated, no site) and tell the import system where the
# `dockyard` namespace package lives.  For the shim, which lives as long as
# its pod, skipping site also keeps the site machinery out of its memory.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$repo/.venv}

install_launcher() {  # name module exit
  local target=$venv/bin/$1 tmp
  tmp=$(mktemp "$target.XXXXXX")
  cat > "$tmp" <<PY
#!$venv/bin/python3 -IS
import sys
pkg = type(sys)("dockyard")
pkg.__path__ = ["$repo"]  # dockyard.<part> -> $repo/<part>
sys.modules["dockyard"] = pkg
from $2 import main
$3
PY
  chmod 0755 "$tmp"
  mv "$tmp" "$target"
}

# dockyard-runc leaves through os._exit once its output is flushed: tearing
# down the interpreter (module dicts, caches) is work nobody needs from a
# short-lived CLI call (posix's _exit: os would cost the call 1.3 ms to
# import, see runtime/leanos.py).  The shim is a daemon with its own exit
# path.
install_launcher dockyard-runc dockyard.runtime.cli.main 'code = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except OSError:
    code = code or 1
import posix
posix._exit(code)'
install_launcher dockyard-shim dockyard.shim.main 'sys.exit(main())'

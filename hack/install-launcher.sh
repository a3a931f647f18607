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

install_launcher() {  # name module prelude exit
  local target=$venv/bin/$1 tmp
  tmp=$(mktemp "$target.XXXXXX")
  cat > "$tmp" <<PY
#!$venv/bin/python3 -IS
import sys
$3
pkg = type(sys)("dockyard")
pkg.__path__ = ["$repo"]  # dockyard.<part> -> $repo/<part>
sys.modules["dockyard"] = pkg
from $2 import main
$4
PY
  chmod 0755 "$tmp"
  mv "$tmp" "$target"
}

# dockyard-runc runs without the cyclic garbage collector.  A call lives
# 10 to 30 ms and leaves through _exit, so a cycle it makes is garbage for
# those milliseconds at most; yet create ran five young and one middle
# collection (1 to 1.3 ms), start and delete two each (0.17 ms), and a
# collection after create's fork also copies the pages it touches, in the
# parent and in the container's init, which is the same Python until its
# execve.  Disabled before the first import, so the imports do not collect
# either; the init inherits it.  A call that waits on a container for as
# long as it runs turns it back on (runtime/cli/main.py, collect_while_waiting).
#
# dockyard-runc leaves through os._exit once its output is flushed: tearing
# down the interpreter (module dicts, caches) is work nobody needs from a
# short-lived CLI call (posix's _exit: the CLI does without os, see
# runtime/kernel/lean/README.md).  The shim is a daemon with its own exit
# path.
install_launcher dockyard-runc dockyard.runtime.cli.main 'import gc
gc.disable()' 'code = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except OSError:
    code = code or 1
import posix
posix._exit(code)'
install_launcher dockyard-shim dockyard.shim.main '' 'sys.exit(main())'

#!/usr/bin/env bash
# mypy --strict over dockyard.{runtime,cri,shim,api,ctl}.
#
# The design card puts the packages at the top of the repository while imports
# read dockyard.<part>; mypy cannot follow the editable install's mapping, so
# it runs over a tree of symlinks that has the `dockyard/` level.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tree=$repo/build/mypy
mkdir -p "$tree/dockyard"
for part in runtime cri shim api ctl; do
    ln -sfn "$repo/$part" "$tree/dockyard/$part"
done
cd "$tree"
exec "$repo/.venv/bin/mypy" --strict --cache-dir "$repo/build/mypy-cache" \
    -p dockyard.runtime -p dockyard.cri -p dockyard.shim -p dockyard.api -p dockyard.ctl

#!/usr/bin/env bash
# Run a command (default: `make test`) while two busy loops keep both cores
# of this 2-core machine at 100%, as a loaded CI node or a busy kubelet node
# would.  The loops run at the same priority as the tests, and end with the
# command whatever its result.
#
#   hack/test-under-load.sh                      # make test under load
#   hack/test-under-load.sh .venv/bin/pytest -q tests/integration/test_x.py
#   LOAD_LOOPS=4 hack/test-under-load.sh ...     # more loops
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
loops=${LOAD_LOOPS:-2}
pids=()
stop_loops() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; }
trap stop_loops EXIT
for _ in $(seq "$loops"); do
    bash -c 'while :; do :; done' &
    pids+=($!)
done
echo "test-under-load: $loops busy loops (pids ${pids[*]}) while running: ${*:-make test}" >&2
if (( $# )); then
    "$@"
else
    make test
fi

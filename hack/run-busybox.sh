#!/usr/bin/env bash
# `make run`: run one busybox container from build/bundles/busybox with an OCI
# runtime (dockyard-runc by default) and show its output. Exits with the
# container's exit code and always deletes the container.
#
#   hack/run-busybox.sh [RUNTIME] [-- COMMAND...]
#
# The bundle is not modified: a private bundle dir gets a copy of config.json
# (args, hostname, terminal=false) whose root.path points at the shared rootfs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runtime="${1:-$repo/.venv/bin/dockyard-runc}"
shift || true
if [[ "${1:-}" == "--" ]]; then shift; fi
if (( $# == 0 )); then
    set -- sh -c 'echo hello from dockyard-runc; hostname; id; head -3 /proc/self/cgroup'
fi

src="$repo/build/bundles/busybox"
[[ -f "$src/config.json" ]] || { echo "run-busybox: $src missing; run make images" >&2; exit 1; }

id="dockyard-run-$$-$(date +%s%N)"
bundle="$(mktemp -d "${TMPDIR:-/tmp}/dockyard-run.XXXXXX")"
cleanup() {
    # `run` deletes the container when it exits; this catches a failed or
    # interrupted run. An unknown id is not an error here.
    "$runtime" delete --force "$id" >/dev/null 2>&1 || true
    rm -rf "$bundle"
}
trap cleanup EXIT

# jq would read a leading "-c" in the command as its own flag, so the argv is
# encoded as JSON by python3 (always present: the venv is made from it).
args_json="$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@")"
jq --arg rootfs "$src/rootfs" --arg host "$id" --argjson argv "$args_json" \
   '.process.args = $argv
    | .process.terminal = false
    | .root.path = $rootfs
    | .hostname = $host' \
   < "$src/config.json" > "$bundle/config.json"

echo "+ $runtime run --bundle $bundle $id" >&2
status=0
"$runtime" run --bundle "$bundle" "$id" </dev/null || status=$?
echo "+ container $id exited with status $status" >&2
exit "$status"

#!/usr/bin/env bash
# Build bench/percall_client (a Go CRI client, as kubelet's) into
# build/bin/percall_client for bench/percall.py. Its module pins its
# dependencies (bench/percall_client/go.mod, go.sum); cached by a stamp that
# holds the sources' digest.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/hack/lib/go-tools.sh"
src=$here/bench/percall_client
bin=$here/build/bin
stamp=$bin/.percall_client-sources
key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -d' ' -f1)
built "$stamp" "$key" "$bin/percall_client" && exit 0
need_go
mkdir -p "$bin"
echo "install-percall-client: go build bench/percall_client"
(cd "$src" && go build -trimpath -o "$bin/percall_client" .)
echo "$key" >"$stamp"

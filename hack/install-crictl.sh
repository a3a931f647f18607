#!/usr/bin/env bash
# Install crictl (cri-tools) into build/bin with `go install` from the Go
# module proxy. Cached: a `go install` build does not embed its version
# (crictl --version says "unknown"), so a stamp next to the binary records it.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/hack/lib/go-tools.sh"
version=${CRICTL_VERSION:-v1.34.0}
bin=$here/build/bin
stamp=$bin/.crictl-version
built "$stamp" "$version" "$bin/crictl" && exit 0
need_go
mkdir -p "$bin"
echo "install-crictl: go install sigs.k8s.io/cri-tools/cmd/crictl@$version"
GOBIN=$bin go install "sigs.k8s.io/cri-tools/cmd/crictl@$version"
echo "$version" >"$stamp"

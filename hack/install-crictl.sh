#!/usr/bin/env bash
# Install crictl (cri-tools) into build/bin with `go install` from the Go
# module proxy. Cached: a `go install` build does not embed its version
# (crictl --version says "unknown"), so a stamp next to the binary records it.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
version=${CRICTL_VERSION:-v1.34.0}
bin=$here/build/bin
export PATH=$PATH:/usr/local/go/bin

stamp=$bin/.crictl-version
if [[ -x $bin/crictl && -f $stamp && $(cat "$stamp") == "$version" ]]; then
  exit 0
fi
command -v go >/dev/null || { echo "install-crictl.sh: go is not installed" >&2; exit 1; }
mkdir -p "$bin"
echo "install-crictl: go install sigs.k8s.io/cri-tools/cmd/crictl@$version"
GOBIN=$bin go install "sigs.k8s.io/cri-tools/cmd/crictl@$version"
echo "$version" >"$stamp"

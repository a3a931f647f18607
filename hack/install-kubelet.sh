#!/usr/bin/env bash
# Build kubelet into build/bin/kubelet from the Go module proxy.
#
# From a scratch module in build/go/kubelet (hack/lib/go-tools.sh says why
# and how), `go build` of k8s.io/kubernetes/cmd/kubelet at $KUBE_VERSION.
#
# Version: the newest release that still runs on cgroup v1. Since 1.35 the
# kubelet refuses a cgroup v1 host unless its config says `failCgroupV1:
# false` (the e2e test's config does); 1.37 still carries the v1 cgroup
# manager. Cached by a version stamp. A long compile: ~15-25 min on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/hack/lib/go-tools.sh"
version=${KUBE_VERSION:-v1.37.2}
bin=$here/build/bin
stamp=$bin/.kubelet-version
built "$stamp" "$version" "$bin/kubelet" && exit 0
need_go
mkdir -p "$bin"
start=$(date +%s)
echo "install-kubelet: kubelet $version"
kube_module "$here/build/go/kubelet" "$version" k8s.io/kubernetes/cmd/kubelet
go mod tidy
go build -trimpath -ldflags "$(kube_ldflags "$version")" -o "$bin/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet
mv "$bin/kubelet.tmp" "$bin/kubelet"
echo "$version" >"$stamp"
echo "install-kubelet: built in $(( $(date +%s) - start ))s"

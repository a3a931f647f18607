#!/usr/bin/env bash
# Build Kubernetes' node e2e suite and the Go programs around it into
# build/node-e2e/bin, from the Go module proxy:
#
#   e2e_node.test   k8s.io/kubernetes/test/e2e_node, a Go *test* binary (go test -c)
#   ginkgo          github.com/onsi/ginkgo/v2/ginkgo at the version the suite requires
#   agnhost         k8s.io/kubernetes/test/images/agnhost and
#   nnp             k8s.io/kubernetes/test/images/nonewprivs, both CGO_ENABLED=0 (static:
#                   a cgo agnhost exits 127 in an image without the C library it was
#                   linked against, and nnp runs setuid in a busybox image)
#   kubelet         a link to build/bin/kubelet (hack/install-kubelet.sh builds it;
#                   `make node-e2e` runs both): the suite starts the kubelet that
#                   sits next to it (v1.37 has no --k8s-bin-dir)
#
# As hack/install-kubelet.sh, from a scratch module (hack/lib/go-tools.sh)
# in build/go/node-e2e at $KUBE_VERSION (the kubelet's). `go mod tidy` drops
# the suite's test-only requirements; `go get -t` on the test package adds
# them back.
#
# Cached: rebuilt only when the version, this script or hack/lib/go-tools.sh
# changes (stamp build/node-e2e/bin/.stamp). Cold: 8 min here beside the
# kubelet's build (most packages came from its build cache).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/hack/lib/go-tools.sh"
version=${KUBE_VERSION:-v1.37.2}
bin=$here/build/node-e2e/bin
stamp=$bin/.stamp
key="$version $(cat "$0" "$here/hack/lib/go-tools.sh" | sha256sum | cut -d' ' -f1)"
built "$stamp" "$key" "$bin"/{e2e_node.test,ginkgo,agnhost,nnp,kubelet} && exit 0
need_go
mkdir -p "$bin"
start=$(date +%s)
echo "install-node-e2e: e2e_node.test, ginkgo, agnhost, nnp at $version"

# (A test package cannot be imported; go get -t adds its requirements below.)
kube_module "$here/build/go/node-e2e" "$version" github.com/onsi/ginkgo/v2/ginkgo \
  k8s.io/kubernetes/test/images/agnhost k8s.io/kubernetes/test/images/nonewprivs
# ginkgo at kubernetes' version, so the CLI and the suite's library agree.
kube_require_as_kubernetes github.com/onsi/ginkgo/v2
go mod tidy
go get -t "k8s.io/kubernetes/test/e2e_node@$version"
ldflags=$(kube_ldflags "$version")

nice -n 10 go build -trimpath -o "$bin/ginkgo.tmp" github.com/onsi/ginkgo/v2/ginkgo
mv "$bin/ginkgo.tmp" "$bin/ginkgo"
CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin/agnhost.tmp" k8s.io/kubernetes/test/images/agnhost
mv "$bin/agnhost.tmp" "$bin/agnhost"
CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "-s -w" -o "$bin/nnp.tmp" k8s.io/kubernetes/test/images/nonewprivs
mv "$bin/nnp.tmp" "$bin/nnp"
nice -n 10 go test -c -trimpath -ldflags "$ldflags" -o "$bin/e2e_node.test.tmp" k8s.io/kubernetes/test/e2e_node
mv "$bin/e2e_node.test.tmp" "$bin/e2e_node.test"
ln -sfn ../../bin/kubelet "$bin/kubelet"
echo "$key" >"$stamp"
echo "install-node-e2e: built in $(( $(date +%s) - start ))s"

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
# Like hack/install-kubelet.sh: k8s.io/kubernetes replaces its staging modules
# with ./staging/src/..., which a dependent module ignores, so a scratch module
# in build/go/node-e2e requires k8s.io/kubernetes at $KUBE_VERSION (the
# kubelet's) and replaces each staging module with its v0.X.Y tag. `go mod
# tidy` drops the suite's test-only requirements; `go get -t` on the test
# package adds them back. -trimpath as the kubelet build, so the packages the
# two share come from the same build cache entries.
#
# Cached: rebuilt only when the version or this script changes (stamp
# build/node-e2e/bin/.stamp). Cold: 8 min here beside the kubelet's build
# (most packages came from its build cache).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
version=${KUBE_VERSION:-v1.37.2}
bin=$here/build/node-e2e/bin
mod=$here/build/go/node-e2e
export PATH=$PATH:/usr/local/go/bin

key="$version $(sha256sum "$0" | cut -d' ' -f1)"
stamp=$bin/.stamp
have_all() { [[ -x $bin/e2e_node.test && -x $bin/ginkgo && -x $bin/agnhost && -x $bin/nnp && -L $bin/kubelet ]]; }
if have_all && [[ -f $stamp && $(cat "$stamp") == "$key" ]]; then
  exit 0
fi
command -v go >/dev/null || { echo "install-node-e2e.sh: go is not installed" >&2; exit 1; }
mkdir -p "$bin" "$mod"
staging_version=v0.${version#v1.}
start=$(date +%s)
echo "install-node-e2e: e2e_node.test, ginkgo, agnhost, nnp at $version (staging modules $staging_version)"

cd "$mod"
rm -f go.mod go.sum
go mod init dockyard.local/node-e2e >/dev/null 2>&1
# Blank imports keep tidy from dropping the requirements (a test package
# cannot be imported; go get -t adds its own below).
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "k8s.io/kubernetes/test/images/nonewprivs"
)
GO
go mod edit -require="k8s.io/kubernetes@$version"
kube_dir=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -n $kube_dir ]] || { echo "install-node-e2e.sh: cannot download k8s.io/kubernetes@$version" >&2; exit 1; }
staging=$(sed -n 's|^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*|\1|p' "$kube_dir/go.mod")
[[ -n $staging ]] || { echo "install-node-e2e.sh: no staging replaces in $kube_dir/go.mod" >&2; exit 1; }
for m in $staging; do
  go mod edit -replace="$m=$m@$staging_version"
done
# ginkgo at the version kubernetes' go.mod names, so the CLI and the suite's
# library agree.
ginkgo_version=$(sed -n 's|^\s*github.com/onsi/ginkgo/v2 \(v[^ ]*\).*|\1|p' "$kube_dir/go.mod" | head -1)
[[ -n $ginkgo_version ]] || { echo "install-node-e2e.sh: no ginkgo/v2 in $kube_dir/go.mod" >&2; exit 1; }
go mod edit -require="github.com/onsi/ginkgo/v2@$ginkgo_version"
go mod tidy
go get -t "k8s.io/kubernetes/test/e2e_node@$version"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version \
  -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$version")"

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

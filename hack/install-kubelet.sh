#!/usr/bin/env bash
# Build kubelet into build/bin/kubelet from the Go module proxy.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every
# k8s.io/* staging module with ./staging/src/..., and replace directives of a
# dependency are ignored. So a scratch module in build/go/kubelet requires
# k8s.io/kubernetes at $KUBE_VERSION and replaces each staging module named in
# that go.mod with its released tag (v1.X.Y -> v0.X.Y), then `go build`s
# k8s.io/kubernetes/cmd/kubelet.
#
# Version: the newest release that still runs on cgroup v1. Since 1.35 the
# kubelet refuses a cgroup v1 host unless its config says `failCgroupV1:
# false` (the e2e test's config does); 1.37 still carries the v1 cgroup
# manager. Cached by a version stamp. A long compile: ~15-25 min on 2 cores.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
version=${KUBE_VERSION:-v1.37.2}
bin=$here/build/bin
mod=$here/build/go/kubelet
export PATH=$PATH:/usr/local/go/bin

stamp=$bin/.kubelet-version
if [[ -x $bin/kubelet && -f $stamp && $(cat "$stamp") == "$version" ]]; then
  exit 0
fi
command -v go >/dev/null || { echo "install-kubelet.sh: go is not installed" >&2; exit 1; }
mkdir -p "$bin" "$mod"
staging_version=v0.${version#v1.}
start=$(date +%s)
echo "install-kubelet: kubelet $version (staging modules $staging_version)"

cd "$mod"
rm -f go.mod go.sum
go mod init dockyard.local/kubelet >/dev/null 2>&1
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kubelet"
GO
go mod edit -require="k8s.io/kubernetes@$version"
kube_dir=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -n $kube_dir ]] || { echo "install-kubelet.sh: cannot download k8s.io/kubernetes@$version" >&2; exit 1; }
# Every `k8s.io/x => ./staging/src/k8s.io/x` line of kubernetes' go.mod.
staging=$(sed -n 's|^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*|\1|p' "$kube_dir/go.mod")
[[ -n $staging ]] || { echo "install-kubelet.sh: no staging replaces in $kube_dir/go.mod" >&2; exit 1; }
for m in $staging; do
  go mod edit -replace="$m=$m@$staging_version"
done
go mod tidy
go build -trimpath -ldflags "-s -w \
  -X k8s.io/component-base/version.gitVersion=$version \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$version")" \
  -o "$bin/kubelet.tmp" k8s.io/kubernetes/cmd/kubelet
mv "$bin/kubelet.tmp" "$bin/kubelet"
echo "$version" >"$stamp"
echo "install-kubelet: built in $(( $(date +%s) - start ))s"

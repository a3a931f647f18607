#!/usr/bin/env bash
# Build the control plane of a one-node cluster into build/bin from the Go
# module proxy, at the kubelet's version (issue 17, "a whole node"):
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#                k8s.io/kubernetes/cmd/<name> at $KUBE_VERSION
#   etcd         go.etcd.io/etcd/server/v3 (its module root is etcd's main
#                package) at the version k8s.io/kubernetes requires, so the
#                server is the one the apiserver's etcd client is tested with;
#                Debian 12's etcd-server is 3.4, older than Kubernetes supports.
#
# As hack/install-kubelet.sh: k8s.io/kubernetes replaces its staging modules
# with ./staging/src/..., which a dependent module ignores, so a scratch module
# in build/go/cluster requires k8s.io/kubernetes at $KUBE_VERSION and replaces
# each staging module with its v0.X.Y tag. -trimpath and the same module graph
# as the kubelet and node e2e builds, so shared packages come from the build
# cache. Each binary is built and timed on its own.
#
# Cached: rebuilt only when the version or this script changes (stamp
# build/bin/.cluster-stamp). Measured here (2 cores, nice 10, load average
# ~15 from other builds and tests, the kubelet's and node e2e's build cache
# warm), 2026-12-06: go mod tidy 3 s, kubectl 37 s, kube-scheduler 33 s,
# kube-controller-manager 343 s, kube-apiserver 51 s, etcd 12 s; 479 s in all.
# (The controller-manager built most of the shared apiserver packages the
# later builds reused.) Rebuilt with every package cached (links only):
# 40+22+34+25+5 s, 128 s in all. A cold build with no cache was not measured.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
version=${KUBE_VERSION:-v1.37.2}
bin=$here/build/bin
mod=$here/build/go/cluster
export PATH=$PATH:/usr/local/go/bin
binaries=(kubectl kube-scheduler kube-controller-manager kube-apiserver etcd)

key="$version $(sha256sum "$0" | cut -d' ' -f1)"
stamp=$bin/.cluster-stamp
have_all() {
  local b
  for b in "${binaries[@]}"; do [[ -x $bin/$b ]] || return 1; done
}
if have_all && [[ -f $stamp && $(cat "$stamp") == "$key" ]]; then
  exit 0
fi
command -v go >/dev/null || { echo "install-cluster.sh: go is not installed" >&2; exit 1; }
mkdir -p "$bin" "$mod"
staging_version=v0.${version#v1.}
start=$(date +%s)
echo "install-cluster: ${binaries[*]} at $version (staging modules $staging_version)"

cd "$mod"
rm -f go.mod go.sum
go mod init dockyard.local/cluster >/dev/null 2>&1
# Blank imports of the main packages keep tidy from dropping their requirements.
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
go mod edit -require="k8s.io/kubernetes@$version"
kube_dir=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -n $kube_dir ]] || { echo "install-cluster.sh: cannot download k8s.io/kubernetes@$version" >&2; exit 1; }
staging=$(sed -n 's|^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*|\1|p' "$kube_dir/go.mod")
[[ -n $staging ]] || { echo "install-cluster.sh: no staging replaces in $kube_dir/go.mod" >&2; exit 1; }
for m in $staging; do
  go mod edit -replace="$m=$m@$staging_version"
done
# etcd's server at the version kubernetes' go.mod names (it lists it indirect).
etcd_version=$(sed -n 's|^\s*go.etcd.io/etcd/server/v3 \(v[^ ]*\).*|\1|p' "$kube_dir/go.mod" | head -1)
[[ -n $etcd_version ]] || { echo "install-cluster.sh: no go.etcd.io/etcd/server/v3 in $kube_dir/go.mod" >&2; exit 1; }
go mod edit -require="go.etcd.io/etcd/server/v3@$etcd_version"
go mod tidy

kube_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version \
  -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$version")"
etcd_ldflags="-s -w"
build() { # name package ldflags
  local t0=$(date +%s)
  nice -n 10 go build -trimpath -ldflags "$3" -o "$bin/$1.tmp" "$2"
  mv "$bin/$1.tmp" "$bin/$1"
  echo "install-cluster: $1 built in $(( $(date +%s) - t0 ))s"
}
for b in kubectl kube-scheduler kube-controller-manager kube-apiserver; do
  build "$b" "k8s.io/kubernetes/cmd/$b" "$kube_ldflags"
done
build etcd go.etcd.io/etcd/server/v3 "$etcd_ldflags"
echo "$key" >"$stamp"
echo "install-cluster: all built in $(( $(date +%s) - start ))s"

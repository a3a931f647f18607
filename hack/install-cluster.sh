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
# As hack/install-kubelet.sh, from a scratch module (hack/lib/go-tools.sh)
# in build/go/cluster at $KUBE_VERSION. Each binary is built and timed on its
# own.
#
# Cached: rebuilt only when the version, this script or hack/lib/go-tools.sh
# changes (stamp build/bin/.cluster-stamp). Measured here (2 cores, nice 10, load average
# ~15 from other builds and tests, the kubelet's and node e2e's build cache
# warm), 2026-12-06: go mod tidy 3 s, kubectl 37 s, kube-scheduler 33 s,
# kube-controller-manager 343 s, kube-apiserver 51 s, etcd 12 s; 479 s in all.
# (The controller-manager built most of the shared apiserver packages the
# later builds reused.) Rebuilt with every package cached (links only):
# 40+22+34+25+5 s, 128 s in all. A cold build with no cache was not measured.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/hack/lib/go-tools.sh"
version=${KUBE_VERSION:-v1.37.2}
bin=$here/build/bin
binaries=(kubectl kube-scheduler kube-controller-manager kube-apiserver etcd)
stamp=$bin/.cluster-stamp
key="$version $(cat "$0" "$here/hack/lib/go-tools.sh" | sha256sum | cut -d' ' -f1)"
built "$stamp" "$key" "${binaries[@]/#/$bin/}" && exit 0
need_go
mkdir -p "$bin"
start=$(date +%s)
echo "install-cluster: ${binaries[*]} at $version"

kube_module "$here/build/go/cluster" "$version" go.etcd.io/etcd/server/v3 k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
# etcd's server at the version kubernetes' go.mod names (it lists it indirect).
kube_require_as_kubernetes go.etcd.io/etcd/server/v3
go mod tidy

kube_ldflags=$(kube_ldflags "$version")
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

# Sourced by the hack/install-*.sh scripts that build Go programs from the Go
# module proxy (crictl, critest, kubelet, node e2e, cluster): the cache check,
# the toolchain, and the scratch module Kubernetes programs are built from.

export PATH=$PATH:/usr/local/go/bin

# built STAMP KEY FILE...: true when every FILE exists and STAMP holds KEY,
# so the caller has nothing to do.
built() {
  local stamp=$1 key=$2 f
  shift 2
  for f in "$@"; do [[ -e $f ]] || return 1; done
  [[ -f $stamp && $(<"$stamp") == "$key" ]]
}

# need_go: fail, naming the calling script, when there is no go toolchain.
need_go() {
  command -v go >/dev/null || { echo "$(basename "$0"): go is not installed" >&2; return 1; }
}

# Why a scratch module: k8s.io/kubernetes cannot be `go install`ed. Its go.mod
# replaces every k8s.io/* staging module with ./staging/src/..., and a
# dependent module ignores its dependencies' replace directives. So the
# scratch module requires k8s.io/kubernetes at the wanted version and replaces
# each staging module named in that go.mod with its released tag
# (v1.X.Y -> v0.X.Y). Every caller builds with -trimpath from the same module
# graph, so the packages they share come from the same build cache entries.

# kube_module DIR VERSION IMPORT...
#   Make DIR a fresh module that requires k8s.io/kubernetes@VERSION with the
#   staging replaces, and a tools.go that blank-imports each IMPORT (keeping
#   `go mod tidy` from dropping their requirements). Sets KUBE_DIR to
#   kubernetes' downloaded module directory. The caller adds its own
#   requirements and runs `go mod tidy`; it is left in DIR.
kube_module() {
  local dir=$1 version=$2 m staging
  shift 2
  mkdir -p "$dir"
  cd "$dir"
  rm -f go.mod go.sum
  go mod init "dockyard.local/$(basename "$dir")" >/dev/null 2>&1
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for m in "$@"; do printf '\t_ "%s"\n' "$m"; done
    printf ')\n'
  } >tools.go
  go mod edit -require="k8s.io/kubernetes@$version"
  KUBE_DIR=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -n $KUBE_DIR ]] || { echo "kube_module: cannot download k8s.io/kubernetes@$version" >&2; return 1; }
  # Every `k8s.io/x => ./staging/src/k8s.io/x` line of kubernetes' go.mod.
  staging=$(sed -n 's|^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*|\1|p' "$KUBE_DIR/go.mod")
  [[ -n $staging ]] || { echo "kube_module: no staging replaces in $KUBE_DIR/go.mod" >&2; return 1; }
  for m in $staging; do
    go mod edit -replace="$m=$m@v0.${version#v1.}"
  done
}

# kube_require_as_kubernetes MODULE
#   Require MODULE at the version kubernetes' go.mod names (direct or
#   indirect), so a tool and the library kubernetes was tested with agree.
kube_require_as_kubernetes() {
  local module=$1 version
  version=$(sed -n "s|^\s*${module//./\\.} \(v[^ ]*\).*|\1|p" "$KUBE_DIR/go.mod" | head -1)
  [[ -n $version ]] || { echo "kube_module: no $module in $KUBE_DIR/go.mod" >&2; return 1; }
  go mod edit -require="$module@$version"
}

# kube_ldflags VERSION: strip, and stamp VERSION where `<binary> --version` reads it.
kube_ldflags() {
  echo "-s -w -X k8s.io/component-base/version.gitVersion=$1 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$1")"
}

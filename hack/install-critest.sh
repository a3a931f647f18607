#!/usr/bin/env bash
# Build critest (cri-tools' CRI validation suite) into build/bin/critest.
# critest is a Go *test* binary (package main_test in cmd/critest), so
# `go install` cannot build it: `go test -c` does, from a scratch module in
# build/go/critest that requires cri-tools at the pinned version (the same
# version as crictl, hack/install-crictl.sh). Cached by a version stamp.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/hack/lib/go-tools.sh"
version=${CRITEST_VERSION:-v1.34.0}
bin=$here/build/bin
mod=$here/build/go/critest
stamp=$bin/.critest-version
built "$stamp" "$version" "$bin/critest" && exit 0
need_go
mkdir -p "$bin" "$mod"
echo "install-critest: go test -c sigs.k8s.io/cri-tools/cmd/critest@$version"
cd "$mod"
rm -f go.mod go.sum
go mod init dockyard.local/critest >/dev/null 2>&1
# A blank import keeps `go mod tidy` from dropping the requirement; the
# package it names is the one `go test -c` compiles.
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "sigs.k8s.io/cri-tools/cmd/critest"
GO
go mod edit -require="sigs.k8s.io/cri-tools@$version"
go mod tidy -e >/dev/null 2>&1 || true
go get "sigs.k8s.io/cri-tools/cmd/critest@$version"
go test -c -o "$bin/critest.tmp" sigs.k8s.io/cri-tools/cmd/critest
mv "$bin/critest.tmp" "$bin/critest"
echo "$version" >"$stamp"

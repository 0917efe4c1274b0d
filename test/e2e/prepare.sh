#!/usr/bin/env bash
# npm run e2e:prepare — build and cache the control plane the e2e suite runs on, from Go
# modules only: etcd, kube-apiserver, kube-controller-manager and kubectl at pinned versions.
# The cache lives outside the repository and survives between runs; nothing here is committed.
set -euo pipefail

K8S_VERSION=v1.34.4
STAGING_VERSION=v0.34.4 # k8s.io/* staging modules are tagged v0.<minor>.<patch>
ETCD_VERSION=v3.6.4     # the etcd that kubernetes $K8S_VERSION names in its go.mod

cache_root=${RAFT_ELECTOR_E2E_CACHE:-$HOME/.cache/raft-elector-e2e}
base=$cache_root/$K8S_VERSION
bin=$base/bin
binaries=(etcd kube-apiserver kube-controller-manager kubectl)

report() {
  echo "e2e:prepare: control plane in $bin"
  echo "  $("$bin/etcd" --version | head -1)"
  echo "  $("$bin/kube-apiserver" --version)"
  echo "  $("$bin/kube-controller-manager" --version)"
  echo "  kubectl $("$bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -1)"
}

have_all=1
for b in "${binaries[@]}"; do [ -x "$bin/$b" ] || have_all=0; done
if [ "$have_all" = 1 ]; then
  echo "e2e:prepare: cached, skipping the build"
  report
  exit 0
fi

command -v go >/dev/null 2>&1 || { echo "e2e:prepare: go is not installed (need Go 1.24+ to build the control plane)"; exit 1; }
mkdir -p "$bin" "$base/src/etcd" "$base/src/kubernetes"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
start=$(date +%s)

# etcd: its own scratch module, so its dependency graph is not mixed with kubernetes'.
if [ ! -x "$bin/etcd" ]; then
  echo "== building etcd $ETCD_VERSION"
  cd "$base/src/etcd"
  cat >go.mod <<EOF
module raft-elector.local/e2e-etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat >tools.go <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  go mod tidy >/dev/null 2>&1 || go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  nice go build -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$bin/etcd.tmp" "$bin/etcd"
fi

# kubernetes: a scratch module requiring k8s.io/kubernetes, with every staging module it
# replaces with ./staging/... pinned to the matching published v0.x tag instead.
need_k8s=0
for b in kube-apiserver kube-controller-manager kubectl; do [ -x "$bin/$b" ] || need_k8s=1; done
if [ "$need_k8s" = 1 ]; then
  echo "== building kube-apiserver, kube-controller-manager, kubectl $K8S_VERSION"
  cd "$base/src/kubernetes"
  k8s_mod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",*$/\1/p')
  [ -s "$k8s_mod" ] || { echo "e2e:prepare: could not download k8s.io/kubernetes@$K8S_VERSION's go.mod"; exit 1; }
  staging=$(sed -n 's#^\s*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$k8s_mod" | sort -u)
  [ -n "$staging" ] || { echo "e2e:prepare: no staging replaces found in $k8s_mod"; exit 1; }
  {
    echo "module raft-elector.local/e2e-kubernetes"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
    echo ")"
  } >go.mod
  cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  go mod tidy
  # What `make` stamps into a release build: without it the binaries report v0.0.0 and the
  # API server's emulation version would not match the API it serves.
  ldflags=""
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=34"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  mkdir -p "$base/bin.tmp"
  for b in kube-apiserver kube-controller-manager kubectl; do
    [ -x "$bin/$b" ] && continue
    echo "   $b"
    nice go build -ldflags "-s -w$ldflags" -o "$base/bin.tmp/$b" "k8s.io/kubernetes/cmd/$b"
    mv "$base/bin.tmp/$b" "$bin/$b"
  done
fi

echo "e2e:prepare: built in $(( $(date +%s) - start )) s"
report

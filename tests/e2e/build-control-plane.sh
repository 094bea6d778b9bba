#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd of a current
# Kubernetes from the Go module proxy, once, into a cache outside the checkout.
#
# k8s.io/kubernetes is not meant to be a dependency: its go.mod replaces every
# staging module (k8s.io/api, k8s.io/client-go, ...) with a local directory
# that a module download does not contain. A small module of our own requires
# it and replaces each staging module with its published v0.<minor>.<patch>
# release instead; the list is read from kubernetes' own go.mod, so a version
# bump needs no edit here. etcd is a five-line main around etcdmain, at the
# version kubernetes itself pins.
#
# Usage: tests/e2e/build-control-plane.sh        prints the bin directory
# Env:   K8S_VERSION (default v1.37.2), NETPOL_GUARD_CACHE (default ~/.cache/netpol-guard)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
CACHE="${NETPOL_GUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netpol-guard}"
OUT="$CACHE/control-plane-$K8S_VERSION"
BIN="$OUT/bin"

if [[ -x "$BIN/kube-apiserver" && -x "$BIN/kube-controller-manager" && -x "$BIN/etcd" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "build-control-plane: go is not installed" >&2; exit 1; }
start=$(date +%s)
SRC="$OUT/src"
rm -rf "$SRC"
mkdir -p "$SRC/etcd" "$BIN"
cd "$SRC"

# Staging modules are published as v0.<minor>.<patch> for kubernetes v1.<minor>.<patch>.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
echo "build-control-plane: fetching k8s.io/kubernetes@$K8S_VERSION" >&2
K8S_DIR=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
[[ -n "$K8S_DIR" && -f "$K8S_DIR/go.mod" ]] || { echo "build-control-plane: download of k8s.io/kubernetes@$K8S_VERSION failed" >&2; exit 1; }
GO_LINE=$(grep -m1 '^go ' "$K8S_DIR/go.mod")
ETCD_VERSION=$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$K8S_DIR/go.mod")

{
  echo "module netpol-guard.local/control-plane"
  echo
  echo "$GO_LINE"
  echo
  echo "godebug default=go1.26"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  grep -E '^\s+k8s\.io/[a-z0-9-]+ => \./staging/' "$K8S_DIR/go.mod" \
    | awk -v v="$STAGING_VERSION" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod

cat > etcd/main.go <<'GO'
// etcd, built at the version kubernetes pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO

cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO

echo "build-control-plane: resolving modules (etcd $ETCD_VERSION)" >&2
go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
go mod tidy >&2

# -trimpath and no DWARF keep the binaries small; the version is stamped as the
# kubernetes build scripts do, so /version and the e2e report name it.
LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
for cmd in kube-apiserver kube-controller-manager; do
  echo "build-control-plane: go build $cmd" >&2
  go build -trimpath -ldflags "$LDFLAGS" -o "$BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2
  mv "$BIN/$cmd.tmp" "$BIN/$cmd"
done
echo "build-control-plane: go build etcd" >&2
go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" ./etcd >&2
mv "$BIN/etcd.tmp" "$BIN/etcd"

echo "build-control-plane: built in $(( $(date +%s) - start )) s into $BIN" >&2
echo "$(( $(date +%s) - start ))" > "$OUT/build-seconds"
echo "$BIN"

#!/usr/bin/env bash
# Builds Kyverno's admission controller (cmd/kyverno) and its background
# controller (cmd/background-controller, which runs generate rules) from the Go
# module proxy, once, into a cache outside the checkout.
#
# github.com/kyverno/kyverno's go.mod has a replace directive
# (k8s.io/pod-security-admission => a Kyverno fork), so a plain
# `go install github.com/kyverno/kyverno/cmd/kyverno@vX` is refused. As
# tests/e2e/build-control-plane.sh does for Kubernetes, a small module of our
# own requires Kyverno; here its go.mod is Kyverno's own go.mod (every require at
# Kyverno's pinned version, its replace directives, its go.sum) under another
# module name, so the build resolves exactly the versions Kyverno releases with.
# The reports-controller and cleanup-controller are not built: validate and
# generate need neither (Enforce denials do not need reports; generate's
# UpdateRequests are created by cmd/kyverno and processed by the background
# controller).
#
# Usage: benches/apiserver/kyverno/build-kyverno.sh     prints the bin directory
#        benches/apiserver/kyverno/build-kyverno.sh --crds
#                                                 prints the CRD files to apply, one a line
# Env:   KYVERNO_VERSION (default v1.19.1), NETPOL_GUARD_CACHE (default ~/.cache/netpol-guard)
# The build runs under `nice -n 19`; on this machine's 2 shared cores it takes
# long: 3,572 s (19 min of CPU) for v1.19.1 with other builds running; the time
# is written to <cache>/kyverno-<version>/build-seconds.
set -euo pipefail

KYVERNO_VERSION="${KYVERNO_VERSION:-v1.19.1}"
CACHE="${NETPOL_GUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netpol-guard}"
OUT="$CACHE/kyverno-$KYVERNO_VERSION"
BIN="$OUT/bin"
CMDS=(kyverno background-controller)

command -v go >/dev/null || { echo "build-kyverno: go is not installed" >&2; exit 1; }

# The module's directory in the module cache (downloaded once; read-only).
module_dir() {
  local dir
  dir=$(cd / && GOFLAGS=-mod=mod go mod download -json "github.com/kyverno/kyverno@$KYVERNO_VERSION" \
    | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  [[ -n "$dir" && -f "$dir/go.mod" ]] || { echo "build-kyverno: download of github.com/kyverno/kyverno@$KYVERNO_VERSION failed" >&2; exit 1; }
  echo "$dir"
}

# The CRDs that validate and generate policies need, applied from the module
# cache (nothing vendored into the checkout). Kyverno's informers also watch the
# policies.kyverno.io CEL policy kinds, the ephemeral reports and the policy
# reports, and it logs errors (or does not get ready) when those are missing, so
# all of config/crds is applied.
if [[ "${1:-}" == "--crds" ]]; then
  dir=$(module_dir)
  for f in \
    kyverno/kyverno.io_cleanuppolicies.yaml \
    kyverno/kyverno.io_clustercleanuppolicies.yaml \
    kyverno/kyverno.io_clusterpolicies.yaml \
    kyverno/kyverno.io_globalcontextentries.yaml \
    kyverno/kyverno.io_policies.yaml \
    kyverno/kyverno.io_policyexceptions.yaml \
    kyverno/kyverno.io_updaterequests.yaml \
    policies.kyverno.io/policies.kyverno.io_deletingpolicies.yaml \
    policies.kyverno.io/policies.kyverno.io_generatingpolicies.yaml \
    policies.kyverno.io/policies.kyverno.io_imagevalidatingpolicies.yaml \
    policies.kyverno.io/policies.kyverno.io_mutatingpolicies.yaml \
    policies.kyverno.io/policies.kyverno.io_namespaceddeletingpolicies.yaml \
    policies.kyverno.io/policies.kyverno.io_namespacedgeneratingpolicies.yaml \
    policies.kyverno.io/policies.kyverno.io_namespacedimagevalidatingpolicies.yaml \
    policies.kyverno.io/policies.kyverno.io_namespacedmutatingpolicies.yaml \
    policies.kyverno.io/policies.kyverno.io_namespacedvalidatingpolicies.yaml \
    policies.kyverno.io/policies.kyverno.io_policyexceptions.yaml \
    policies.kyverno.io/policies.kyverno.io_validatingpolicies.yaml \
    policyreport/wgpolicyk8s.io_clusterpolicyreports.yaml \
    policyreport/wgpolicyk8s.io_policyreports.yaml \
    reports/reports.kyverno.io_clusterephemeralreports.yaml \
    reports/reports.kyverno.io_ephemeralreports.yaml; do
    [[ -f "$dir/config/crds/$f" ]] || { echo "build-kyverno: $dir/config/crds/$f is missing" >&2; exit 1; }
    echo "$dir/config/crds/$f"
  done
  exit 0
fi

have_all() { for c in "${CMDS[@]}"; do [[ -x "$BIN/$c" ]] || return 1; done; }
if have_all; then
  echo "$BIN"
  exit 0
fi

start=$(date +%s)
SRC="$OUT/src"
rm -rf "$SRC"
mkdir -p "$SRC" "$BIN"
echo "build-kyverno: fetching github.com/kyverno/kyverno@$KYVERNO_VERSION" >&2
DIR=$(module_dir)
cd "$SRC"

# Kyverno's go.mod under our module name, plus a require of Kyverno itself.
sed 's|^module github.com/kyverno/kyverno$|module netpol-guard.local/kyverno|' "$DIR/go.mod" > go.mod
grep -q '^module netpol-guard.local/kyverno$' go.mod || { echo "build-kyverno: unexpected module line in $DIR/go.mod" >&2; exit 1; }
printf '\nrequire github.com/kyverno/kyverno %s\n' "$KYVERNO_VERSION" >> go.mod
cp "$DIR/go.sum" go.sum
chmod u+w go.sum
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "github.com/kyverno/kyverno/cmd/background-controller"
	_ "github.com/kyverno/kyverno/cmd/kyverno"
)
GO
echo "build-kyverno: resolving modules" >&2
GOFLAGS=-mod=mod go mod download github.com/kyverno/kyverno >&2

# As Kyverno's Makefile: CGO off, stripped, the version stamped.
LDFLAGS="-s -w -X github.com/kyverno/kyverno/pkg/version.BuildVersion=$KYVERNO_VERSION"
for cmd in "${CMDS[@]}"; do
  echo "build-kyverno: go build $cmd" >&2
  CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 19 go build -trimpath -ldflags "$LDFLAGS" \
    -o "$BIN/$cmd.tmp" "github.com/kyverno/kyverno/cmd/$cmd" >&2
  mv "$BIN/$cmd.tmp" "$BIN/$cmd"
done

echo "build-kyverno: built in $(( $(date +%s) - start )) s into $BIN" >&2
echo "$(( $(date +%s) - start ))" > "$OUT/build-seconds"
echo "$BIN"

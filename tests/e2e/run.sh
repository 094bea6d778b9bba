#!/usr/bin/env bash
# The end-to-end suite on a real Kubernetes control plane: builds
# kube-apiserver, kube-controller-manager and etcd once (cached in
# ~/.cache/netpol-guard, see build-control-plane.sh), then runs
# `cargo test --test e2e` against them. Arguments filter journeys by name.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v kubectl >/dev/null || { echo "e2e: kubectl (client) is required" >&2; exit 1; }
command -v openssl >/dev/null || { echo "e2e: openssl is required" >&2; exit 1; }
start=$(date +%s)
NETPOL_GUARD_E2E_BIN="$(tests/e2e/build-control-plane.sh)"
export NETPOL_GUARD_E2E_BIN
echo "e2e: control plane binaries in $NETPOL_GUARD_E2E_BIN ($(( $(date +%s) - start )) s)"
NETPOL_GUARD_E2E=1 cargo test --locked --test e2e -- "$@"

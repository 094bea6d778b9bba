#!/usr/bin/env bash
# Regenerates the pictures in docs/img from the manifests they show, with
# the netpol-guard of this checkout and Graphviz's `dot` (Debian: graphviz).
#   docs/img/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --locked --bin netpol-guard
target/debug/netpol-guard connectivity --output svg tests/data/online-boutique \
  > docs/img/connectivity-online-boutique.svg
target/debug/netpol-guard connectivity --output svg examples/ \
  > docs/img/connectivity-examples.svg
echo "docs/img/connectivity-online-boutique.svg docs/img/connectivity-examples.svg"

#!/usr/bin/env bash
# netpol-guard through a real kube-apiserver, side by side with no webhook,
# a minimal webhook and (when it can be built and run) Kyverno. One command:
# builds what it needs, starts a throw-away control plane (tests/e2e/cluster.sh)
# with the audit log on, measures every configuration in alternating rounds,
# and writes a Markdown report to stdout and to a file. See README.md here.
#
#   benches/apiserver/run.sh [--size full|tiny] [--rounds N] [--parts 1,2,3,4]
#                            [--out FILE] [--no-kyverno] [--no-pre10] [--keep]
#                            [--profile]
#
#   --size tiny --rounds 1   the CI smoke test: tiny population, seconds per
#                            run; fails (exit 1) on broken plumbing, asserts no
#                            time. Kyverno and the older build only if cached.
#   --parts                  which parts (default all; 1 admission, 2 baseline
#                            generation, 3 live view, 4 re-reads under denials)
#   --out FILE               the report (default target/apiserver-bench-<size>.md)
#   --no-kyverno             do not build or run Kyverno (configuration (c))
#   --no-pre10               do not build the commit before the coalesced re-reads
#   --keep                   keep the scratch directory and the control plane
#   --profile                part 1: one extra run of netpol-guard under
#                            perf record; its top functions go in the report
#
# Needs: cargo, go (control plane, Kyverno), kubectl, openssl, curl, wrk
# (installed from Debian if missing), python3 with PyYAML.
# Env: NETPOL_GUARD_CACHE (default ~/.cache/netpol-guard) for the control
# plane, Kyverno and the older build; KYVERNO_BASELINE_SELECTOR /
# KYVERNO_BASELINE_COUNT (default app.kubernetes.io/managed-by=kyverno, 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
. benches/load/lib.sh

SIZE=full ROUNDS=5 PARTS=1,2,3,4 OUT="" KYVERNO=1 PRE10=1 KEEP=0 PROFILE=0
ARGS="$*"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size) SIZE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --parts) PARTS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-kyverno) KYVERNO=0; shift ;;
    --no-pre10) PRE10=0; shift ;;
    --keep) KEEP=1; shift ;;
    --profile) PROFILE=1; shift ;;
    *) sed -n '2,30p' "$0" >&2; exit 2 ;;
  esac
done
[[ "$SIZE" == full || "$SIZE" == tiny ]] || { echo "run.sh: --size full|tiny" >&2; exit 2; }
OUT=${OUT:-$ROOT/target/apiserver-bench-$SIZE.md}
CACHE="${NETPOL_GUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/netpol-guard}"
has_part() { [[ ",$PARTS," == *",$1,"* ]]; }

work=$(mktemp -d /tmp/apiserver-bench.XXXXXX)
cleanup() { if [[ $KEEP == 1 ]]; then echo "run.sh: scratch kept in $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT
mkdir -p "$work/bin"

ensure_wrk
echo "run.sh: building netpol-guard, examples/minimal_webhook, examples/tcp_balancer (release)" >&2
nice -n 10 cargo build --release --locked -q --bin netpol-guard --example minimal_webhook --example tcp_balancer
cp target/release/netpol-guard target/release/examples/minimal_webhook target/release/examples/tcp_balancer "$work/bin/"
echo "run.sh: control plane" >&2
CP_BIN=$(tests/e2e/build-control-plane.sh)

# Kyverno (configuration (c) and part 2): benches/apiserver/kyverno/ builds it
# and runs it; whatever fails is written down as the reason, never estimated.
kstatus="$work/kyverno.status"
if [[ $KYVERNO == 0 ]]; then
  echo "not run (--no-kyverno)" >"$kstatus"
elif [[ ! -x benches/apiserver/kyverno/build-kyverno.sh ]]; then
  echo "benches/apiserver/kyverno/build-kyverno.sh does not exist in this checkout" >"$kstatus"
elif [[ ! -x benches/apiserver/kyverno/kyverno.sh ]]; then
  echo "benches/apiserver/kyverno/kyverno.sh does not exist in this checkout" >"$kstatus"
elif [[ $SIZE == tiny && ! -x "$CACHE/kyverno-${KYVERNO_VERSION:-v1.19.1}/bin/kyverno" ]]; then
  echo "the tiny size does not build Kyverno and no cached build is in $CACHE/kyverno-${KYVERNO_VERSION:-v1.19.1}/bin" >"$kstatus"
else
  echo "run.sh: Kyverno (benches/apiserver/kyverno/build-kyverno.sh)" >&2
  if kbin=$(benches/apiserver/kyverno/build-kyverno.sh 2>"$work/build-kyverno.err"); then
    echo "ok $kbin" >"$kstatus"
  else
    echo "build-kyverno.sh failed: $(tail -n 3 "$work/build-kyverno.err" | tr '\n' ' ')" >"$kstatus"
  fi
fi

# Part 4's older build: the parent of the commit that coalesced the live
# re-reads (issue 10's change; the history names it in issue 13's commit).
pre10_bin="" pre10_reason=""
if has_part 4 && [[ $PRE10 == 1 ]]; then
  change=$(git log --format='%H %s' | grep -i "issue 10" | tail -n 1 | cut -d' ' -f1 || true)
  [[ -n "$change" ]] || change=$(git log --format='%H %s' | grep -i "live reads coalesced" | tail -n 1 | cut -d' ' -f1 || true)
  if [[ -z "$change" ]]; then
    pre10_reason="no commit names issue 10 or the coalesced live reads"
  else
    before=$(git rev-parse "$change^")
    pre10_bin="$CACHE/pre10-$before/netpol-guard"
    pre10_desc="$(git log -1 --format='%h (%s)' "$before" | cut -c1-100)"
    if [[ ! -x "$pre10_bin" ]]; then
      if [[ $SIZE == tiny ]]; then
        pre10_reason="the tiny size does not build the older commit and no cached build is at $pre10_bin"
        pre10_bin=""
      else
        echo "run.sh: building $before (before the coalesced re-reads) in a temporary worktree" >&2
        tree="$work/pre10-tree"
        git worktree add --detach "$tree" "$before" >/dev/null 2>&1
        if (cd "$tree" && CARGO_TARGET_DIR="$CACHE/pre10-target" nice -n 10 cargo build --release --locked -q --bin netpol-guard) >"$work/pre10-build.log" 2>&1; then
          mkdir -p "$(dirname "$pre10_bin")"
          cp "$CACHE/pre10-target/release/netpol-guard" "$pre10_bin"
        else
          pre10_reason="cargo build of $before failed: $(tail -n 3 "$work/pre10-build.log" | tr '\n' ' ')"
          pre10_bin=""
        fi
        git worktree remove --force "$tree" >/dev/null 2>&1 || true
      fi
    fi
    if [[ -n "$pre10_bin" ]]; then pre10_reason="$pre10_desc"; fi
  fi
elif has_part 4; then
  pre10_reason="not built (--no-pre10)"
fi

echo "run.sh: measuring (size $SIZE, $ROUNDS round(s), parts $PARTS); machine load $(loadavg)" >&2
extra=()
[[ $KEEP == 1 ]] && extra=(--keep)
[[ $PROFILE == 1 ]] && extra+=(--profile)
python3 benches/apiserver/bench.py --work "$work" --bin-dir "$work/bin" --cp-bin "$CP_BIN" \
  --size "$SIZE" --rounds "$ROUNDS" --parts "$PARTS" --kyverno-status "$kstatus" \
  --pre10-bin "$pre10_bin" --pre10-reason "$pre10_reason" --out "$OUT" \
  --command "benches/apiserver/run.sh $ARGS" --source "$(source_state)" \
  --rustc "$(rustc --version | cut -d' ' -f1-2)" --wrk "$(wrk -v 2>&1 | head -n 1 | cut -d' ' -f2)" "${extra[@]}"

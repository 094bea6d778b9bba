#!/usr/bin/env bash
# Start-up time and memory of `netpol-guard serve --state` against the size
# of the cluster view. Loopback only, bounded in time.
#
#   benches/scale.sh [REPEATS=3]
#
# For each state below (benches/load/gen_state.py; the same policies as
# load.sh), starts the release binary REPEATS times and records the time from
# spawn to the first `/readyz` 200 (polled every 10 ms with curl over TLS),
# the RSS at that moment (VmRSS) and the peak RSS (VmHWM); medians are
# reported, with the RSS split into heap and stacks (RssAnon) and mapped
# files, i.e. the binary's pages (RssFile). Then fits RSS = base + a * policies + b * namespaces by least
# squares over all states. The proportional states (5 policies per namespace)
# alone cannot separate the two costs, hence the two attribution states:
# 50,000 policies in one namespace, and 10,000 namespaces without policies.
set -euo pipefail
trap 'echo "scale.sh: failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
REPEATS=${1:-3}
PORT=18445
. benches/load/lib.sh

work=$(mktemp -d)
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

build_binaries example
source=$(source_state)
echo "machine: $(nproc) cores; load average $(loadavg); measured: $source"
wait_quiet

# name policies namespaces hot(policies in `hot`)
states=(
  "empty 0 0 0"
  "10k 10000 2000 1000"
  "25k 25000 5000 2500"
  "50k 50000 10000 5000"
  "50k-policies-1-namespace 50000 0 50000"
  "10k-namespaces-no-policies 0 10000 0"
)
rows="$work/rows.tsv"
printf 'state\tpolicies\tnamespaces\tfile_bytes\tready_ms\trss_kb\tpeak_kb\tanon_kb\tfile_kb\n' >"$rows"
for s in "${states[@]}"; do
  read -r name policies namespaces hot <<<"$s"
  state="$work/$name.json"
  python3 benches/load/gen_state.py "$state" --policies "$policies" --namespaces "$namespaces" --hot "$hot"
  # Namespace objects in the view: `hot` counts when it holds policies.
  ns_total=$(( namespaces + (hot > 0 ? 1 : 0) ))
  for rep in $(seq 1 "$REPEATS"); do
    "$work/netpol-guard" --log-format json serve --addr 127.0.0.1:$PORT --state "$state" 2>"$work/log" &
    pid=$!
    ready_ms=$(wait_ready $PORT "$pid")
    rss=$(vm_kb "$pid" VmRSS); peak=$(vm_kb "$pid" VmHWM)
    anon=$(vm_kb "$pid" RssAnon); file=$(vm_kb "$pid" RssFile)
    cached=$(curl -sk "https://127.0.0.1:$PORT/metrics" | awk '/^netpol_guard_cache_policies /{print $2}')
    [[ "$cached" == "$policies" ]] || { echo "$name: view holds $cached policies, expected $policies"; exit 1; }
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$policies" "$ns_total" "$(stat -c %s "$state")" \
      "$ready_ms" "$rss" "$peak" "$anon" "$file" >>"$rows"
    echo "  $name #$rep: ready in $ready_ms ms, RSS $rss kB, peak $peak kB"
  done
done
# The floor: the minimal webhook (same stack, no engine, no state).
"$work/minimal_webhook" 127.0.0.1:$PORT 2>/dev/null &
pid=$!
wait_ready $PORT "$pid" >/dev/null
minimal="$(vm_kb "$pid" VmRSS) $(vm_kb "$pid" VmHWM) $(vm_kb "$pid" RssAnon) $(vm_kb "$pid" RssFile)"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo
echo "Command: \`benches/scale.sh $REPEATS\`; machine: $(nproc) cores, $(uname -sr); load average $(loadavg); measured: $source."
echo
python3 benches/load/fit.py "$rows" "$minimal"

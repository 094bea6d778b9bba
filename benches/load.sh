#!/usr/bin/env bash
# Load test of `netpol-guard serve` over TLS with HTTP/1.1 keep-alive (what
# kube-apiserver uses), side by side with a minimal axum + rustls webhook
# (examples/minimal_webhook.rs: same TLS and HTTP stack, parses the JSON and
# allows everything, no engine). Loopback only, bounded in time.
#
#   benches/load.sh [DURATION_S=15] [ROUNDS=3] [CONNECTIONS=16] [THREADS=2]
#
# 1. Builds the release binary and the example (cargo build --release --locked).
# 2. Generates a cluster view of 2,000 namespaces (+ `hot`) and 10,000
#    NetworkPolicies, 1,000 of them in `hot` (benches/load/gen_state.py), and
#    the 20 AdmissionReviews of the mix (benches/load/gen_reviews.py): 40%
#    covered Deployments, 10% uncovered Deployments (denied with the full
#    message), 10% covered bare Pods, 10% uncovered bare Pods (denied), 20%
#    clean NetworkPolicies, 10% dangerous ones (0.0.0.0/0, namespaceSelector {};
#    denied). All in `hot`.
# 3. Starts netpol-guard (--state, :18443, its JSON logs at the default level
#    to a file) and the minimal server (:18444), checks each body's answer on
#    both (benches/load/preflight.py), waits for the machine to be quiet.
# 4. Warm-up, then ROUNDS rounds (each after waiting for quiet again); each runs the same wrk load against both
#    servers in turn (order swapped every round): wrk -t THREADS -c CONNECTIONS
#    -d DURATION --latency -s benches/load/mix.lua. Neither wrk nor the servers
#    are pinned: all share the machine's cores, as the per-round CPU shows.
# 5. Prints a markdown report (benches/load/summarize.py): medians of req/s,
#    p50/p99/p99.9, server CPU seconds per 1,000 requests (utime+stime from
#    /proc/PID/stat), ready and peak RSS (VmHWM), the ratios netpol-guard /
#    minimal and the targets. Exits 1 on any non-2xx response or socket error.
#
# Environment: NETPOL_GUARD_LOG reaches the server (e.g. `warn` to measure
# without the per-decision log line), WARMUP (s, default 3), QUIET_MAX (cores, 0.3) and QUIET_WAIT
# (s, 300) for waiting on other processes, KEEP=1 keeps the scratch directory.
set -euo pipefail
trap 'echo "load.sh: failed (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
DURATION=${1:-15}
ROUNDS=${2:-3}
CONNS=${3:-16}
THREADS=${4:-2}
WARMUP=${WARMUP:-3}
NG_PORT=18443
MIN_PORT=18444
. benches/load/lib.sh

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ "${KEEP:-0}" == 1 ]]; then echo "scratch kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

ensure_wrk
build_binaries example
source=$(source_state)
python3 benches/load/gen_state.py "$work/state.json" --policies 10000 --namespaces 2000 --hot 1000
python3 benches/load/gen_reviews.py "$work/reviews"

"$work/netpol-guard" --log-format json serve --addr 127.0.0.1:$NG_PORT --state "$work/state.json" \
  2>"$work/netpol-guard.log" &
ng_pid=$!; pids+=("$ng_pid")
"$work/minimal_webhook" 127.0.0.1:$MIN_PORT 2>"$work/minimal.log" &
min_pid=$!; pids+=("$min_pid")
ng_ready_ms=$(wait_ready $NG_PORT "$ng_pid")
min_ready_ms=$(wait_ready $MIN_PORT "$min_pid")
echo "netpol-guard ready in ${ng_ready_ms} ms (pid $ng_pid), minimal in ${min_ready_ms} ms (pid $min_pid)"

echo "preflight: netpol-guard"
python3 benches/load/preflight.py $NG_PORT "$work/reviews" netpol-guard
echo "preflight: minimal"
python3 benches/load/preflight.py $MIN_PORT "$work/reviews" minimal
ng_ready_rss=$(vm_kb "$ng_pid" VmRSS)
min_ready_rss=$(vm_kb "$min_pid" VmRSS)

echo "machine: $(nproc) cores; load average $(loadavg)"
wait_quiet
load_start=$(loadavg)

wrk_cmd="wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s benches/load/mix.lua https://127.0.0.1:PORT/validate"
hz=$(getconf CLK_TCK)
results="$work/results.tsv"
printf 'round\tserver\trequests\tduration_us\tstatus_errors\tconnect_errors\tread_errors\twrite_errors\ttimeouts\tp50_us\tp75_us\tp90_us\tp99_us\tp999_us\tmax_us\tserver_cpu_s\twrk_cpu_s\tother_cores\tsteal_cores\n' >"$results"

# run_wrk SERVER PORT PID SECONDS ROUND: one wrk run; appends a row unless ROUND is 0.
run_wrk() {
  local server=$1 port=$2 pid=$3 secs=$4 round=$5 out="$work/wrk-$1-$5.txt"
  local cpu0 cpu1 sys0 sys1 wrk_cpu
  cpu0=$(proc_cpu_ticks "$pid"); sys0=$(sys_ticks)
  local TIMEFORMAT='%3U %3S'
  { time LOAD_REVIEWS="$work/reviews" wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency \
      -s benches/load/mix.lua "https://127.0.0.1:$port/validate" >"$out" 2>"$out.err"; } 2>"$out.time"
  cpu1=$(proc_cpu_ticks "$pid"); sys1=$(sys_ticks)
  wrk_cpu=$(tail -n 1 "$out.time" | awk '{print $1 + $2}')
  grep -q '^RESULT ' "$out" || { echo "wrk against $server printed no RESULT:"; cat "$out" "$out.err"; exit 1; }
  [[ "$round" == 0 ]] && return 0
  local server_cpu
  server_cpu=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}')
  awk -v a="$sys0" -v b="$sys1" -v hz="$hz" -v s="$secs" -v srv="$server_cpu" -v w="$wrk_cpu" \
      -v round="$round" -v server="$server" '
    BEGIN { split(a, x, " "); split(b, y, " ") }
    /^RESULT / {
      row = round "\t" server
      for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] != "bytes" && kv[1] != "mean_us") row = row "\t" kv[2] }
      other = (y[1] - x[1]) / hz - srv - w; if (other < 0) other = 0
      printf "%s\t%s\t%s\t%.2f\t%.2f\n", row, srv, w, other / s, (y[3] - x[3]) / hz / s
    }' "$out" >>"$results"
  awk -v s="$server" -v r="$round" '/^RESULT /{printf "  round %s %-12s %s\n", r, s, $0}' "$out"
}

echo "warm-up: ${WARMUP}s each"
run_wrk netpol-guard $NG_PORT "$ng_pid" "$WARMUP" 0
run_wrk minimal $MIN_PORT "$min_pid" "$WARMUP" 0
for round in $(seq 1 "$ROUNDS"); do
  # Other sessions' builds come and go: look again before every round.
  (( round > 1 )) && wait_quiet | sed "s/^/  round $round: /"
  if (( round % 2 == 1 )); then
    run_wrk netpol-guard $NG_PORT "$ng_pid" "$DURATION" "$round"
    run_wrk minimal $MIN_PORT "$min_pid" "$DURATION" "$round"
  else
    run_wrk minimal $MIN_PORT "$min_pid" "$DURATION" "$round"
    run_wrk netpol-guard $NG_PORT "$ng_pid" "$DURATION" "$round"
  fi
done
load_end=$(loadavg)

# Server-side proof of the mix: netpol-guard's own decision counters.
echo "netpol-guard decisions (all rounds, warm-up and preflight included):"
curl -sk "https://127.0.0.1:$NG_PORT/metrics" | grep -E '^netpol_guard_admission_requests_total' | sed 's/^/  /'
# Every decision is logged at info (the default); anything louder is shown.
echo "netpol-guard log: $(wc -l <"$work/netpol-guard.log") lines; WARN/ERROR other than the self-signed certificate notice:"
grep -E '"level":"(WARN|ERROR)"' "$work/netpol-guard.log" | grep -v 'ephemeral self-signed' | head -5 | sed 's/^/  /' || true

meta="$work/meta"
{
  echo "command=benches/load.sh $DURATION $ROUNDS $CONNS $THREADS"
  echo "wrk=${wrk_cmd}"
  echo "warmup=$WARMUP"
  echo "pinning=wrk and both servers unpinned (they share the $(nproc) cores); each server a tokio multi-thread runtime with $(nproc) workers"
  echo "machine=$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(rustc --version | cut -d' ' -f1-2)"
  echo "load_start=$load_start"
  echo "load_end=$load_end"
  echo "quiet=other processes' CPU per round in the last table"
  echo "source=$source"
  if [[ -n "${NETPOL_GUARD_LOG:-}" ]]; then
    echo "logging=netpol-guard logs at NETPOL_GUARD_LOG=$NETPOL_GUARD_LOG to a file; the minimal server logs nothing"
  else
    echo "logging=netpol-guard logs one JSON line per decision (the default level, info) to a file; the minimal server logs nothing"
  fi
  echo "state=2,000 managed namespaces + hot, 10,000 NetworkPolicies (1,000 in hot)"
  echo "mix=40% covered Deployments, 10% uncovered Deployments (denied, full message), 10% covered bare Pods, 10% uncovered bare Pods (denied), 20% clean NetworkPolicies, 5% 0.0.0.0/0 egress + 5% namespaceSelector {} (denied); bodies 2.3 to 8.4 KB"
  echo "netpol-guard_peak_kb=$(vm_kb "$ng_pid" VmHWM)"
  echo "minimal_peak_kb=$(vm_kb "$min_pid" VmHWM)"
  echo "netpol-guard_ready_rss_kb=$ng_ready_rss"
  echo "minimal_ready_rss_kb=$min_ready_rss"
} >"$meta"
echo
python3 benches/load/summarize.py "$results" "$meta" | tee "${REPORT:-/dev/null}"

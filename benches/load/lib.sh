# Helpers shared by benches/load.sh and benches/scale.sh (sourced, not run).
# They expect `set -euo pipefail` and a scratch directory in $work.

# Debian's wrk, if it is missing.
ensure_wrk() {
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
}

# Builds the release binary (and, with `example`, the minimal webhook) and
# copies them into $work, so a concurrent rebuild of target/ cannot swap the
# binary under a running measurement.
build_binaries() {
  cargo build --release --locked -q
  cp target/release/netpol-guard "$work/netpol-guard"
  if [[ "${1:-}" == example ]]; then
    cargo build --release --locked -q --example minimal_webhook
    cp target/release/examples/minimal_webhook "$work/minimal_webhook"
  fi
}

# What was measured: commit, and whether src/ had uncommitted edits.
source_state() {
  local dirty
  dirty=$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
  echo "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$([[ $dirty -gt 0 ]] && echo " + $dirty uncommitted file(s) in src/ or Cargo.*")"
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Polls https://127.0.0.1:PORT/readyz until it answers 200; prints the
# milliseconds waited. Fails after TIMEOUT seconds or if PID exits.
wait_ready() {
  local port=$1 pid=$2 timeout=${3:-120} start
  start=$(now_ms)
  while :; do
    if [[ $(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "https://127.0.0.1:$port/readyz" 2>/dev/null) == 200 ]]; then
      echo $(( $(now_ms) - start ))
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "server (pid $pid) exited before it was ready" >&2; return 1; }
    (( $(now_ms) - start > timeout * 1000 )) && { echo "server on :$port not ready after ${timeout}s" >&2; return 1; }
    sleep 0.01
  done
}

# utime + stime of PID, all threads, in clock ticks.
proc_cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

# A /proc/PID/status field in kB (VmHWM: peak RSS; VmRSS: current).
vm_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

# Machine-wide CPU ticks: "processes(user+nice+system) irq+softirq steal".
sys_ticks() { awk '/^cpu /{print $2 + $3 + $4, $7 + $8, $9}' /proc/stat; }

# Cores in use by everything over SECONDS (default 3), e.g. other builds.
busy_cores() {
  local s=${1:-3} a b
  a=$(sys_ticks); sleep "$s"; b=$(sys_ticks)
  awk -v a="$a" -v b="$b" -v s="$s" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    printf "%.2f", ((y[1] - x[1]) + (y[2] - x[2]) + (y[3] - x[3])) / hz / s }'
}

# Waits (at most QUIET_WAIT seconds, default 300) until the machine uses less
# than QUIET_MAX cores (default 0.3) with our servers idle. Prints what it
# waited for; never fails (a busy machine is reported, not hidden).
wait_quiet() {
  local max=${QUIET_MAX:-0.3} budget=${QUIET_WAIT:-300} waited=0 busy
  while :; do
    busy=$(busy_cores 3)
    if awk -v b="$busy" -v m="$max" 'BEGIN {exit !(b < m)}'; then
      echo "machine quiet: ${busy} cores busy (threshold $max) after ${waited}s of waiting"
      return 0
    fi
    if (( waited >= budget )); then
      echo "WARNING: machine still busy (${busy} cores used by other processes) after ${waited}s; measuring anyway, results are noisy"
      return 0
    fi
    echo "waiting for the machine to go quiet: ${busy} cores busy; top: $(ps -eo pcpu=,comm= --sort=-pcpu | head -3 | awk '{printf "%s(%s%%) ", $2, $1}')"
    sleep 12; waited=$(( waited + 15 ))
  done
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

#!/usr/bin/env python3
"""Turns benches/load.sh's per-round measurements into the markdown report.

    summarize.py RESULTS_TSV META_FILE

RESULTS_TSV: one row per (round, server) with wrk's RESULT fields and the
CPU readings; META_FILE: key=value lines (command, machine, RSS, ...).
Medians over the rounds; ratios are netpol-guard's median over the minimal
server's median. Exits 1 if any round saw a non-2xx response or a socket
error.
"""
import csv
import statistics
import sys

SERVERS = [("netpol-guard", "netpol-guard"), ("minimal", "minimal axum + rustls (examples/minimal_webhook.rs)")]


def ms(us):
    return f"{us / 1000:.2f} ms"


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    meta = dict(line.rstrip("\n").split("=", 1) for line in open(sys.argv[2]) if "=" in line)
    for r in rows:
        for k, v in list(r.items()):
            if k not in ("server",):
                r[k] = float(v)
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        r["socket_errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
        r["cpu_per_1k"] = r["server_cpu_s"] / (r["requests"] / 1000)
    by = {s: [r for r in rows if r["server"] == s] for s, _ in SERVERS}
    med = {s: {k: statistics.median(r[k] for r in rs)
               for k in ("rps", "p50_us", "p75_us", "p90_us", "p99_us", "p999_us", "cpu_per_1k")}
           for s, rs in by.items()}
    tot = {s: {k: int(sum(r[k] for r in rs)) for k in ("requests", "status_errors", "socket_errors")}
           for s, rs in by.items()}
    peak = {s: int(meta[f"{s}_peak_kb"]) for s, _ in SERVERS}
    ready = {s: int(meta[f"{s}_ready_rss_kb"]) for s, _ in SERVERS}
    nrounds = len(by["netpol-guard"])

    print(f"Command: `{meta['command']}`  ")
    print(f"wrk: `{meta['wrk']}`, {nrounds} rounds alternating the two servers "
          f"(order swapped every round), {meta['warmup']} s warm-up each first (not counted); "
          f"{meta['pinning']}.  ")
    print(f"Machine: {meta['machine']}; load average {meta['load_start']} at start, "
          f"{meta['load_end']} at end; {meta['quiet']}.  ")
    print(f"Measured: {meta['source']}. State: {meta['state']}. Mix: {meta['mix']}. "
          f"Logging: {meta['logging']}.")
    print()
    print("| server | req/s | p50 | p99 | p99.9 | server CPU per 1,000 req | RSS ready / peak (VmHWM) | requests | non-2xx | socket errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, label in SERVERS:
        m = med[s]
        print(f"| {label} | {m['rps']:,.0f} | {ms(m['p50_us'])} | {ms(m['p99_us'])} | {ms(m['p999_us'])} | "
              f"{m['cpu_per_1k']:.3f} s | {mib(ready[s])} / {mib(peak[s])} | {tot[s]['requests']:,} | "
              f"{tot[s]['status_errors']} | {tot[s]['socket_errors']} |")
    ng, mn = med["netpol-guard"], med["minimal"]
    thr = ng["rps"] / mn["rps"]
    p99 = ng["p99_us"] / mn["p99_us"]
    print(f"| **netpol-guard / minimal** | **{thr:.2f}** | {ng['p50_us'] / mn['p50_us']:.2f} | **{p99:.2f}** | "
          f"{ng['p999_us'] / mn['p999_us']:.2f} | {ng['cpu_per_1k'] / mn['cpu_per_1k']:.2f} | "
          f"{peak['netpol-guard'] / peak['minimal']:.1f} | | | |")
    print()
    print("Medians over the rounds (latencies are wrk's, per request, from the client's side).")
    print()
    peak_mib = peak["netpol-guard"] / 1024

    def verdict(ok):
        return "**met**" if ok else "**not met**"

    print("| target | measured | |")
    print("|---|---|---|")
    print(f"| throughput ratio >= 0.90 | {thr:.2f} | {verdict(thr >= 0.9)} |")
    print(f"| p99 within 1.2x of the minimal server | {p99:.2f}x ({ms(ng['p99_us'])} vs {ms(mn['p99_us'])}) | {verdict(p99 <= 1.2)} |")
    print(f"| peak RSS under 64 MiB | {peak_mib:.1f} MiB ({peak['netpol-guard'] * 1024 / 1e6:.1f} MB) | {verdict(peak_mib < 64)} |")
    print()
    print("Per round:")
    print()
    print("| round | server | req/s | p50 | p75 | p90 | p99 | p99.9 | max | CPU s / 1k req | wrk CPU s | other processes (cores) | steal (cores) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {int(r['round'])} | {r['server']} | {r['rps']:,.0f} | {ms(r['p50_us'])} | {ms(r['p75_us'])} | "
              f"{ms(r['p90_us'])} | {ms(r['p99_us'])} | {ms(r['p999_us'])} | {ms(r['max_us'])} | "
              f"{r['cpu_per_1k']:.3f} | {r['wrk_cpu_s']:.1f} | {r['other_cores']:.2f} | {r['steal_cores']:.2f} |")
    paired = [(a["rps"] / b["rps"], a["p99_us"] / b["p99_us"])
              for a, b in zip(by["netpol-guard"], by["minimal"])]
    print()
    print("Per-round ratios (throughput, p99): "
          + ", ".join(f"round {i + 1}: {t:.2f}, {p:.2f}" for i, (t, p) in enumerate(paired)))
    noisy = [r for r in rows if r["other_cores"] > 0.25 or r["steal_cores"] > 0.1]
    if noisy:
        print()
        print(f"NOTE: {len(noisy)} of {len(rows)} runs had other processes using more than 0.25 cores "
              "(or steal above 0.1): those rounds are noisy.")
    errors = sum(t["status_errors"] + t["socket_errors"] for t in tot.values())
    if errors:
        print()
        print(f"FAIL: {errors} non-2xx responses or socket errors (must be zero).")
        sys.exit(1)


if __name__ == "__main__":
    main()

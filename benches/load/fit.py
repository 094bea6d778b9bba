#!/usr/bin/env python3
"""benches/scale.sh's report: medians per state, and least-squares fits of
RSS = base + a * policies + b * namespaces.

    fit.py ROWS_TSV "MINIMAL_RSS_KB MINIMAL_PEAK_KB MINIMAL_ANON_KB MINIMAL_FILE_KB"
"""
import csv
import statistics
import sys


def solve3(a, b):
    """Solves the 3x3 system a x = b (Gaussian elimination, partial pivoting)."""
    m = [row[:] + [v] for row, v in zip(a, b)]
    for c in range(3):
        p = max(range(c, 3), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, 3):
            f = m[r][c] / m[c][c]
            m[r] = [x - f * y for x, y in zip(m[r], m[c])]
    x = [0.0] * 3
    for r in (2, 1, 0):
        x[r] = (m[r][3] - sum(m[r][k] * x[k] for k in range(r + 1, 3))) / m[r][r]
    return x


def fit(points):
    """points: (policies, namespaces, bytes) -> (base, per policy, per namespace, max |residual|)."""
    xs = [(1.0, p, n) for p, n, _ in points]
    ys = [y for _, _, y in points]
    ata = [[sum(x[i] * x[j] for x in xs) for j in range(3)] for i in range(3)]
    aty = [sum(x[i] * y for x, y in zip(xs, ys)) for i in range(3)]
    base, per_p, per_n = solve3(ata, aty)
    worst = max(abs(base + per_p * p + per_n * n - y) for p, n, y in points)
    return base, per_p, per_n, worst


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    min_rss, min_peak, min_anon, min_file = (int(v) for v in sys.argv[2].split())
    states = []
    for r in rows:
        if r["state"] not in [s["state"] for s in states]:
            states.append({"state": r["state"]})
    for s in states:
        rs = [r for r in rows if r["state"] == s["state"]]
        s["policies"] = int(rs[0]["policies"])
        s["namespaces"] = int(rs[0]["namespaces"])
        s["file"] = int(rs[0]["file_bytes"])
        s["n"] = len(rs)
        for k in ("ready_ms", "rss_kb", "peak_kb", "anon_kb", "file_kb"):
            s[k] = statistics.median(float(r[k]) for r in rs)
            s[k + "_range"] = (min(float(r[k]) for r in rs), max(float(r[k]) for r in rs))
    print("| `--state` | policies | namespaces | state file | ready (`/readyz` 200) | RSS when ready | of which heap / binary (RssAnon / RssFile) | peak RSS (VmHWM) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in states:
        lo, hi = s["ready_ms_range"]
        print(f"| {s['state']} | {s['policies']:,} | {s['namespaces']:,} | {s['file'] / 1e6:.1f} MB | "
              f"{s['ready_ms']:,.0f} ms ({lo:,.0f} to {hi:,.0f}) | {s['rss_kb'] / 1024:.1f} MiB | "
              f"{s['anon_kb'] / 1024:.1f} / {s['file_kb'] / 1024:.1f} MiB | {s['peak_kb'] / 1024:.1f} MiB |")
    print(f"| minimal_webhook (no engine, no state) | | | | | {min_rss / 1024:.1f} MiB | "
          f"{min_anon / 1024:.1f} / {min_file / 1024:.1f} MiB | {min_peak / 1024:.1f} MiB |")
    print()
    print(f"Medians of {states[0]['n']} starts each (ready: range in brackets).")
    print()
    for key, label in (("rss_kb", "RSS when ready"), ("peak_kb", "peak RSS (VmHWM)")):
        pts = [(s["policies"], s["namespaces"], s[key] * 1024) for s in states]
        base, per_p, per_n, worst = fit(pts)
        print(f"- {label}: {base / 2**20:.1f} MiB + {per_p:,.0f} bytes per policy + "
              f"{per_n:,.0f} bytes per namespace (least squares over the {len(pts)} states; "
              f"worst residual {worst / 2**20:.1f} MiB)")
    by = {s["state"]: s for s in states}
    if {"empty", "50k-policies-1-namespace", "10k-namespaces-no-policies"} <= by.keys():
        e = by["empty"]
        p = by["50k-policies-1-namespace"]
        n = by["10k-namespaces-no-policies"]
        for key, label in (("rss_kb", "RSS when ready"), ("peak_kb", "peak RSS")):
            print(f"- directly, {label}: "
                  f"{(p[key] - e[key]) * 1024 / p['policies']:,.0f} bytes per policy (50,000 in one namespace), "
                  f"{(n[key] - e[key]) * 1024 / n['namespaces']:,.0f} bytes per namespace (10,000 without policies), "
                  f"over the empty state's {e[key] / 1024:.1f} MiB")
        print(f"- state file: {p['file'] / p['policies']:,.0f} bytes of JSON per policy, "
              f"{n['file'] / n['namespaces']:,.0f} per namespace")


if __name__ == "__main__":
    main()

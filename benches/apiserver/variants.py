#!/usr/bin/env python3
"""Part 1 of the API-server benchmark (bench.py) for variants of netpol-guard's
serving setup side by side, to find where the latency it adds through the
API server goes. Each variant is 2 replicas behind the loopback forwarder,
registered like bench.py's (b); rounds alternate the variants.

    cargo build --release --bin netpol-guard --example minimal_webhook --example tcp_balancer
    python3 benches/apiserver/variants.py [--rounds 2] [--clients 64] [--variants ng,h1,quiet,ecdsa,min,none]

Variants: ng (as shipped: --client-ca, RSA-2048 certificate, info log,
HTTP/2 offered), h1 (--http2=false), nomtls (no --client-ca), quiet
(NETPOL_GUARD_LOG=warn: no line per decision), ecdsa (P-256 certificate),
min (examples/minimal_webhook), none (no webhook). Prints one line per run
and the medians; `conns` is the number of connections the API server holds
to the forwarder halfway through a run.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import HZ, ROOT, Bench, cpu_ticks, established_at, make_pki  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--variants", default="ng,h1,nomtls,quiet,ecdsa,min,none")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="apiserver-variants.")
    os.makedirs(f"{work}/bin")
    for f in ("netpol-guard", "examples/minimal_webhook", "examples/tcp_balancer"):
        subprocess.run(["cp", f"{ROOT}/target/release/{f}", f"{work}/bin/"], check=True)
    cp_bin = subprocess.run([f"{ROOT}/tests/e2e/build-control-plane.sh"], capture_output=True, text=True,
                            check=True).stdout.strip()
    args = types.SimpleNamespace(work=work, bin_dir=f"{work}/bin", cp_bin=cp_bin, size="full", rounds=a.rounds,
                                 parts="1", kyverno_status=None, pre10_bin=None, pre10_reason=None, keep=False)
    b = Bench(args)
    want = a.variants.split(",")
    try:
        b.cluster()
        b.install_manifests()
        b.populate()
        b.write_requests()
        variants = {}

        def ng(name, tls=None, **kw):
            saved = b.tls
            b.tls = tls or saved
            reps = [b.start_ng(f"{name}-{x}", **kw) for x in "ab"]
            ca = open(b.tls[2]).read()
            b.tls = saved
            variants[name] = (reps, b.start_balancer(f"lb-{name}", [p.port for p in reps]), ca)

        setups = {
            "ng": lambda: ng("ng"),
            "h1": lambda: ng("h1", extra=("--http2=false",)),
            "nomtls": lambda: ng("nomtls", client_ca=False),
            "quiet": lambda: ng("quiet", env={"NETPOL_GUARD_LOG": "warn"}),
            "ecdsa": lambda: ng("ecdsa", tls=make_pki(f"{work}/ec-pki", "ec -pkeyopt ec_paramgen_curve:P-256")),
        }
        for v in want:
            if v in setups:
                setups[v]()
            elif v == "min":
                reps, ca = b.start_minimal()
                variants["min"] = (reps, b.start_balancer("lb-min", [p.port for p in reps]), ca)
            elif v == "none":
                variants["none"] = ([], None, None)
            else:
                sys.exit(f"unknown variant {v}")
        res = {}
        names = list(variants)
        for rnd in range(a.rounds):
            for v in names[rnd % len(names):] + names[:rnd % len(names)]:
                reps, lb, ca = variants[v]
                if lb:
                    b.register(lb.port, ca)
                else:
                    b.unregister()
                b.wrk(a.clients, 3)
                procs = [(p.name, p.pid) for p in reps] + ([("lb", lb.pid)] if lb else []) + \
                        [("api", b.apiserver_pid)]
                t0 = {n: cpu_ticks(pid) for n, pid in procs}
                conns = []
                th = threading.Thread(target=lambda: conns.append(established_at(lb.port, a.seconds / 2)
                                                                  if lb else 0))
                th.start()
                r = b.wrk(a.clients, a.seconds)
                th.join()
                t1 = {n: cpu_ticks(pid) for n, pid in procs}
                k = r["requests"] / 1000
                wh = sum(t1[n] - t0[n] for n, _ in procs if n not in ("lb", "api")) / HZ / k
                api = (t1["api"] - t0["api"]) / HZ / k
                row = (r["rps"], r["p50_us"] / 1000, r["p99_us"] / 1000, wh, api, conns[0])
                res.setdefault(v, []).append(row)
                print(f"round {rnd + 1} {v:7} {row[0]:5.0f} req/s  p50 {row[1]:6.1f} ms  p99 {row[2]:6.1f} ms  "
                      f"webhook CPU s/1k {wh:.3f}  API server CPU s/1k {api:.3f}  conns {conns[0]}", flush=True)
        print(f"medians over {a.rounds} round(s), {a.clients} clients, {a.seconds} s per run "
              f"(load average {os.getloadavg()[0]:.2f} at the end):")
        print("| variant | req/s | p50 ms | p99 ms | webhook CPU s / 1k | API server CPU s / 1k | connections |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for v, rows in res.items():
            m = [statistics.median(x[i] for x in rows) for i in range(6)]
            print(f"| {v} | {m[0]:.0f} | {m[1]:.1f} | {m[2]:.1f} | {m[3]:.3f} | {m[4]:.3f} | {m[5]:.0f} |")
    finally:
        b.cleanup()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()

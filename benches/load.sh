#!/usr/bin/env bash
# Load test of `netpol-guard serve` over TLS with HTTP/1.1 keep-alive (what
# kube-apiserver uses), with wrk. Loopback only, bounded in time.
#
#   benches/load.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Generates a cluster view of 2,000 namespaces and 10,000 NetworkPolicies
# (1,000 in the hot namespace `hot`), starts the release binary on
# 127.0.0.1:18443, drives a covered-Deployment review and an uncovered one
# (denied, with the full message) with wrk, and prints req/s, latency
# percentiles and the server's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-16}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -q
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

python3 - "$work" <<'PY'
import json, sys, os
out = sys.argv[1]
docs = []
for n in range(2000):
    docs.append({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": f"ns-{n}", "labels": {"platform.io/managed": "true"}}})
docs.append({"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "hot", "labels": {"platform.io/managed": "true"}}})
def pol(ns, i):
    sel = ({"matchExpressions": [{"key": "app", "operator": "In", "values": [f"svc-{i}", f"svc-{i}-canary"]}]}
           if i % 10 == 9 else {"matchLabels": {"app": f"svc-{i}", "tier": "backend"}})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"p-{i}", "namespace": ns},
            "spec": {"podSelector": sel, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": f"client-{i}"}}}],
                                  "ports": [{"protocol": "TCP", "port": 8080}]}]}}
for i in range(1000):
    docs.append(pol("hot", i))
for i in range(9000):
    docs.append(pol(f"ns-{i % 2000}", i))
json.dump({"apiVersion": "v1", "kind": "List", "items": docs}, open(os.path.join(out, "state.json"), "w"))
def review(app):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "load", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "operation": "CREATE", "namespace": "hot", "name": app,
        "userInfo": {"username": "dev@example.com", "groups": ["system:authenticated"]},
        "object": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app, "namespace": "hot"},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app}},
                            "template": {"metadata": {"labels": {"app": app, "tier": "backend"}},
                                         "spec": {"containers": [{"name": "app", "image": "ghcr.io/example/app:1.0",
                                                                   "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}}},
        "oldObject": None, "dryRun": False}}
for name, app in [("covered", "svc-500"), ("uncovered", "ledger")]:
    body = json.dumps(review(app))
    with open(os.path.join(out, f"{name}.lua"), "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        f.write("wrk.body = " + json.dumps(body) + "\n")
PY

./target/release/netpol-guard --log-format json serve --addr 127.0.0.1:18443 --state "$work/state.json" \
  2> >(grep -v '"admission decision"' >&2) &
pid=$!
for _ in $(seq 1 100); do
  curl -sk https://127.0.0.1:18443/readyz >/dev/null 2>&1 && break
  sleep 0.1
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uname -sr)"
echo "server: pid $pid, RSS after load of state: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"
for name in covered uncovered; do
  echo "== $name: wrk -t2 -c$CONNS -d${DURATION}s --latency (TLS, HTTP/1.1 keep-alive)"
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$work/$name.lua" https://127.0.0.1:18443/validate \
    | grep -E "Requests/sec|Latency|50%|75%|90%|99%|requests in|Non-2xx|Socket errors"
done
echo "server peak RSS: $(awk '/VmHWM/{print $2, $3}' /proc/$pid/status)"
curl -sk https://127.0.0.1:18443/metrics | grep -E '^netpol_guard_admission_requests_total' || true

#!/usr/bin/env python3
"""Writes a `--state` file (one JSON `kind: List`) for the load and scale tests.

    gen_state.py OUT --policies P --namespaces N [--hot H] [--policy-namespaces M]

- N Namespace objects `ns-0` .. `ns-{N-1}`, labelled managed, plus the managed
  namespace `hot` when H > 0.
- P NetworkPolicies: H of them in `hot`, the rest spread round-robin over M
  namespaces `ns-*` (M defaults to N; with N = 0 and M > 0 the policies sit in
  namespaces that have no Namespace object, which the view still keys by name).
- Policy i selects pods `app=svc-i, tier=backend` by `matchLabels`, except one
  in ten (i % 10 == 9) which selects `app In (svc-i, svc-i-canary)`; each has
  one ingress rule from `app=client-i` on TCP 8080. This is the generator
  load.sh has always used (benches/engine.rs builds the same policies).
"""
import argparse
import json


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"platform.io/managed": "true",
                                                  "kubernetes.io/metadata.name": name}}}


def policy(ns, i):
    sel = ({"matchExpressions": [{"key": "app", "operator": "In",
                                  "values": [f"svc-{i}", f"svc-{i}-canary"]}]}
           if i % 10 == 9 else {"matchLabels": {"app": f"svc-{i}", "tier": "backend"}})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": f"p-{i}", "namespace": ns},
            "spec": {"podSelector": sel, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": f"client-{i}"}}}],
                                  "ports": [{"protocol": "TCP", "port": 8080}]}]}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--policies", type=int, required=True)
    ap.add_argument("--namespaces", type=int, required=True)
    ap.add_argument("--hot", type=int, default=0)
    ap.add_argument("--policy-namespaces", type=int, default=None)
    a = ap.parse_args()
    spread = a.namespaces if a.policy_namespaces is None else a.policy_namespaces
    if a.policies > a.hot and spread == 0:
        ap.error("policies outside `hot` need --namespaces or --policy-namespaces > 0")
    items = [namespace(f"ns-{n}") for n in range(a.namespaces)]
    if a.hot > 0:
        items.append(namespace("hot"))
    items += [policy("hot", i) for i in range(a.hot)]
    items += [policy(f"ns-{i % spread}", i) for i in range(a.policies - a.hot)]
    with open(a.out, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)


if __name__ == "__main__":
    main()

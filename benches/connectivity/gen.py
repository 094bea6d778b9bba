#!/usr/bin/env python3
"""A realistic input for `netpol-guard connectivity` (issue 17):
NAMESPACES namespaces (default 500) of WORKLOADS workloads each (default 10:
5,000 in all) and about 20 policies each (10,000 in all). Most namespaces
(9 in 10) have a default-deny and a DNS allow; each workload gets an
ingress policy from its tier's callers (one in five from another team's
namespace, one frontend a namespace from outside by an ipBlock with an
except), and an egress policy to its callees. Deterministic (seeded).

  benches/connectivity/gen.py OUT.yaml [NAMESPACES] [WORKLOADS]
"""
import json
import random
import sys

out = sys.argv[1]
namespaces = int(sys.argv[2]) if len(sys.argv) > 2 else 500
workloads = int(sys.argv[3]) if len(sys.argv) > 3 else 10
rnd = random.Random(17)
docs = []


def add(doc):
    docs.append(json.dumps(doc, separators=(",", ":")))


for n in range(namespaces):
    ns = f"team-{n:03d}"
    add({"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": ns, "labels": {"team": ns, "env": rnd.choice(["prod", "dev"])}}})
    defaults = n % 10 != 0
    if defaults:
        add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "default-deny", "namespace": ns},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})
        add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": "allow-dns", "namespace": ns},
             "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [
                 {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                  "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}})
    for w in range(workloads):
        app = f"svc-{w}"
        tier = "front" if w == 0 else ("data" if w >= workloads - 2 else "api")
        port = {"front": 8443, "api": 8080, "data": 5432}[tier]
        kind = "StatefulSet" if tier == "data" else "Deployment"
        add({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": app, "namespace": ns},
             "spec": {"selector": {"matchLabels": {"app": app}}, "template": {
                 "metadata": {"labels": {"app": app, "tier": tier}},
                 "spec": {"containers": [{"name": "c", "image": "example/app:1",
                                          "ports": [{"name": "serve", "containerPort": port}]}]}}}})
        callers = []
        if tier == "front":
            callers.append({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}})
        else:
            callers.append({"podSelector": {"matchLabels": {"app": f"svc-{rnd.randrange(0, max(1, w))}"}}})
        if rnd.random() < 0.2:
            other = f"team-{rnd.randrange(namespaces):03d}"
            callers.append({"namespaceSelector": {"matchLabels": {"team": other}},
                            "podSelector": {"matchLabels": {"tier": "api"}}})
        add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": f"{app}-in", "namespace": ns},
             "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"],
                      "ingress": [{"from": callers, "ports": [{"port": "serve"}]}]}})
        callees = [f"svc-{c}" for c in range(w + 1, min(workloads, w + 3))]
        egress = [{"to": [{"podSelector": {"matchLabels": {"app": c}}}], "ports": [{"port": "serve"}]}
                  for c in callees]
        add({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
             "metadata": {"name": f"{app}-out", "namespace": ns},
             "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Egress"],
                      "egress": egress}})

with open(out, "w") as f:
    # Leading "---": every document is YAML (flow style), which tools that
    # sniff a file starting with "{" as one JSON document also read.
    f.write("---\n" + "\n---\n".join(docs))
    f.write("\n")
print(f"{out}: {len(docs)} objects", file=sys.stderr)

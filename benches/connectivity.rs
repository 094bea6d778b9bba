//! The connectivity map's cost against the size of the input: the shape of
//! `benches/connectivity/gen.py` (per namespace: 10 workloads, a
//! default-deny and a DNS allow in 9 of 10, an ingress and an egress policy
//! per workload, one in five ingress rules from another namespace, the
//! front door from outside by an ipBlock with an except), at 50, 100 and 200
//! namespaces. Model reading and analysis are measured apart.
//! Run: `cargo bench --bench connectivity` (docs/benchmarks.md has the
//! results, and the 500-namespace end-to-end figure of the binary).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use netpol_guard::connectivity::{Model, analyse};
use serde_json::{Value, json};

/// A deterministic stand-in for a random generator (a 64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn np(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn objects(namespaces: usize) -> Vec<Value> {
    let mut rnd = Lcg(17);
    let mut out = Vec::new();
    for n in 0..namespaces {
        let ns = format!("team-{n:03}");
        out.push(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"team": ns}}}));
        if n % 10 != 0 {
            out.push(np(
                &ns,
                "default-deny",
                json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            ));
            out.push(np(&ns, "allow-dns", json!({"podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})));
        }
        for w in 0..10usize {
            let app = format!("svc-{w}");
            let tier = match w {
                0 => "front",
                8 | 9 => "data",
                _ => "api",
            };
            out.push(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": app, "namespace": ns},
                "spec": {"selector": {"matchLabels": {"app": app}}, "template": {
                    "metadata": {"labels": {"app": app, "tier": tier}},
                    "spec": {"containers": [{"name": "c", "image": "i",
                        "ports": [{"name": "serve", "containerPort": 8080}]}]}}}}));
            let mut callers = vec![if w == 0 {
                json!({"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}})
            } else {
                json!({"podSelector": {"matchLabels": {"app": format!("svc-{}", rnd.below(w))}}})
            }];
            if rnd.below(5) == 0 {
                callers.push(json!({"namespaceSelector": {"matchLabels": {"team": format!("team-{:03}", rnd.below(namespaces))}},
                    "podSelector": {"matchLabels": {"tier": "api"}}}));
            }
            out.push(np(&ns, &format!("{app}-in"), json!({"podSelector": {"matchLabels": {"app": app}},
                "policyTypes": ["Ingress"], "ingress": [{"from": callers, "ports": [{"port": "serve"}]}]})));
            let egress: Vec<Value> = (w + 1..(w + 3).min(10))
                .map(|c| json!({"to": [{"podSelector": {"matchLabels": {"app": format!("svc-{c}")}}}], "ports": [{"port": "serve"}]}))
                .collect();
            out.push(np(
                &ns,
                &format!("{app}-out"),
                json!({"podSelector": {"matchLabels": {"app": app}},
                "policyTypes": ["Egress"], "egress": egress}),
            ));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("connectivity");
    g.sample_size(10);
    for namespaces in [50, 100, 200] {
        let objs = objects(namespaces);
        let model = Model::from_objects(&objs).expect("valid input");
        g.bench_with_input(BenchmarkId::new("model", namespaces), &objs, |b, o| {
            b.iter(|| Model::from_objects(black_box(o)).map(|m| m.workloads.len()))
        });
        g.bench_with_input(BenchmarkId::new("analyse", namespaces), &model, |b, m| {
            b.iter(|| analyse(black_box(m)).connections.len())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Engine decision cost: a Deployment judged against 10, 1,000 and 10,000
//! policies in its namespace, with 50,000 policies in the cluster.
//!
//! Besides criterion's estimates, prints per-decision latency percentiles
//! (p50/p99/p99.9 over 200,000 timed decisions), since the target is a p99.
//! Run: `cargo bench --bench engine` (docs/benchmarks.md has the results).

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, criterion_group};
use netpol_guard::admission::{self, AdmissionRequest};
use netpol_guard::cluster::ClusterView;
use netpol_guard::config::Settings;
use netpol_guard::engine;
use serde_json::json;

const CLUSTER_POLICIES: usize = 50_000;
const NAMESPACES: usize = 2_000;

/// A realistic policy: 9 in 10 select by `matchLabels`, 1 in 10 by an `In`
/// expression; ingress from a peer app on one port.
fn policy(ns: &str, i: usize) -> serde_json::Value {
    let selector = if i % 10 == 9 {
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": [format!("svc-{i}"), format!("svc-{i}-canary")]}]})
    } else {
        json!({"matchLabels": {"app": format!("svc-{i}"), "tier": "backend"}})
    };
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": format!("p-{i}"), "namespace": ns},
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": format!("client-{i}")}}}],
                "ports": [{"protocol": "TCP", "port": 8080}]}]}})
}

/// A cluster with `hot` policies in namespace `hot` and 50,000 in total.
pub fn cluster(hot: usize) -> ClusterView {
    let mut v = ClusterView::new();
    for n in 0..NAMESPACES {
        v.add(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": format!("ns-{n}"), "labels": {"platform.io/managed": "true"}}}))
            .unwrap();
    }
    v.add(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "hot", "labels": {"platform.io/managed": "true"}}}))
        .unwrap();
    for i in 0..hot {
        v.add(&policy("hot", i)).unwrap();
    }
    for i in 0..CLUSTER_POLICIES - hot {
        v.add(&policy(&format!("ns-{}", i % NAMESPACES), i))
            .unwrap();
    }
    v
}

fn deployment(app: &str) -> AdmissionRequest {
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "operation": "CREATE", "namespace": "hot", "name": app,
        "userInfo": {"username": "dev"},
        "object": {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": app, "namespace": "hot"},
            "spec": {"selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app, "tier": "backend", "version": "v1"}},
                    "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}}}}}});
    admission::parse_review(&serde_json::to_vec(&body).unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let settings = Settings::default();
    let mut g = c.benchmark_group("decide");
    for hot in [10usize, 1_000, 10_000] {
        let view = cluster(hot);
        // Covered by the last policy added to the namespace (no early luck),
        // uncovered (every candidate checked), and via an In expression.
        let covered = deployment(&format!("svc-{}", hot - 2));
        let uncovered = deployment("ledger");
        let by_expr = deployment(&format!("svc-{}", hot - 1));
        assert!(
            engine::decide(&covered, &view, &settings)
                .unwrap()
                .allowed()
        );
        assert!(
            !engine::decide(&uncovered, &view, &settings)
                .unwrap()
                .allowed()
        );
        assert!(
            engine::decide(&by_expr, &view, &settings)
                .unwrap()
                .allowed()
        );
        g.bench_with_input(BenchmarkId::new("covered", hot), &covered, |b, r| {
            b.iter(|| engine::decide(black_box(r), &view, &settings))
        });
        g.bench_with_input(
            BenchmarkId::new("covered-by-expression", hot),
            &by_expr,
            |b, r| b.iter(|| engine::decide(black_box(r), &view, &settings)),
        );
        g.bench_with_input(
            BenchmarkId::new("uncovered-deny-message", hot),
            &uncovered,
            |b, r| b.iter(|| engine::decide(black_box(r), &view, &settings)),
        );
    }
    g.finish();
    // The live re-read before a require-network-policy denial overlays the
    // namespace's fresh policies on the view. Before: a copy of the whole view
    // (every namespace entry); after: `focused`, that namespace only. Since
    // issue 14 a clone of the whole view is O(1) as well (persistent maps).
    let view = cluster(1_000);
    let mut g = c.benchmark_group("live-overlay");
    g.bench_function("clone-whole-view", |b| b.iter(|| black_box(view.clone())));
    g.bench_function("focused", |b| b.iter(|| black_box(view.focused("hot"))));
    g.finish();

    // The whole request path minus HTTP: parse, decide, serialise.
    let view = cluster(1_000);
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/requests/deployment-covered.json"
    ))
    .unwrap();
    c.bench_function("parse-decide-serialise/1000", |b| {
        b.iter(|| {
            let req = admission::parse_review(black_box(&body)).unwrap();
            let v = engine::decide(&req, &view, &settings).unwrap();
            serde_json::to_vec(&netpol_guard::webhook::to_response(&req.uid, &v).into_review())
                .unwrap()
        })
    });
    // The same with a Deployment as kube-apiserver sends it after `kubectl
    // apply` (7.2 KB: the last-applied-configuration annotation and
    // managedFields, the API server's defaults; written by
    // benches/load/gen_reviews.py, the load test's most frequent body).
    let applied = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/load/review-deployment-applied.json"
    ))
    .unwrap();
    let req = admission::parse_review(&applied).unwrap();
    assert!(engine::decide(&req, &view, &settings).unwrap().allowed());
    c.bench_function("parse/kubectl-applied", |b| {
        b.iter(|| admission::parse_review(black_box(&applied)).unwrap())
    });
    c.bench_function("parse-decide-serialise/kubectl-applied", |b| {
        b.iter(|| {
            let req = admission::parse_review(black_box(&applied)).unwrap();
            let v = engine::decide(&req, &view, &settings).unwrap();
            serde_json::to_vec(&netpol_guard::webhook::to_response(&req.uid, &v).into_review())
                .unwrap()
        })
    });
}

/// Per-decision latency percentiles: criterion gives central estimates, the
/// target is on the tail.
fn percentiles() {
    let settings = Settings::default();
    println!("\nper-decision latency over 200000 decisions (ns): p50 / p99 / p99.9");
    for hot in [10usize, 1_000, 10_000] {
        let view = cluster(hot);
        for (label, req) in [
            ("covered", deployment(&format!("svc-{}", hot - 2))),
            ("uncovered", deployment("ledger")),
        ] {
            let mut samples = Vec::with_capacity(200_000);
            for _ in 0..200_000 {
                let t = Instant::now();
                black_box(engine::decide(black_box(&req), &view, &settings).unwrap());
                samples.push(t.elapsed().as_nanos() as u64);
            }
            samples.sort_unstable();
            let q = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
            println!(
                "decide/{label}/{hot}: {} / {} / {}",
                q(0.50),
                q(0.99),
                q(0.999)
            );
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        percentiles();
    }
}

//! Cost of one live watch event against the number of namespaces (issue 14).
//!
//! `cluster::live::ModelDriver` is the watches' model and publishing without
//! an API server. It is fed what the watches list for a cluster of 100,
//! 1,000 or 10,000 namespaces (each with labels, three NetworkPolicies and
//! two Deployments), then each timed iteration is ONE watch event: a
//! NetworkPolicy of one namespace changed (`Model::apply_policy`: the
//! namespace's policies recompiled) and the view published (`publish`: a
//! clone of the view behind a new `Arc`, replacing, and so dropping, the
//! previous one). Events/s = 1 / time per event.
//!
//! Besides criterion's estimates, prints events/s over 5 runs of
//! `EVENTS` events per size, and their median.
//! Run: `cargo bench --bench live_view` (docs/benchmarks.md has the results).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group};
use netpol_guard::cluster::kinds::WORKLOAD_KINDS;
use netpol_guard::cluster::live::ModelDriver;
use netpol_guard::cluster::store::{self, ViewStore};
use netpol_guard::cluster::{ClusterView, NamespaceMeta, PolicyKind, known_workload};
use netpol_guard::selector::Labels;
use netpol_guard::workload::WorkloadKind;
use serde_json::{Value, json};

const SIZES: [usize; 3] = [100, 1_000, 10_000];
const EVENTS: usize = 2_000;
const RUNS: usize = 5;

fn ns_name(i: usize) -> String {
    format!("ns-{i}")
}

fn labels(i: usize) -> Labels {
    [
        ("kubernetes.io/metadata.name", ns_name(i)),
        ("platform.io/managed", "true".to_string()),
        ("team", format!("team-{}", i % 50)),
        (
            "env",
            if i.is_multiple_of(3) { "prod" } else { "dev" }.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The three policies of a namespace: a default deny, an ingress allow on
/// `port`, and DNS egress.
fn policies(ns: &str, port: u16) -> [Value; 3] {
    let np = |name: &str, spec: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec})
    };
    [
        np(
            "default-deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        np(
            "allow-web",
            json!({"podSelector": {"matchLabels": {"app": "api", "tier": "backend"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                    "ports": [{"protocol": "TCP", "port": port}]}]}),
        ),
        np(
            "allow-dns",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}]}]}),
        ),
    ]
}

fn deployment(ns: &str, app: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app, "tier": "backend"}},
                "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]}}}})
}

/// A driver whose model holds `n` namespaces, listed as the watches do
/// (every watch synced, so the view is ready and its workloads known).
fn cluster(n: usize) -> (ModelDriver, ViewStore) {
    let (writer, reader) = store::store(ClusterView::new());
    let mut d = ModelDriver::new(writer);
    d.list_namespaces(
        (0..n)
            .map(|i| {
                let meta = NamespaceMeta {
                    labels: labels(i),
                    terminating: false,
                };
                (ns_name(i), meta)
            })
            .collect(),
    );
    d.list_policies(
        PolicyKind::NetworkPolicy,
        (0..n).flat_map(|i| policies(&ns_name(i), 8080)).collect(),
    );
    for (kind, _) in WORKLOAD_KINDS {
        let items = if kind == WorkloadKind::Deployment {
            (0..n)
                .flat_map(|i| ["api", "web"].map(|app| deployment(&ns_name(i), app)))
                .filter_map(|o| {
                    let (ns, w) = known_workload(kind, &o, &[])?;
                    Some((ns, w.name.clone(), Some(Arc::new(w))))
                })
                .collect()
        } else {
            Vec::new()
        };
        d.list_workloads(kind, items);
    }
    let view = reader.view();
    assert!(reader.ready());
    assert_eq!(view.namespace_count(), n);
    assert_eq!(view.policy_count(), 3 * n);
    assert_eq!(view.workload_count(), 2 * n);
    assert!(view.namespaces_complete());
    (d, reader)
}

/// The event of iteration `i`: `allow-web` of the middle namespace, its
/// port flipping so every event changes the view.
fn event(n: usize, i: usize) -> Value {
    let [_, allow, _] = policies(&ns_name(n / 2), 8080 + (i % 2) as u16);
    allow
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("live-event/apply-policy-and-publish");
    g.sample_size(30);
    for n in SIZES {
        let (mut d, reader) = cluster(n);
        let events = [event(n, 0), event(n, 1)];
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_batched(
                || {
                    i += 1;
                    events[i % 2].clone()
                },
                |obj| d.apply_policy(PolicyKind::NetworkPolicy, black_box(obj)),
                BatchSize::SmallInput,
            )
        });
        // The events reached the published view.
        assert_eq!(reader.view().policy_objects(&ns_name(n / 2)), 3);
    }
    g.finish();
}

/// Events/s over `RUNS` runs of `EVENTS` events per size, and the median.
fn events_per_second() {
    println!("\nevents/s (apply one NetworkPolicy + publish), {RUNS} runs of {EVENTS} events");
    for n in SIZES {
        let (mut d, _reader) = cluster(n);
        let events: Vec<Value> = (0..EVENTS).map(|i| event(n, i)).collect();
        let mut rates: Vec<f64> = (0..RUNS)
            .map(|_| {
                let batch = events.clone();
                let t = Instant::now();
                for obj in batch {
                    d.apply_policy(PolicyKind::NetworkPolicy, black_box(obj));
                }
                EVENTS as f64 / t.elapsed().as_secs_f64()
            })
            .collect();
        let runs: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        rates.sort_by(f64::total_cmp);
        println!(
            "live-event/{n}: median {:.0} events/s (runs: {})",
            rates[RUNS / 2],
            runs.join(", ")
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if !std::env::args().any(|a| a == "--list" || a == "--test") {
        events_per_second();
    }
}

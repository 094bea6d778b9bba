//! The background audit of `serve` (policyReports.intervalSeconds), against
//! the `FakeApiServer` test double: the leader keeps PolicyReports current,
//! says once when the CRDs are absent and starts writing when they appear,
//! a follower never writes, and the ClusterPolicyReport follows the network
//! plugin (`cni-not-enforcing`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_apiserver::{FakeApiServer, Served};

const REPORTS: &str = "wgpolicyk8s.io/v1alpha2";

fn seed(fake: &FakeApiServer) {
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "payments", "labels": {"platform.io/managed": "true"}}}));
    fake.apply_object(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": "payments"},
        "spec": {"selector": {"matchLabels": {"app": "worker"}},
            "template": {"metadata": {"labels": {"app": "worker"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}));
}

/// `serve` against the fake, auditing every 10 s (the shortest allowed).
fn start(fake: &FakeApiServer) -> Served {
    fake.serve(
        &["--namespace", "netpol-guard"],
        Some("policyReports:\n  intervalSeconds: 10\n"),
    )
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// (resource name, rule, result) of the PolicyReport of `ns`, if any.
fn results(fake: &FakeApiServer, ns: &str) -> Option<Vec<(String, String, String)>> {
    let report = fake
        .list_objects(REPORTS, "PolicyReport")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == ns)?;
    Some(
        report["results"]
            .as_array()?
            .iter()
            .map(|r| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (
                    s(&r["resources"][0]["name"]),
                    s(&r["rule"]),
                    s(&r["result"]),
                )
            })
            .collect(),
    )
}

fn row(name: &str, rule: &str, result: &str) -> (String, String, String) {
    (name.into(), rule.into(), result.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_keeps_policy_reports_current_once_the_crds_exist() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    let live = start(&fake);
    // No CRDs: one log line, counted, nothing written.
    eventually("the CRD-absent round", Duration::from_secs(30), || {
        live.server
            .stderr
            .try_iter()
            .any(|l| l.contains("PolicyReport CRDs (wgpolicyk8s.io/v1alpha2) are not installed"))
    })
    .await;
    let metrics = live.server.connect().await.get("/metrics").await.text();
    assert!(
        metrics.contains("netpol_guard_policy_report_runs_total{result=\"crd_absent\"} 1"),
        "{metrics}"
    );
    assert_eq!(fake.count_requests("PATCH", "policyreports"), 0);
    // ... and the cluster is not listed for reports nobody can store: the
    // one list of Deployments is the workload watch's own, before it watches.
    let lists = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/apis/apps/v1/deployments" && !r.is_watch())
        .count();
    assert!(lists <= 1, "{lists} lists of Deployments");

    // The CRDs are installed and the workload gets a policy: the next round
    // (within the 10 s interval) writes a report where it passes.
    fake.set_policy_reports_installed(true);
    fake.apply_object(
        &json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-worker", "namespace": "payments"},
        "spec": {"podSelector": {"matchLabels": {"app": "worker"}},
            "ingress": [{"from": [{"podSelector": {}}]}]}}),
    );
    eventually(
        "a report where worker passes",
        Duration::from_secs(30),
        || {
            results(&fake, "payments")
                == Some(vec![row("worker", "require-network-policy", "pass")])
        },
    )
    .await;
    assert_eq!(
        fake.list_objects(REPORTS, "ClusterPolicyReport").len(),
        1,
        "a whole-cluster audit writes the ClusterPolicyReport too"
    );
    let metrics = live.server.connect().await.get("/metrics").await.text();
    assert!(
        metrics.contains("netpol_guard_policy_report_runs_total{result=\"written\"} 1"),
        "{metrics}"
    );
    // Said once, not every round.
    let logs: Vec<String> = live.server.stderr.try_iter().collect();
    assert!(
        !logs.iter().any(|l| l.contains("are not installed")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("background audit: PolicyReports written")),
        "{logs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_never_writes_reports() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    fake.set_policy_reports_installed(true);
    // Another replica holds the Lease, renewed "now" for a long time.
    fake.apply_object(
        &json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "netpol-guard", "namespace": "netpol-guard"},
        "spec": {"holderIdentity": "the-other-replica", "leaseDurationSeconds": 3600,
            "acquireTime": "2099-01-01T00:00:00.000000Z",
            "renewTime": "2099-01-01T00:00:00.000000Z"}}),
    );
    let live = start(&fake);
    // Ready, and given the time a leader takes to write its first round.
    let _ = live.server.connect().await.get("/readyz").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(fake.list_objects(REPORTS, "PolicyReport").is_empty());
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.path.contains("policyreports") || r.path.contains("wgpolicyk8s.io"))
            .count(),
        0,
        "a follower does not even look"
    );
}

/// (resource namespace/name, rule, result) of the ClusterPolicyReport's
/// results, if it exists.
fn cluster_results(fake: &FakeApiServer) -> Option<Vec<(String, String, String)>> {
    let report = fake
        .list_objects(REPORTS, "ClusterPolicyReport")
        .into_iter()
        .next()?;
    Some(
        report["results"]
            .as_array()?
            .iter()
            .map(|r| {
                let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
                let res = &r["resources"][0];
                (
                    format!("{}/{}", s(&res["namespace"]), s(&res["name"])),
                    s(&r["rule"]),
                    s(&r["result"]),
                )
            })
            .collect(),
    )
}

fn daemonset(ns: &str, name: &str, container: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"k8s-app": name}},
            "template": {"metadata": {"labels": {"k8s-app": name}},
                "spec": {"hostNetwork": true, "containers": [container]}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_policy_report_says_whether_the_network_plugin_enforces() {
    let fake = FakeApiServer::start().await;
    seed(&fake);
    for ns in ["kube-system", "kube-flannel"] {
        fake.apply_object(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        );
    }
    fake.apply_object(&daemonset(
        "kube-flannel",
        "kube-flannel-ds",
        json!({"name": "kube-flannel", "image": "docker.io/flannel/flannel:v0.25.7",
            "args": ["--ip-masq", "--kube-subnet-mgr"]}),
    ));
    fake.set_policy_reports_installed(true);
    let _live = start(&fake);
    let row = |r: &str, result: &str| {
        (
            r.to_string(),
            "cni-not-enforcing".to_string(),
            result.to_string(),
        )
    };
    // flannel alone: a failure, on its DaemonSet.
    eventually(
        "a ClusterPolicyReport where flannel fails",
        Duration::from_secs(30),
        || cluster_results(&fake) == Some(vec![row("kube-flannel/kube-flannel-ds", "fail")]),
    )
    .await;
    // Calico for policy beside flannel: the next round passes it.
    fake.apply_object(&daemonset(
        "kube-system",
        "calico-node",
        json!({"name": "calico-node", "image": "docker.io/calico/node:v3.28.0",
            "env": [{"name": "CALICO_NETWORKING_BACKEND", "value": "none"}]}),
    ));
    eventually(
        "a ClusterPolicyReport where calico-node passes",
        Duration::from_secs(30),
        || cluster_results(&fake) == Some(vec![row("kube-system/calico-node", "pass")]),
    )
    .await;
}

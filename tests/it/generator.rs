//! The baseline generator, against the `FakeApiServer` test double: the real
//! binary reconciles namespaces through a kubeconfig.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fake_apiserver::{FakeApiServer, RequestMatcher, Served};

const NP: &str = "networking.k8s.io/v1";

fn start(fake: &FakeApiServer) -> Served {
    fake.serve(&["--namespace", "netpol-guard"], None)
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn baseline_names(fake: &FakeApiServer, ns: &str) -> Vec<String> {
    let mut names: Vec<String> = fake
        .list_objects(NP, "NetworkPolicy")
        .into_iter()
        .filter(|p| p["metadata"]["namespace"] == ns)
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Polls `/metrics` until `check` holds, for at most 15 s.
async fn until_metrics(live: &Served, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let m = live.server.connect().await.get("/metrics").await.text();
        if check(&m) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

const BOTH: [&str; 2] = ["netpol-guard-allow-dns", "netpol-guard-default-deny"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_namespace_gets_and_keeps_its_baseline() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    fake.apply_object(&namespace("legacy", json!({})));
    let live = start(&fake);
    eventually("both policies created", || {
        baseline_names(&fake, "team-a") == BOTH
    })
    .await;
    assert!(baseline_names(&fake, "legacy").is_empty());
    let deny = fake
        .get_object(
            NP,
            "NetworkPolicy",
            Some("team-a"),
            "netpol-guard-default-deny",
        )
        .unwrap();
    assert_eq!(
        deny["spec"],
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    );
    assert_eq!(
        deny["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "netpol-guard"
    );
    assert!(deny["metadata"]["annotations"]["netpol-guard.io/config-hash"].is_string());
    let dns = fake
        .get_object(
            NP,
            "NetworkPolicy",
            Some("team-a"),
            "netpol-guard-allow-dns",
        )
        .unwrap();
    assert_eq!(
        dns["spec"]["egress"][0]["ports"],
        json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}])
    );
    let applies: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/namespaces/team-a/networkpolicies"))
        .collect();
    assert!(!applies.is_empty());
    assert!(
        applies
            .iter()
            .all(|r| r.field_manager.as_deref() == Some("netpol-guard")
                && r.content_type.as_deref() == Some("application/apply-patch+yaml"))
    );
    // Issue 16: the generated policies are known from their watch. A new
    // namespace costs its two applies and one Event; not a GET or a LIST
    // of its policies, before or after (its own writes' watch events
    // reconcile it again, for free), and no impact report (no workloads).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = fake.requests();
    let writes: Vec<String> = requests
        .iter()
        .filter(|r| r.path.contains("/namespaces/team-a/networkpolicies") && !r.is_watch())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        writes,
        [
            "PATCH /apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/netpol-guard-default-deny",
            "PATCH /apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/netpol-guard-allow-dns",
        ]
    );
    let events: Vec<(String, String)> = fake
        .list_objects("events.k8s.io/v1", "Event")
        .iter()
        .filter(|e| e["regarding"]["name"] == "team-a")
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or("").to_string(),
                e["note"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [(
            "BaselineCreated".to_string(),
            "netpol-guard created NetworkPolicies netpol-guard-default-deny, netpol-guard-allow-dns".to_string()
        )]
    );

    // Deleted: re-created.
    fake.delete_object(
        NP,
        "NetworkPolicy",
        Some("team-a"),
        "netpol-guard-default-deny",
    );
    eventually("default-deny re-created", || {
        baseline_names(&fake, "team-a") == BOTH
    })
    .await;
    // Edited: restored.
    let mut edited = dns.clone();
    edited["spec"]["egress"][0]["ports"] = json!([{"protocol": "UDP", "port": 53}]);
    fake.apply_object(&edited);
    eventually("allow-dns restored", || {
        fake.get_object(
            NP,
            "NetworkPolicy",
            Some("team-a"),
            "netpol-guard-allow-dns",
        )
        .unwrap()["spec"]
            == dns["spec"]
    })
    .await;
    // The edit is reported on the namespace (the deletion above shows up
    // as BaselineCreated: the reconciler only sees that the policy is absent).
    eventually("a BaselineRestored event", || {
        fake.list_objects("events.k8s.io/v1", "Event")
            .iter()
            .any(|e| {
                e["reason"] == "BaselineRestored"
                    && e["regarding"]["name"] == "team-a"
                    && e["note"]
                        .as_str()
                        .is_some_and(|n| n.contains("netpol-guard-allow-dns"))
            })
    })
    .await;
    // Label removed: baseline removed; a user's policy stays.
    fake.apply_object(&json!({"apiVersion": NP, "kind": "NetworkPolicy",
        "metadata": {"name": "mine", "namespace": "team-a"},
        "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}}));
    fake.apply_object(&namespace("team-a", json!({})));
    eventually("baseline removed", || {
        baseline_names(&fake, "team-a") == ["mine"]
    })
    .await;
    let m = live.server.connect().await.get("/metrics").await.text();
    for line in [
        "netpol_guard_baseline_changes_total{action=\"created\"}",
        "netpol_guard_baseline_changes_total{action=\"restored\"}",
        "netpol_guard_baseline_changes_total{action=\"deleted\"} 2",
    ] {
        assert!(m.contains(line), "{line} missing:\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_never_duplicates_and_audit_mode_creates_nothing() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    fake.apply_object(&namespace(
        "team-b",
        json!({"platform.io/managed": "true", "netpol-guard.io/mode": "audit"}),
    ));
    // What an earlier version generated in audit mode: a DNS allow that
    // selects every pod, so it limited their egress to DNS. It goes.
    fake.apply_object(&json!({"apiVersion": NP, "kind": "NetworkPolicy",
        "metadata": {"name": "netpol-guard-allow-dns", "namespace": "team-b",
            "labels": {"app.kubernetes.io/managed-by": "netpol-guard"}},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}]}}));
    let first = start(&fake);
    eventually("team-a baseline", || {
        baseline_names(&fake, "team-a") == BOTH
    })
    .await;
    eventually("team-b without any policy that selects pods", || {
        baseline_names(&fake, "team-b").is_empty()
    })
    .await;
    drop(first);
    let _second = start(&fake);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(baseline_names(&fake, "team-a"), BOTH);
    assert!(baseline_names(&fake, "team-b").is_empty());
    // Switching team-b to enforce creates both together.
    fake.apply_object(&namespace(
        "team-b",
        json!({"platform.io/managed": "true", "netpol-guard.io/mode": "enforce"}),
    ));
    eventually("team-b default-deny", || {
        baseline_names(&fake, "team-b") == BOTH
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_retried_and_config_changes_roll_out() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "netpol-guard", "namespace": "netpol-guard"},
        "data": {"config.yaml": "mode: enforce\n"}}));
    fake.fail_requests(
        RequestMatcher::method_path("PATCH", "/namespaces/team-a/networkpolicies"),
        500,
        3,
    );
    let live = start(&fake);
    eventually("baseline despite 500s", || {
        baseline_names(&fake, "team-a") == BOTH
    })
    .await;
    assert!(live.server.child.id() > 0);
    let m = live.server.connect().await.get("/metrics").await.text();
    assert!(
        m.contains("netpol_guard_reconcile_total{result=\"error\"} 3\n"),
        "{m}"
    );
    // A DNS port change in the config reaches the namespace.
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "netpol-guard", "namespace": "netpol-guard"},
        "data": {"config.yaml": "baseline:\n  dnsPorts: [{protocol: UDP, port: 5353}, {protocol: TCP, port: 5353}]\n"}}));
    eventually("new DNS ports", || {
        fake.get_object(
            NP,
            "NetworkPolicy",
            Some("team-a"),
            "netpol-guard-allow-dns",
        )
        .unwrap()["spec"]["egress"][0]["ports"][0]["port"]
            == 5353
    })
    .await;
}

/// A write that fails after another succeeded: the one done is reported
/// at once (a retry finds it in place and would not report it), the other
/// when its retry succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_done_before_a_failed_one_is_still_reported() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    fake.fail_requests(
        RequestMatcher::method_path(
            "PATCH",
            "/namespaces/team-a/networkpolicies/netpol-guard-allow-dns",
        ),
        500,
        1,
    );
    let _live = start(&fake);
    eventually("baseline despite a 500", || {
        baseline_names(&fake, "team-a") == BOTH
    })
    .await;
    let notes = || -> Vec<String> {
        fake.list_objects("events.k8s.io/v1", "Event")
            .iter()
            .filter(|e| e["reason"] == "BaselineCreated" && e["regarding"]["name"] == "team-a")
            .map(|e| e["note"].as_str().unwrap_or("").to_string())
            .collect()
    };
    eventually("both reported", || notes().len() == 2).await;
    assert_eq!(
        notes(),
        [
            "netpol-guard created NetworkPolicy netpol-guard-default-deny",
            "netpol-guard created NetworkPolicy netpol-guard-allow-dns"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_only_the_lease_holder_writes_and_the_other_takes_over() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    let a = start(&fake);
    eventually("baseline", || baseline_names(&fake, "team-a") == BOTH).await;
    let b = start(&fake);
    let lease = fake
        .get_object(
            "coordination.k8s.io/v1",
            "Lease",
            Some("netpol-guard"),
            "netpol-guard",
        )
        .unwrap();
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        holder.ends_with(&format!("-{}", a.server.child.id())),
        "{holder}"
    );
    // A deleted policy is restored by the leader only.
    fake.delete_object(
        NP,
        "NetworkPolicy",
        Some("team-a"),
        "netpol-guard-default-deny",
    );
    eventually("restored", || baseline_names(&fake, "team-a") == BOTH).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ma = a.server.connect().await.get("/metrics").await.text();
    let mb = b.server.connect().await.get("/metrics").await.text();
    assert!(
        ma.contains("netpol_guard_baseline_changes_total{action=\"created\"} 3"),
        "{ma}"
    );
    assert!(
        !mb.contains("netpol_guard_baseline_changes_total{"),
        "the follower wrote:\n{mb}"
    );
    // The leader goes away: the follower takes the Lease once it expires and
    // keeps the baseline.
    drop(a);
    fake.delete_object(
        NP,
        "NetworkPolicy",
        Some("team-a"),
        "netpol-guard-allow-dns",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while baseline_names(&fake, "team-a") != BOTH {
        assert!(Instant::now() < deadline, "the follower never took over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lease = fake
        .get_object(
            "coordination.k8s.io/v1",
            "Lease",
            Some("netpol-guard"),
            "netpol-guard",
        )
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap()
            .ends_with(&format!("-{}", b.server.child.id()))
    );
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

fn deployment(ns: &str, name: &str, app: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
}

fn impact_events(fake: &FakeApiServer, ns: &str) -> Vec<String> {
    fake.list_objects("events.k8s.io/v1", "Event")
        .into_iter()
        .chain(fake.list_objects("v1", "Event"))
        .filter(|e| e["reason"] == "BaselineImpact")
        .filter(|e| e["regarding"]["name"] == ns || e["involvedObject"]["name"] == ns)
        .map(|e| {
            e["note"]
                .as_str()
                .or(e["message"].as_str())
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_impact_report_names_the_workloads_default_deny_isolates() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace(
        "team-b",
        json!({"platform.io/managed": "true", "netpol-guard.io/mode": "audit"}),
    ));
    fake.apply_object(&deployment("team-b", "ledger", "ledger"));
    fake.apply_object(&deployment("team-b", "api", "api"));
    fake.apply_object(&json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "team-b"},
        "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "report"}},
            "spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}}}}}}));
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api-1", "namespace": "team-b",
        "labels": {"app": "api"}, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-x", "uid": "u", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "x"}]}}));
    fake.apply_object(&json!({"apiVersion": NP, "kind": "NetworkPolicy", "metadata": {"name": "api", "namespace": "team-b"},
        "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{"from": [{"podSelector": {}}]}]}}));
    let live = start(&fake);
    eventually("audit impact event", || {
        !impact_events(&fake, "team-b").is_empty()
    })
    .await;
    let events = impact_events(&fake, "team-b");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0],
        "audit mode: once default-deny is enforced, these workloads would be isolated (no NetworkPolicy lets their traffic through): Deployment ledger, CronJob nightly"
    );
    assert_eq!(baseline_names(&fake, "team-b"), ["api"]);
    let m = live.server.connect().await.get("/metrics").await.text();
    assert!(
        m.contains("netpol_guard_uncovered_workloads{namespace=\"team-b\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("netpol_guard_reconcile_duration_seconds_count "),
        "{m}"
    );
    // Enforce: the same report, now saying what just became isolated.
    fake.apply_object(&namespace(
        "team-b",
        json!({"platform.io/managed": "true", "netpol-guard.io/mode": "enforce"}),
    ));
    eventually("enforce impact event", || {
        impact_events(&fake, "team-b").len() == 2
    })
    .await;
    let events = impact_events(&fake, "team-b");
    assert!(
        events.iter().any(|e| e == "netpol-guard default-deny now isolates these workloads (no NetworkPolicy lets their traffic through): Deployment ledger, CronJob nightly"),
        "{events:?}"
    );
    // Issue 14: a namespace that stops being managed, or is deleted, leaves
    // the gauge (it reported team-b forever before).
    fake.apply_object(&namespace("team-b", json!({})));
    until_metrics(&live, "the gauge forgets an unmanaged namespace", |m| {
        !m.contains("netpol_guard_uncovered_workloads{namespace=\"team-b\"}")
    })
    .await;
    fake.apply_object(&namespace("team-c", json!({"platform.io/managed": "true"})));
    fake.apply_object(&deployment("team-c", "web", "web"));
    until_metrics(&live, "team-c reported", |m| {
        m.contains("netpol_guard_uncovered_workloads{namespace=\"team-c\"} 1")
    })
    .await;
    fake.delete_object("v1", "Namespace", None, "team-c");
    // Any reconcile sweeps namespaces the view no longer holds.
    fake.apply_object(&namespace("team-d", json!({"platform.io/managed": "true"})));
    until_metrics(&live, "the gauge forgets a deleted namespace", |m| {
        !m.contains("netpol_guard_uncovered_workloads{namespace=\"team-c\"}")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_lease_stops_reconciling_within_the_lease_period() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    let live = start(&fake);
    eventually("baseline", || baseline_names(&fake, "team-a") == BOTH).await;
    // The Lease cannot be renewed any more (API trouble on leases only).
    fake.fail_requests(RequestMatcher::path("/leases"), 500, 10_000);
    let deadline = Instant::now() + Duration::from_secs(20);
    let stepped_down = loop {
        if let Ok(line) = live.server.stderr.recv_timeout(Duration::from_millis(200))
            && line.contains("leadership changed")
            && line.contains("\"leader\":false")
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(
        stepped_down,
        "the leader kept leading without renewing its Lease"
    );
    fake.delete_object(
        NP,
        "NetworkPolicy",
        Some("team-a"),
        "netpol-guard-default-deny",
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        baseline_names(&fake, "team-a"),
        ["netpol-guard-allow-dns"],
        "a non-leader wrote"
    );
    // The API heals: leadership comes back and the baseline with it.
    fake.clear_faults();
    eventually("restored after regaining the Lease", || {
        baseline_names(&fake, "team-a") == BOTH
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_unmanage_keep_leaves_the_baseline() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "netpol-guard", "namespace": "netpol-guard"},
        "data": {"config.yaml": "baseline:\n  onUnmanage: keep\n"}}));
    let _live = start(&fake);
    eventually("baseline", || baseline_names(&fake, "team-a") == BOTH).await;
    fake.apply_object(&namespace("team-a", json!({})));
    // Kept, and released: no longer labelled or hashed as netpol-guard's,
    // so it is an ordinary policy (deletable, judged for coverage).
    eventually("the kept baseline released", || {
        fake.list_objects(NP, "NetworkPolicy")
            .iter()
            .filter(|p| p["metadata"]["namespace"] == "team-a")
            .all(|p| {
                p["metadata"]["labels"]
                    .get("app.kubernetes.io/managed-by")
                    .is_none()
                    && p["metadata"]["annotations"]
                        .get("netpol-guard.io/config-hash")
                        .is_none()
            })
    })
    .await;
    assert_eq!(baseline_names(&fake, "team-a"), BOTH);
    // Excluding a namespace by name unmanages it too (and keep still applies).
    fake.apply_object(&namespace(
        "kube-public",
        json!({"platform.io/managed": "true"}),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        baseline_names(&fake, "kube-public").is_empty(),
        "excluded names are never managed"
    );
}

/// Found on a real API server (v1.20): every Event about a Namespace was
/// refused, and only a WARN line said so. A refused Event is now counted,
/// and the reconcile still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_counted_and_the_baseline_still_written() {
    let fake = FakeApiServer::start().await;
    fake.fail_requests(RequestMatcher::method_path("POST", "/events"), 422, 100);
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    let live = start(&fake);
    eventually("team-a baseline", || {
        baseline_names(&fake, "team-a") == BOTH
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = live.server.connect().await.get("/metrics").await.text();
        // One BaselineCreated names both policies.
        if m.contains("netpol_guard_event_failures_total{reason=\"BaselineCreated\"} 1") {
            assert!(
                m.contains("netpol_guard_reconcile_total{result=\"ok\"}"),
                "{m}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One kind the API server will not list (an RBAC gap, a missing API) no
/// longer stops the impact report: the kind is skipped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlistable_kind_is_skipped_by_the_impact_report() {
    let fake = FakeApiServer::start().await;
    fake.fail_requests(RequestMatcher::method_path("GET", "/cronjobs"), 403, 1000);
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    fake.apply_object(&deployment("team-a", "ledger", "ledger"));
    let live = start(&fake);
    eventually("an impact report", || {
        !impact_events(&fake, "team-a").is_empty()
    })
    .await;
    assert_eq!(
        impact_events(&fake, "team-a"),
        [
            "netpol-guard default-deny now isolates these workloads (no NetworkPolicy lets their traffic through): Deployment ledger"
        ]
    );
    let m = live.server.connect().await.get("/metrics").await.text();
    assert!(
        m.contains("netpol_guard_list_skipped_total{resource=\"cronjobs\"}"),
        "{m}"
    );
}

/// Issue 15, part 4: `baseline.extraPolicies`.
const EXTRA: &str = "netpol-guard-allow-prometheus-scrape";
const WITH_EXTRA: [&str; 3] = ["netpol-guard-allow-dns", EXTRA, "netpol-guard-default-deny"];

/// A config with the extra policy `name`, letting Prometheus scrape `port`.
fn extra_config(name: &str, port: u16) -> String {
    format!(
        "baseline:\n  extraPolicies:\n  - name: {name}\n    spec:\n      podSelector: {{}}\n      policyTypes: [Ingress]\n      ingress:\n      - from:\n        - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: monitoring}}}}\n          podSelector: {{matchLabels: {{app: prometheus}}}}\n        ports: [{{port: {port}}}]\n"
    )
}

fn set_config(fake: &FakeApiServer, yaml: &str) {
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "netpol-guard", "namespace": "netpol-guard"},
        "data": {"config.yaml": yaml}}));
}

fn scrape_port(fake: &FakeApiServer, ns: &str, name: &str) -> Value {
    fake.get_object(NP, "NetworkPolicy", Some(ns), name)
        .map(|p| p["spec"]["ingress"][0]["ports"][0].clone())
        .unwrap_or(Value::Null)
}

/// A developer's policies that look like netpol-guard's: one with an
/// extra-policy-like name, one also with the label (written by kubectl,
/// as the managedFields of a real API server would show). Neither is ever
/// touched.
fn lookalikes(fake: &FakeApiServer, ns: &str) {
    fake.apply_object(&json!({"apiVersion": NP, "kind": "NetworkPolicy",
        "metadata": {"name": "netpol-guard-mine", "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}}));
    fake.apply_object(&json!({"apiVersion": NP, "kind": "NetworkPolicy",
        "metadata": {"name": "netpol-guard-copied", "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "netpol-guard"},
            "annotations": {"netpol-guard.io/config-hash": "0"},
            "managedFields": [{"manager": "kubectl-client-side-apply", "operation": "Update",
                "apiVersion": NP, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {"f:podSelector": {}}}}]},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}}));
}

fn with_lookalikes(names: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = names
        .iter()
        .copied()
        .chain(["netpol-guard-copied", "netpol-guard-mine"])
        .map(String::from)
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_policies_are_generated_restored_rolled_out_and_removed() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    fake.apply_object(&namespace(
        "team-b",
        json!({"platform.io/managed": "true", "netpol-guard.io/mode": "audit"}),
    ));
    lookalikes(&fake, "team-a");
    set_config(&fake, &extra_config("allow-prometheus-scrape", 9090));
    let live = start(&fake);
    eventually("the extra policy beside the built-ins", || {
        baseline_names(&fake, "team-a") == with_lookalikes(&WITH_EXTRA)
    })
    .await;
    let extra = fake
        .get_object(NP, "NetworkPolicy", Some("team-a"), EXTRA)
        .unwrap();
    assert_eq!(
        extra["spec"],
        json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                      "podSelector": {"matchLabels": {"app": "prometheus"}}}],
            "ports": [{"protocol": "TCP", "port": 9090}]}]})
    );
    assert_eq!(
        extra["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "netpol-guard"
    );
    let deny = fake
        .get_object(
            NP,
            "NetworkPolicy",
            Some("team-a"),
            "netpol-guard-default-deny",
        )
        .unwrap();
    assert_eq!(
        extra["metadata"]["annotations"]["netpol-guard.io/config-hash"],
        deny["metadata"]["annotations"]["netpol-guard.io/config-hash"]
    );
    // Audit mode: nothing that selects pods, the extra policy included.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(baseline_names(&fake, "team-b").is_empty());

    // Edited: restored.
    let mut edited = extra.clone();
    edited["spec"]["ingress"][0]["ports"] = json!([{"protocol": "TCP", "port": 1}]);
    fake.apply_object(&edited);
    eventually("the extra policy restored", || {
        scrape_port(&fake, "team-a", EXTRA) == json!({"protocol": "TCP", "port": 9090})
    })
    .await;
    // Deleted: re-created.
    fake.delete_object(NP, "NetworkPolicy", Some("team-a"), EXTRA);
    eventually("the extra policy re-created", || {
        baseline_names(&fake, "team-a") == with_lookalikes(&WITH_EXTRA)
    })
    .await;

    // A config change rolls out.
    set_config(&fake, &extra_config("allow-prometheus-scrape", 9091));
    eventually("the new port", || {
        scrape_port(&fake, "team-a", EXTRA) == json!({"protocol": "TCP", "port": 9091})
    })
    .await;
    // Renamed: the new name comes, the old one goes.
    set_config(&fake, &extra_config("allow-metrics", 9091));
    eventually("renamed", || {
        baseline_names(&fake, "team-a")
            == with_lookalikes(&[
                "netpol-guard-allow-dns",
                "netpol-guard-allow-metrics",
                "netpol-guard-default-deny",
            ])
    })
    .await;
    // Removed from the config: deleted; the built-ins and the developer's
    // lookalikes stay.
    set_config(&fake, "mode: enforce\n");
    eventually("removed", || {
        baseline_names(&fake, "team-a") == with_lookalikes(&BOTH)
    })
    .await;
    // An invalid config (the catalog denies its extra policy) changes
    // nothing: the last good config stays in force.
    set_config(
        &fake,
        "baseline:\n  extraPolicies:\n  - name: allow-everyone\n    spec: {podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}\n",
    );
    until_metrics(&live, "the invalid config counted", |m| {
        m.contains("netpol_guard_config_reloads_total{result=\"invalid\"} 1")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(baseline_names(&fake, "team-a"), with_lookalikes(&BOTH));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaging_removes_the_extra_policies_too() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&namespace("team-a", json!({"platform.io/managed": "true"})));
    lookalikes(&fake, "team-a");
    set_config(&fake, &extra_config("allow-prometheus-scrape", 9090));
    let live = start(&fake);
    eventually("the extra policy", || {
        baseline_names(&fake, "team-a") == with_lookalikes(&WITH_EXTRA)
    })
    .await;
    fake.apply_object(&namespace("team-a", json!({})));
    eventually("all of netpol-guard's removed", || {
        baseline_names(&fake, "team-a") == with_lookalikes(&[])
    })
    .await;
    let m = live.server.connect().await.get("/metrics").await.text();
    assert!(
        m.contains("netpol_guard_baseline_changes_total{action=\"deleted\"} 3"),
        "{m}"
    );
}

/// The ServiceAccount may not write a configured extra policy (its name is
/// missing from the ClusterRole's resourceNames): a WARN at start-up naming
/// it and the refused verbs, and again for a name a config reload adds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_rbac_refuses_is_warned_about_at_start_and_on_reload() {
    let fake = FakeApiServer::start().await;
    fake.refuse_access("patch", EXTRA);
    fake.refuse_access("delete", EXTRA);
    fake.refuse_access("update", "netpol-guard-allow-metrics");
    set_config(&fake, &extra_config("allow-prometheus-scrape", 9090));
    let live = start(&fake);
    let warned = |live: &Served, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(line) = live.server.stderr.recv_timeout(Duration::from_millis(200))
                && line.contains(want)
            {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line with {want:?}");
        }
    };
    let line = warned(&live, "\"policy\":\"netpol-guard-allow-prometheus-scrape\"");
    assert!(line.contains("\"level\":\"WARN\""), "{line}");
    assert!(line.contains("\"refused\":\"patch,delete\""), "{line}");
    assert!(
        line.contains(netpol_guard::generate::access::REFUSED),
        "{line}"
    );
    assert!(fake.count_requests("POST", "/selfsubjectaccessreviews") >= 3);
    set_config(
        &fake,
        &format!(
            "{}  - name: allow-metrics\n    spec: {{podSelector: {{matchLabels: {{app: web}}}}, policyTypes: [Ingress]}}\n",
            extra_config("allow-prometheus-scrape", 9090)
        ),
    );
    let line = warned(&live, "\"policy\":\"netpol-guard-allow-metrics\"");
    assert!(line.contains("\"refused\":\"update\""), "{line}");
}

//! PolicyReports: what `build` makes validates against the CRDs shipped in
//! `manifests/crds/` (the v1alpha2 `openAPIV3Schema`, made strict the way the
//! API server's pruning is), its exact output for a small audit, and `write`
//! against the `FakeApiServer` test double, with and without the CRDs.

use netpol_guard::report::policyreport::{
    self, Outcome, ReportEntry, ReportError, ResourceRef, Severity, WriteOutcome,
};
use serde_json::{Value, json};

use crate::fake_apiserver::{FakeApiServer, RequestMatcher};
use crate::schemas;

const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
const NOW: i64 = 1_767_225_600;

// ---------------------------------------------------------------------------
// The CRD schemas
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

fn resource(api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> ResourceRef {
    ResourceRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: ns.map(str::to_string),
        name: name.into(),
        uid: None,
    }
}

fn entry(
    resource: ResourceRef,
    rule: &str,
    outcome: Outcome,
    severity: Severity,
    message: &str,
) -> ReportEntry {
    ReportEntry {
        resource,
        rule: rule.into(),
        outcome,
        severity,
        message: message.into(),
        category: "Network Segmentation".into(),
        cluster: false,
    }
}

/// A small audit: payments has a failing and a passing Deployment and a
/// warned NetworkPolicy, quiet has nothing, and one cluster-wide Cilium
/// policy fails.
fn small_audit() -> (Vec<ReportEntry>, Vec<String>) {
    let mut ledger = resource("apps/v1", "Deployment", Some("payments"), "ledger");
    ledger.uid = Some("6f1c2a4e-0000-4000-8000-000000000001".into());
    let entries = vec![
        entry(
            resource(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                Some("payments"),
                "allow-dns",
            ),
            "dns-single-protocol",
            Outcome::Warn,
            Severity::Low,
            "DNS is allowed on UDP only",
        ),
        entry(
            ledger,
            "require-network-policy",
            Outcome::Fail,
            Severity::High,
            "no NetworkPolicy selects its pods",
        ),
        entry(
            resource(
                "cilium.io/v2",
                "CiliumClusterwideNetworkPolicy",
                None,
                "open-egress",
            ),
            "world-entity",
            Outcome::Fail,
            Severity::Critical,
            "allows egress to the world entity",
        ),
        entry(
            resource("apps/v1", "Deployment", Some("payments"), "api"),
            "require-network-policy",
            Outcome::Pass,
            Severity::Info,
            "selected by NetworkPolicy payments-api",
        ),
    ];
    (entries, vec!["quiet".to_string(), "payments".to_string()])
}

/// Every outcome and severity, namespaced and cluster-scoped, with and
/// without uid.
fn varied_entries() -> Vec<ReportEntry> {
    let outcomes = [Outcome::Pass, Outcome::Fail, Outcome::Warn];
    let severities = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];
    let mut out = Vec::new();
    for (i, severity) in severities.into_iter().enumerate() {
        for (j, outcome) in outcomes.into_iter().enumerate() {
            let ns = if (i + j) % 3 == 0 {
                None
            } else {
                Some("team-a")
            };
            let mut r = resource("apps/v1", "Deployment", ns, &format!("w{i}{j}"));
            if j == 1 {
                r.uid = Some(format!("uid-{i}{j}"));
            }
            out.push(entry(r, "some-rule", outcome, severity, "a message"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

#[test]
fn build_output_validates_against_the_crd_schemas() {
    let schemas = schemas::ReportSchemas::load();
    let (entries, namespaces) = small_audit();
    let mut reports = policyreport::build(&entries, &namespaces, NOW);
    reports.extend(policyreport::build(
        &varied_entries(),
        &["team-b".to_string()],
        NOW,
    ));
    reports.extend(policyreport::build(&[], &[], NOW));
    assert_eq!(reports.len(), 3 + 3 + 1);
    for report in &reports {
        let errors = schemas.errors(report);
        assert!(errors.is_empty(), "{errors:#?}\n{report:#}");
        // What the schema does not cover (apiVersion, kind and metadata are
        // free-form there), by hand.
        assert_eq!(report["apiVersion"], API_VERSION);
        let kind = report["kind"].as_str().unwrap();
        assert!(
            ["PolicyReport", "ClusterPolicyReport"].contains(&kind),
            "{kind}"
        );
        let meta = report["metadata"].as_object().unwrap();
        assert_eq!(meta["name"], "netpol-guard");
        assert_eq!(
            meta["labels"],
            json!({"app.kubernetes.io/managed-by": "netpol-guard", "app.kubernetes.io/name": "netpol-guard"})
        );
        match kind {
            "PolicyReport" => assert!(meta["namespace"].as_str().is_some_and(|n| !n.is_empty())),
            _ => assert!(!meta.contains_key("namespace"), "{report}"),
        }
        let mut keys: Vec<&String> = meta.keys().collect();
        keys.sort();
        let expected: &[&str] = if kind == "PolicyReport" {
            &["labels", "name", "namespace"]
        } else {
            &["labels", "name"]
        };
        assert_eq!(keys, expected);
        // Every result's resources are in the report's scope.
        for r in report["results"].as_array().unwrap() {
            for res in r["resources"].as_array().unwrap() {
                assert_eq!(res.get("namespace"), meta.get("namespace"), "{r}");
            }
        }
    }
}

#[test]
fn the_schema_check_is_not_vacuous() {
    let schemas = schemas::ReportSchemas::load();
    let (entries, namespaces) = small_audit();
    let reports = policyreport::build(&entries, &namespaces, NOW);
    let payments = reports
        .iter()
        .find(|r| r["metadata"]["namespace"] == "payments")
        .unwrap();
    let cluster = reports.last().unwrap();
    assert!(schemas.errors(payments).is_empty());
    assert!(schemas.errors(cluster).is_empty());

    type Mutation = (&'static str, fn(&mut Value));
    let mutations: [Mutation; 10] = [
        ("result outside the enum", |r| {
            r["results"][0]["result"] = json!("maybe")
        }),
        ("severity outside the enum", |r| {
            r["results"][0]["severity"] = json!("severe")
        }),
        ("no policy (required)", |r| {
            r["results"][0].as_object_mut().unwrap().remove("policy");
        }),
        ("timestamp without nanos (required)", |r| {
            r["results"][0]["timestamp"]
                .as_object_mut()
                .unwrap()
                .remove("nanos");
        }),
        ("a misspelt result field (pruned by the API server)", |r| {
            r["results"][0]["severty"] = json!("high")
        }),
        ("an unknown top-level field", |r| r["spec"] = json!({})),
        ("summary count as a string", |r| {
            r["summary"]["fail"] = json!("1")
        }),
        ("scored as a string", |r| {
            r["results"][0]["scored"] = json!("true")
        }),
        ("resources as an object", |r| {
            r["results"][0]["resources"] = json!({"kind": "Pod"})
        }),
        ("an unknown field in a resource reference", |r| {
            r["results"][0]["resources"][0]["namespaces"] = json!("x")
        }),
    ];
    for (what, mutate) in mutations {
        for report in [payments, cluster] {
            let mut bad = report.clone();
            mutate(&mut bad);
            assert!(
                !schemas.errors(&bad).is_empty(),
                "{what}: {} accepted\n{bad:#}",
                report["kind"]
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Exact output
// ---------------------------------------------------------------------------

#[test]
fn build_output_is_exact_for_a_small_audit() {
    let (entries, namespaces) = small_audit();
    let labels = json!({"app.kubernetes.io/managed-by": "netpol-guard", "app.kubernetes.io/name": "netpol-guard"});
    let ts = json!({"seconds": NOW, "nanos": 0});
    let expected = json!([
        {
            "apiVersion": API_VERSION,
            "kind": "PolicyReport",
            "metadata": {"name": "netpol-guard", "namespace": "payments", "labels": labels},
            "summary": {"pass": 1, "fail": 1, "warn": 1, "error": 0, "skip": 0},
            // Sorted by kind, name, rule.
            "results": [
                {
                    "policy": "netpol-guard",
                    "rule": "require-network-policy",
                    "result": "pass",
                    "severity": "info",
                    "message": "selected by NetworkPolicy payments-api",
                    "category": "Network Segmentation",
                    "source": "netpol-guard",
                    "scored": true,
                    "timestamp": ts,
                    "resources": [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "payments", "name": "api"}]
                },
                {
                    "policy": "netpol-guard",
                    "rule": "require-network-policy",
                    "result": "fail",
                    "severity": "high",
                    "message": "no NetworkPolicy selects its pods",
                    "category": "Network Segmentation",
                    "source": "netpol-guard",
                    "scored": true,
                    "timestamp": ts,
                    "resources": [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "payments", "name": "ledger",
                                   "uid": "6f1c2a4e-0000-4000-8000-000000000001"}]
                },
                {
                    "policy": "netpol-guard",
                    "rule": "dns-single-protocol",
                    "result": "warn",
                    "severity": "low",
                    "message": "DNS is allowed on UDP only",
                    "category": "Network Segmentation",
                    "source": "netpol-guard",
                    // warn is the CRD's "non-scored" failure
                    "scored": false,
                    "timestamp": ts,
                    "resources": [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "namespace": "payments", "name": "allow-dns"}]
                }
            ]
        },
        {
            // Audited, nothing found: an empty report, not a missing one.
            "apiVersion": API_VERSION,
            "kind": "PolicyReport",
            "metadata": {"name": "netpol-guard", "namespace": "quiet", "labels": labels},
            "summary": {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0},
            "results": []
        },
        {
            "apiVersion": API_VERSION,
            "kind": "ClusterPolicyReport",
            "metadata": {"name": "netpol-guard", "labels": labels},
            "summary": {"pass": 0, "fail": 1, "warn": 0, "error": 0, "skip": 0},
            "results": [
                {
                    "policy": "netpol-guard",
                    "rule": "world-entity",
                    "result": "fail",
                    "severity": "critical",
                    "message": "allows egress to the world entity",
                    "category": "Network Segmentation",
                    "source": "netpol-guard",
                    "scored": true,
                    "timestamp": ts,
                    "resources": [{"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy", "name": "open-egress"}]
                }
            ]
        }
    ]);
    let reports = policyreport::build(&entries, &namespaces, NOW);
    assert_eq!(Value::Array(reports.clone()), expected, "{reports:#?}");
    // Pure: the same input gives the same output, whatever its order.
    let mut shuffled = entries.clone();
    shuffled.reverse();
    let mut ns = namespaces.clone();
    ns.reverse();
    assert_eq!(policyreport::build(&shuffled, &ns, NOW), reports);
}

#[test]
fn an_audit_with_nothing_still_replaces_the_cluster_report() {
    let reports = policyreport::build(&[], &[], NOW);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["kind"], "ClusterPolicyReport");
    assert_eq!(reports[0]["results"], json!([]));
    assert_eq!(
        reports[0]["summary"],
        json!({"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0})
    );
}

// ---------------------------------------------------------------------------
// write, against the fake API server
// ---------------------------------------------------------------------------

fn results_of(report: &Value) -> Vec<(String, String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["resources"][0]["name"].as_str().unwrap().to_string(),
                r["rule"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn stored(fake: &FakeApiServer, kind: &str) -> Vec<Value> {
    fake.list_objects(API_VERSION, kind)
}

/// `(method, path)` of every request that changes something.
fn writes(fake: &FakeApiServer) -> Vec<(String, String)> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| (r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn write_applies_the_reports_and_a_second_write_replaces_the_results() {
    let fake = FakeApiServer::start().await;
    fake.set_policy_reports_installed(true);
    let client = fake.client();
    let (entries, namespaces) = small_audit();
    let reports = policyreport::build(&entries, &namespaces, NOW);

    let outcome = policyreport::write(&client, &reports).await.unwrap();
    assert_eq!(
        outcome,
        WriteOutcome::Written {
            namespaced: 2,
            cluster: 1
        }
    );
    let namespaced = stored(&fake, "PolicyReport");
    assert_eq!(namespaced.len(), 2);
    let payments = namespaced
        .iter()
        .find(|r| r["metadata"]["namespace"] == "payments")
        .unwrap();
    for field in ["summary", "results"] {
        assert_eq!(payments[field], reports[0][field], "{field}");
    }
    assert_eq!(
        payments["metadata"]["labels"],
        reports[0]["metadata"]["labels"]
    );
    let quiet = namespaced
        .iter()
        .find(|r| r["metadata"]["namespace"] == "quiet")
        .unwrap();
    assert_eq!(quiet["results"], json!([]));
    let cluster = stored(&fake, "ClusterPolicyReport");
    assert_eq!(cluster.len(), 1);
    assert_eq!(cluster[0]["metadata"]["name"], "netpol-guard");
    assert_eq!(
        results_of(&cluster[0]),
        [(
            "open-egress".to_string(),
            "world-entity".to_string(),
            "fail".to_string()
        )]
    );

    // Every write is a forced server-side apply by netpol-guard.
    let patches: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 3);
    for p in &patches {
        assert_eq!(
            p.content_type.as_deref(),
            Some("application/apply-patch+yaml"),
            "{p:?}"
        );
        assert_eq!(p.field_manager.as_deref(), Some("netpol-guard"), "{p:?}");
        assert!(p.query.contains("force=true"), "{p:?}");
    }

    // The ledger gets its policy, the Cilium policy is fixed, and a new
    // finding appears: the results are replaced, not appended to.
    fake.clear_requests();
    let mut ledger = resource("apps/v1", "Deployment", Some("payments"), "ledger");
    ledger.uid = Some("6f1c2a4e-0000-4000-8000-000000000001".into());
    let second = vec![
        entry(
            ledger,
            "require-network-policy",
            Outcome::Pass,
            Severity::Info,
            "selected by NetworkPolicy ledger",
        ),
        entry(
            resource("apps/v1", "StatefulSet", Some("quiet"), "db"),
            "require-network-policy",
            Outcome::Fail,
            Severity::High,
            "no NetworkPolicy selects its pods",
        ),
    ];
    let reports = policyreport::build(&second, &namespaces, NOW + 600);
    policyreport::write(&client, &reports).await.unwrap();
    let namespaced = stored(&fake, "PolicyReport");
    assert_eq!(namespaced.len(), 2);
    let by_ns = |ns: &str| {
        namespaced
            .iter()
            .find(|r| r["metadata"]["namespace"] == ns)
            .unwrap()
            .clone()
    };
    assert_eq!(
        results_of(&by_ns("payments")),
        [(
            "ledger".to_string(),
            "require-network-policy".to_string(),
            "pass".to_string()
        )]
    );
    assert_eq!(
        by_ns("payments")["summary"],
        json!({"pass": 1, "fail": 0, "warn": 0, "error": 0, "skip": 0})
    );
    assert_eq!(
        by_ns("payments")["results"][0]["timestamp"]["seconds"],
        NOW + 600
    );
    assert_eq!(
        results_of(&by_ns("quiet")),
        [(
            "db".to_string(),
            "require-network-policy".to_string(),
            "fail".to_string()
        )]
    );
    let cluster = stored(&fake, "ClusterPolicyReport");
    assert_eq!(cluster[0]["results"], json!([]));
    assert_eq!(cluster[0]["summary"]["fail"], 0);
    // Applied in place: no deletes, no creates by POST.
    assert!(
        writes(&fake).iter().all(|(m, _)| m == "PATCH"),
        "{:?}",
        writes(&fake)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn write_deletes_only_its_own_reports_of_namespaces_no_longer_audited() {
    let fake = FakeApiServer::start().await;
    fake.set_policy_reports_installed(true);
    let client = fake.client();
    let labels = json!({"app.kubernetes.io/managed-by": "netpol-guard"});
    let report = |ns: &str, name: &str, labels: Value| {
        json!({"apiVersion": API_VERSION, "kind": "PolicyReport",
               "metadata": {"name": name, "namespace": ns, "labels": labels},
               "results": []})
    };
    // netpol-guard's report of a namespace the last audit covered.
    fake.apply_object(&report("retired", "netpol-guard", labels.clone()));
    // Not ours: another tool's report, one with our name but not our label,
    // one with our label but another name.
    fake.apply_object(&report(
        "retired",
        "polr-ns-retired",
        json!({"app.kubernetes.io/managed-by": "kyverno"}),
    ));
    fake.apply_object(&report("other", "netpol-guard", json!({})));
    fake.apply_object(&report("other", "hand-made", labels.clone()));

    let (entries, namespaces) = small_audit();
    let reports = policyreport::build(&entries, &namespaces, NOW);

    // A partial write deletes nothing.
    policyreport::write_partial(&client, &reports)
        .await
        .unwrap();
    assert!(
        writes(&fake).iter().all(|(m, _)| m == "PATCH"),
        "{:?}",
        writes(&fake)
    );
    assert!(
        fake.get_object(API_VERSION, "PolicyReport", Some("retired"), "netpol-guard")
            .is_some()
    );

    fake.clear_requests();
    policyreport::write(&client, &reports).await.unwrap();
    let mut left: Vec<String> = stored(&fake, "PolicyReport")
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["metadata"]["namespace"].as_str().unwrap(),
                r["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "other/hand-made",
            "other/netpol-guard",
            "payments/netpol-guard",
            "quiet/netpol-guard",
            "retired/polr-ns-retired",
        ]
    );
    let deletes: Vec<_> = writes(&fake)
        .into_iter()
        .filter(|(m, _)| m == "DELETE")
        .collect();
    assert_eq!(
        deletes,
        [(
            "DELETE".to_string(),
            "/apis/wgpolicyk8s.io/v1alpha2/namespaces/retired/policyreports/netpol-guard"
                .to_string()
        )]
    );
    // The stale reports are found with one labelled list.
    let lists: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/apis/wgpolicyk8s.io/v1alpha2/policyreports")
        .collect();
    assert_eq!(lists.len(), 1);
    assert!(lists[0].query.contains("labelSelector="), "{:?}", lists[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_crds_write_says_so_and_writes_nothing() {
    let fake = FakeApiServer::start().await;
    let client = fake.client();
    let (entries, namespaces) = small_audit();
    let reports = policyreport::build(&entries, &namespaces, NOW);
    let outcome = policyreport::write(&client, &reports).await.unwrap();
    assert_eq!(outcome, WriteOutcome::CrdAbsent);
    // One discovery request, nothing else.
    let requests: Vec<(String, String)> = fake
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        requests,
        [(
            "GET".to_string(),
            "/apis/wgpolicyk8s.io/v1alpha2".to_string()
        )]
    );
    assert!(stored(&fake, "PolicyReport").is_empty());
    assert!(stored(&fake, "ClusterPolicyReport").is_empty());

    // Installed later: the next write finds them.
    fake.set_policy_reports_installed(true);
    assert_eq!(
        policyreport::write(&client, &reports).await.unwrap(),
        WriteOutcome::Written {
            namespaced: 2,
            cluster: 1
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_error_names_the_report_and_carries_the_api_message() {
    let fake = FakeApiServer::start().await;
    fake.set_policy_reports_installed(true);
    let client = fake.client();
    let (entries, namespaces) = small_audit();
    let reports = policyreport::build(&entries, &namespaces, NOW);
    fake.fail_requests(
        RequestMatcher::method_path("PATCH", "/namespaces/payments/policyreports/"),
        403,
        1,
    );
    let err = policyreport::write(&client, &reports).await.unwrap_err();
    let text = err.to_string();
    match &err {
        ReportError::Api {
            verb,
            resource,
            code,
            message,
            ..
        } => {
            assert_eq!(*verb, "apply");
            assert_eq!(resource, "PolicyReport payments/netpol-guard");
            assert_eq!(*code, Some(403));
            assert!(message.contains("injected failure (403"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        text.contains("PolicyReport payments/netpol-guard") && text.contains("injected failure"),
        "{text}"
    );
    // A 403 would fail for every report: it stops at once (payments sorts
    // first, so nothing was written).
    assert_eq!(fake.count_requests("PATCH", "/policyreports/"), 1);
    assert!(stored(&fake, "PolicyReport").is_empty());

    // A discovery failure is an error too, not "CRD absent".
    fake.fail_requests(
        RequestMatcher::method_path("GET", "/apis/wgpolicyk8s.io/v1alpha2"),
        500,
        1,
    );
    match policyreport::write(&client, &reports).await {
        Err(ReportError::Api { verb, code, .. }) => {
            assert_eq!(verb, "discover");
            assert_eq!(code, Some(500));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_the_api_server_rejects_does_not_hold_back_the_others() {
    let fake = FakeApiServer::start().await;
    fake.set_policy_reports_installed(true);
    let client = fake.client();
    let (entries, namespaces) = small_audit();
    let reports = policyreport::build(&entries, &namespaces, NOW);
    fake.fail_requests(
        RequestMatcher::method_path("PATCH", "/namespaces/payments/policyreports/"),
        422,
        1,
    );
    let err = policyreport::write(&client, &reports).await.unwrap_err();
    assert!(
        matches!(&err, ReportError::Api { code: Some(422), resource, .. } if resource == "PolicyReport payments/netpol-guard"),
        "{err:?}"
    );
    // quiet and the cluster report were still written.
    assert_eq!(stored(&fake, "PolicyReport").len(), 1);
    assert_eq!(stored(&fake, "ClusterPolicyReport").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn write_refuses_values_that_are_not_reports_before_any_request() {
    let fake = FakeApiServer::start().await;
    fake.set_policy_reports_installed(true);
    let client = fake.client();
    let mut reports = policyreport::build(&[], &["a".to_string()], NOW);
    reports.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a"}}));
    let err = policyreport::write(&client, &reports).await.unwrap_err();
    assert!(matches!(err, ReportError::NotAReport(_)), "{err:?}");
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    // Nothing to write: no request either.
    assert_eq!(
        policyreport::write(&client, &[]).await.unwrap(),
        WriteOutcome::Written {
            namespaced: 0,
            cluster: 0
        }
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_on_the_first_apply_means_the_crds_went_away() {
    let fake = FakeApiServer::start().await;
    fake.set_policy_reports_installed(true);
    let client = fake.client();
    let (entries, namespaces) = small_audit();
    let reports = policyreport::build(&entries, &namespaces, NOW);
    // Discovery still lists them, the apply finds no such resource.
    fake.fail_requests(
        RequestMatcher::method_path("PATCH", "/policyreports/"),
        404,
        1,
    );
    assert_eq!(
        policyreport::write(&client, &reports).await.unwrap(),
        WriteOutcome::CrdAbsent
    );
    assert_eq!(writes(&fake).len(), 1, "{:?}", writes(&fake));
    // After a report is written, a 404 is an error like any other.
    fake.clear_requests();
    fake.fail_requests(
        RequestMatcher::method_path("PATCH", "/namespaces/quiet/policyreports/"),
        404,
        1,
    );
    match policyreport::write(&client, &reports).await {
        Err(ReportError::Api { code, resource, .. }) => {
            assert_eq!(code, Some(404));
            assert_eq!(resource, "PolicyReport quiet/netpol-guard");
        }
        other => panic!("{other:?}"),
    }
}

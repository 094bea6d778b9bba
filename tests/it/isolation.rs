//! Issue 15, part 1: a policy without rules that selects specific pods is
//! their team's decision that they talk to nobody, and covers them in the
//! directions of its policyTypes; one that selects the whole namespace only
//! isolates, and does not. The same in the webhook, `check` and `audit`,
//! for every workload kind.

use std::path::Path;
use std::process::Command;

use netpol_guard::admission::{AdmissionRequest, GroupVersionKind, Operation};
use netpol_guard::cluster::ClusterView;
use netpol_guard::config::Settings;
use netpol_guard::engine::{self, Verdict};
use netpol_guard::rules::{Action, RuleId};
use serde_json::{Value, json};

use crate::fake_apiserver::FakeApiServer;

/// The eight kinds the webhook judges: (group, version, kind).
const KINDS: [(&str, &str, &str); 8] = [
    ("", "v1", "Pod"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "DaemonSet"),
    ("apps", "v1", "ReplicaSet"),
    ("", "v1", "ReplicationController"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
];

/// A workload of `kind` in namespace `batch` whose pods carry `app: quiet`.
fn workload(group: &str, version: &str, kind: &str) -> Value {
    let api = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let labels = json!({"app": "quiet"});
    let pod_spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    let template = json!({"metadata": {"labels": labels}, "spec": pod_spec});
    let spec = match kind {
        "Pod" => pod_spec,
        "CronJob" => {
            json!({"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}})
        }
        "Job" | "ReplicationController" => json!({"template": template}),
        _ => json!({"selector": {"matchLabels": labels}, "template": template}),
    };
    let mut metadata = json!({"name": "quiet", "namespace": "batch"});
    if kind == "Pod" {
        metadata["labels"] = labels;
    }
    json!({"apiVersion": api, "kind": kind, "metadata": metadata, "spec": spec})
}

fn create(group: &str, version: &str, kind: &str) -> AdmissionRequest {
    AdmissionRequest {
        uid: "u".into(),
        kind: GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        },
        sub_resource: None,
        name: Some("quiet".into()),
        namespace: Some("batch".into()),
        operation: Operation::Create,
        user_info: Default::default(),
        object: Some(workload(group, version, kind)),
        old_object: None,
        dry_run: None,
    }
}

fn policy(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "batch"}, "spec": spec})
}

/// A team's default-deny of the whole namespace (not netpol-guard's).
fn namespace_deny() -> Value {
    policy(
        "deny-all",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    )
}

/// Isolates exactly the `app: quiet` pods, in `types`.
fn quiet_isolation(selector: Value, types: &[&str]) -> Value {
    policy(
        "quiet-no-network",
        json!({"podSelector": selector, "policyTypes": types}),
    )
}

fn namespace() -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "batch", "labels": {"platform.io/managed": "true"}}})
}

fn view(policies: &[Value]) -> ClusterView {
    let mut v = ClusterView::new();
    v.add(&namespace()).unwrap();
    for p in policies {
        v.add(p).unwrap();
    }
    v
}

fn decide(kind: (&str, &str, &str), policies: &[Value], settings: &Settings) -> Verdict {
    engine::decide(&create(kind.0, kind.1, kind.2), &view(policies), settings).unwrap()
}

fn quiet_labels() -> Value {
    json!({"matchLabels": {"app": "quiet"}})
}

#[test]
fn every_kind_is_covered_by_a_policy_that_isolates_its_pods_deliberately() {
    let policies = [
        namespace_deny(),
        quiet_isolation(quiet_labels(), &["Ingress", "Egress"]),
    ];
    for kind in KINDS {
        let v = decide(kind, &policies, &Settings::default());
        assert_eq!(v, Verdict::allow(), "{}", kind.2);
    }
}

#[test]
fn every_kind_is_denied_when_only_the_whole_namespace_is_isolated() {
    for kind in KINDS {
        let v = decide(kind, &[namespace_deny()], &Settings::default());
        assert_eq!(
            v.findings
                .iter()
                .map(|(f, a)| (f.rule, *a))
                .collect::<Vec<_>>(),
            [(RuleId::RequireNetworkPolicy, Action::Deny)],
            "{}",
            kind.2
        );
        let m = v.denial_message().unwrap();
        assert!(
            m.contains(&format!(
                "require-network-policy: {} batch/quiet: no NetworkPolicy selects its pods (pod labels: app=quiet",
                kind.2
            )),
            "{m}"
        );
        assert!(
            m.contains("The 1 policy here that only isolate the whole namespace (such as netpol-guard's default-deny and DNS baseline, or a rule-less policy with podSelector {}) do not count; a rule-less policy that selects these pods by label would"),
            "{m}"
        );
    }
}

#[test]
fn only_positive_requirements_make_a_selector_specific() {
    let deployment = KINDS[1];
    let specific = [
        quiet_labels(),
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["quiet", "loud"]}]}),
        json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
        // A positive requirement among negative ones is enough.
        json!({"matchExpressions": [
            {"key": "app", "operator": "Exists"},
            {"key": "tier", "operator": "DoesNotExist"}]}),
    ];
    for sel in specific {
        let v = decide(
            deployment,
            &[quiet_isolation(sel.clone(), &["Ingress"])],
            &Settings::default(),
        );
        assert_eq!(v, Verdict::allow(), "{sel}");
    }
    // Only NotIn / DoesNotExist: nearly every pod, so like `{}`; and the
    // pods' isolation is counted as namespace-wide in the message.
    let nearly_everything = [
        json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
        json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
        json!({}),
    ];
    for sel in nearly_everything {
        let v = decide(
            deployment,
            &[quiet_isolation(sel.clone(), &["Ingress", "Egress"])],
            &Settings::default(),
        );
        assert!(!v.allowed(), "{sel}");
        assert!(
            v.denial_message()
                .unwrap()
                .contains("The 1 policy here that only isolate the whole namespace"),
            "{sel}"
        );
    }
    // A specific selector that does not select the pods covers nothing.
    let other = json!({"matchLabels": {"app": "loud"}});
    let v = decide(
        deployment,
        &[quiet_isolation(other, &["Ingress", "Egress"])],
        &Settings::default(),
    );
    assert!(!v.allowed());
}

#[test]
fn directions_still_apply_to_deliberate_isolation() {
    let deployment = KINDS[1];
    let both = Settings::from_yaml("directions: both\n").unwrap();
    let ingress_only = quiet_isolation(quiet_labels(), &["Ingress"]);
    let v = decide(deployment, std::slice::from_ref(&ingress_only), &both);
    assert!(!v.allowed());
    assert!(
        v.denial_message().unwrap().contains(
            "NetworkPolicy quiet-no-network covers its pods' ingress but no policy covers their egress"
        ),
        "{:?}",
        v.denial_message()
    );
    let egress = Settings::from_yaml("directions: egress\n").unwrap();
    assert!(!decide(deployment, std::slice::from_ref(&ingress_only), &egress).allowed());
    let ingress = Settings::from_yaml("directions: ingress\n").unwrap();
    assert!(decide(deployment, &[ingress_only], &ingress).allowed());
    assert!(
        decide(
            deployment,
            &[quiet_isolation(quiet_labels(), &["Ingress", "Egress"])],
            &both
        )
        .allowed()
    );
    // No policyTypes: Ingress only (no egress rules), so egress is not
    // isolated and not covered.
    let untyped = policy("quiet-no-network", json!({"podSelector": quiet_labels()}));
    assert!(decide(deployment, std::slice::from_ref(&untyped), &ingress).allowed());
    assert!(!decide(deployment, &[untyped], &egress).allowed());
    // Per direction: ingress rules, and egress listed without rules, on a
    // specific selector: egress deliberately none, so both are covered.
    let mixed = policy(
        "quiet-no-network",
        json!({"podSelector": quiet_labels(), "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "scheduler"}}}]}]}),
    );
    assert!(decide(deployment, &[mixed], &both).allowed());
}

#[test]
fn netpol_guards_own_baseline_never_covers() {
    // The baseline as the offline manifests carry it: name and label.
    let mut deny = namespace_deny();
    deny["metadata"]["name"] = json!("netpol-guard-default-deny");
    deny["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "netpol-guard"});
    let v = decide(KINDS[1], &[deny], &Settings::default());
    assert!(!v.allowed());
    assert!(
        v.denial_message()
            .unwrap()
            .contains("The 1 policy here that only isolate the whole namespace")
    );
}

fn run(args: &[&str], dir: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The namespace, the workloads of every kind (each named after its kind)
/// and `policies`.
fn objects(policies: &[Value]) -> Vec<Value> {
    let mut docs = vec![namespace()];
    docs.extend(policies.iter().cloned());
    for (g, v, k) in KINDS {
        let mut w = workload(g, v, k);
        w["metadata"]["name"] = json!(k.to_lowercase());
        docs.push(w);
    }
    docs
}

/// `check` over the objects as manifests, and `audit` of a fake API server
/// that holds them: (exit code, output) of each.
async fn check_and_audit(policies: &[Value]) -> [(i32, String); 2] {
    let dir = tempfile::tempdir().unwrap();
    let docs = objects(policies);
    let yaml: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect();
    std::fs::write(dir.path().join("all.yaml"), yaml.join("---\n")).unwrap();
    let check = run(&["check", "all.yaml"], dir.path());
    let fake = FakeApiServer::start().await;
    for d in &docs {
        fake.apply_object(d);
    }
    fake.write_kubeconfig(dir.path().join("kubeconfig"))
        .unwrap();
    std::fs::write(dir.path().join("config.yaml"), "directions: any\n").unwrap();
    let path = dir.path().to_path_buf();
    let audit = tokio::task::spawn_blocking(move || {
        run(
            &[
                "audit",
                "--kubeconfig",
                "kubeconfig",
                "--config",
                "config.yaml",
            ],
            &path,
        )
    })
    .await
    .unwrap();
    [check, audit]
}

#[tokio::test]
async fn check_and_audit_count_deliberate_isolation_for_every_kind() {
    let covered = check_and_audit(&[
        namespace_deny(),
        quiet_isolation(quiet_labels(), &["Ingress", "Egress"]),
    ])
    .await;
    for (code, out) in &covered {
        assert_eq!(*code, 0, "{out}");
        assert!(!out.contains("require-network-policy"), "{out}");
    }
    // The audit's table: all eight covered (the bare ReplicaSet and Pod are
    // judged themselves).
    assert!(
        covered[1].1.contains(
            "batch      managed  enforce         2  missing           8        8          0       0"
        ),
        "{}",
        covered[1].1
    );

    let [(code, check), (audit_code, audit)] = check_and_audit(&[namespace_deny()]).await;
    assert_eq!(code, 1, "{check}");
    assert_eq!(audit_code, 1, "{audit}");
    for (_, _, kind) in KINDS {
        let name = kind.to_lowercase();
        assert!(
            check.contains(&format!("{kind} batch/{name}: DENY require-network-policy")),
            "{kind}: {check}"
        );
        assert!(
            audit.contains(&format!("uncovered {kind} {name}: no policy covers its pods; require-network-policy would deny it")),
            "{kind}: {audit}"
        );
    }
}

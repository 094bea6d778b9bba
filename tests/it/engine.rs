//! The decision engine's behaviour on real AdmissionReview shapes (the shared
//! fixtures, varied), called directly: exact verdicts and message fragments.

use netpol_guard::admission::{self, AdmissionRequest, Operation};
use netpol_guard::cluster::ClusterView;
use netpol_guard::config::Settings;
use netpol_guard::engine::{self, Verdict};
use netpol_guard::manifests;
use netpol_guard::report::audit;
use netpol_guard::rules::{Action, RuleId};
use serde_json::json;

use crate::common;

fn view() -> ClusterView {
    let mut v = ClusterView::new();
    for o in manifests::load_paths(&[common::fixtures_cluster()]).unwrap() {
        v.add(&o.object).unwrap();
    }
    v
}

fn request(name: &str) -> AdmissionRequest {
    let body = std::fs::read(common::shared(&format!("fixtures/admission/{name}.json"))).unwrap();
    admission::parse_review(&body).unwrap()
}

fn decide(req: &AdmissionRequest, settings: &Settings) -> Verdict {
    engine::decide(req, &view(), settings).unwrap()
}

fn rules_of(v: &Verdict) -> Vec<(RuleId, Action)> {
    v.findings.iter().map(|(f, a)| (f.rule, *a)).collect()
}

fn settings(yaml: &str) -> Settings {
    Settings::from_yaml(yaml).unwrap()
}

#[test]
fn update_of_an_already_uncovered_workload_is_allowed_with_a_warning() {
    let mut req = request("deployment-create-uncovered");
    req.operation = Operation::Update;
    req.old_object = req.object.clone();
    let v = decide(&req, &Settings::default());
    assert!(v.allowed());
    assert_eq!(rules_of(&v), [(RuleId::RequireNetworkPolicy, Action::Warn)]);
    assert_eq!(
        v.warnings(),
        [
            "require-network-policy: Deployment payments/ledger has no NetworkPolicy; this update is allowed because it already had none, but new workloads like it are denied. Add a NetworkPolicy for its pods."
        ]
    );
}

#[test]
fn update_that_moves_a_covered_workload_out_of_coverage_is_denied() {
    let mut req = request("deployment-update-image");
    assert!(
        decide(&req, &Settings::default()).allowed(),
        "the fixture itself is covered"
    );
    let obj = req.object.as_mut().unwrap();
    obj["spec"]["template"]["metadata"]["labels"] = json!({"app": "payments-api-v2"});
    let v = decide(&req, &Settings::default());
    assert!(!v.allowed());
    assert!(
        v.denial_message()
            .unwrap()
            .contains("pod labels: app=payments-api-v2")
    );
}

#[test]
fn subresources_deletes_and_connect_are_allowed() {
    let mut req = request("deployment-create-uncovered");
    req.sub_resource = Some("status".into());
    assert_eq!(decide(&req, &Settings::default()), Verdict::allow());
    req.sub_resource = Some("scale".into());
    assert_eq!(decide(&req, &Settings::default()), Verdict::allow());
    let req = request("deployment-delete");
    assert_eq!(req.operation, Operation::Delete);
    assert_eq!(decide(&req, &Settings::default()), Verdict::allow());
}

#[test]
fn dry_run_gets_the_same_verdict() {
    let wet = decide(
        &request("deployment-create-uncovered"),
        &Settings::default(),
    );
    let dry = decide(
        &request("deployment-create-dry-run-uncovered"),
        &Settings::default(),
    );
    assert_eq!(rules_of(&wet), rules_of(&dry));
    assert!(!dry.allowed());
}

#[test]
fn controller_owned_pods_are_skipped_bare_pods_are_judged() {
    assert_eq!(
        decide(&request("pod-create-controlled"), &Settings::default()),
        Verdict::allow()
    );
    let v = decide(&request("pod-create-bare-debug"), &Settings::default());
    assert_eq!(rules_of(&v), [(RuleId::RequireNetworkPolicy, Action::Deny)]);
    assert!(
        v.denial_message().unwrap().contains(
            "Pod payments/debug: no NetworkPolicy selects its pods (pod labels: run=debug)"
        )
    );
    // ownerReferences without controller: true do not exempt a pod.
    let mut req = request("pod-create-controlled");
    req.object.as_mut().unwrap()["metadata"]["ownerReferences"][0]["controller"] = json!(false);
    assert!(!decide(&req, &Settings::default()).allowed());
}

#[test]
fn job_and_cronjob_are_judged_by_their_pod_templates() {
    let v = decide(&request("job-create-uncovered"), &Settings::default());
    let m = v.denial_message().unwrap();
    assert!(m.contains("Job payments/migrate-db"), "{m}");
    assert!(m.contains("batch.kubernetes.io/job-name=migrate-db"), "{m}");
    let v = decide(&request("cronjob-create-uncovered"), &Settings::default());
    assert!(
        v.denial_message()
            .unwrap()
            .contains("CronJob payments/nightly-report")
    );
}

#[test]
fn excluded_namespaces_are_never_managed_even_when_labelled() {
    let mut req = request("deployment-create-uncovered");
    let s = settings("managedNamespaces:\n  exclude: [payments]\n");
    assert_eq!(decide(&req, &s), Verdict::allow());
    // ... and a namespace is managed only when its labels match the selector.
    let s = settings("managedNamespaces:\n  selector:\n    matchLabels: {team: payments}\n");
    assert!(!decide(&req, &s).allowed());
    req.namespace = Some("legacy".into());
    assert_eq!(decide(&req, &s), Verdict::allow());
}

#[test]
fn unmanaged_and_unknown_namespaces_are_allowed() {
    assert_eq!(
        decide(
            &request("deployment-create-unmanaged-namespace"),
            &Settings::default()
        ),
        Verdict::allow()
    );
    let mut req = request("deployment-create-uncovered");
    req.namespace = Some("does-not-exist".into());
    assert_eq!(decide(&req, &Settings::default()), Verdict::allow());
}

#[test]
fn rule_action_warn_and_off_change_the_verdict() {
    let req = request("deployment-create-uncovered");
    let v = decide(&req, &settings("rules:\n  require-network-policy: warn\n"));
    assert!(v.allowed());
    assert_eq!(v.warnings().len(), 1);
    assert!(v.warnings()[0].starts_with("require-network-policy: Deployment payments/ledger"));
    let v = decide(&req, &settings("rules:\n  require-network-policy: off\n"));
    assert_eq!(v, Verdict::allow());
}

#[test]
fn directions_config_uses_effective_policy_types() {
    // payments-api grants ingress and egress; postgres grants ingress only.
    let egress = settings("directions: egress\n");
    assert!(decide(&request("deployment-create-covered"), &egress).allowed());
    let v = decide(&request("statefulset-create-covered"), &egress);
    assert!(!v.allowed());
    assert!(
        v.denial_message()
            .unwrap()
            .contains("no NetworkPolicy grants egress to its pods")
    );
    let both = settings("directions: both\n");
    assert!(decide(&request("deployment-create-covered"), &both).allowed());
    let v = decide(&request("statefulset-create-covered"), &both);
    assert!(v.denial_message().unwrap().contains(
        "NetworkPolicy postgres covers its pods' ingress but no policy covers their egress"
    ));
    assert!(
        decide(
            &request("statefulset-create-covered"),
            &settings("directions: ingress\n")
        )
        .allowed()
    );
}

#[test]
fn a_cilium_policy_covers_a_workload() {
    let req = request("deployment-create-uncovered");
    let mut v = view();
    v.add(
        &json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "ledger", "namespace": "payments"},
        "spec": {"endpointSelector": {"matchLabels": {"k8s:app": "ledger"}},
            "egress": [{"toEndpoints": [{"matchLabels": {"app": "postgres"}}]}]}}),
    )
    .unwrap();
    assert!(
        engine::decide(&req, &v, &Settings::default())
            .unwrap()
            .allowed()
    );
    let mut v = view();
    v.add(&json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "ledger-everywhere"},
        "spec": {"endpointSelector": {"matchLabels": {"app": "ledger", "k8s:io.kubernetes.pod.namespace": "payments"}},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "api"}}]}]}}))
        .unwrap();
    assert!(
        engine::decide(&req, &v, &Settings::default())
            .unwrap()
            .allowed()
    );
}

/// Found on a real API server: with `--use-service-account-credentials=false`
/// the namespace controller deletes a namespace's contents under the
/// controller manager's own user, whatever a distribution names it. Denying
/// it left the namespace in Terminating forever. While the namespace is
/// terminating a baseline DELETE goes through, whoever sends it; an UPDATE
/// does not.
#[test]
fn baseline_delete_is_allowed_in_a_terminating_namespace_whoever_sends_it() {
    let mut req = request("networkpolicy-delete-baseline");
    req.user_info.username = "e2e:controller-manager".into();
    let mut v = view();
    assert!(!v.is_terminating("payments"));
    assert_eq!(
        rules_of(&engine::decide(&req, &v, &Settings::default()).unwrap()),
        [(RuleId::BaselineProtected, Action::Deny)],
        "a live namespace keeps its baseline"
    );
    v.add(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "payments", "labels": {"platform.io/managed": "true"},
            "deletionTimestamp": "2026-12-01T10:00:00Z"}}))
        .unwrap();
    assert!(v.is_terminating("payments"));
    assert_eq!(
        engine::decide(&req, &v, &Settings::default()).unwrap(),
        Verdict::allow()
    );
    let mut update = req.clone();
    update.operation = Operation::Update;
    update.object = update.old_object.clone();
    assert_eq!(
        rules_of(&engine::decide(&update, &v, &Settings::default()).unwrap()),
        [(RuleId::BaselineProtected, Action::Deny)],
        "only deletes are let through a terminating namespace"
    );
}

#[test]
fn baseline_protection_lets_netpol_guard_and_the_namespace_controller_through() {
    let req = request("networkpolicy-delete-baseline");
    let v = decide(&req, &Settings::default());
    assert_eq!(rules_of(&v), [(RuleId::BaselineProtected, Action::Deny)]);
    let m = v.denial_message().unwrap();
    assert!(m.contains("baseline-protected: alice@example.com may not delete NetworkPolicy payments/netpol-guard-default-deny"), "{m}");
    for user in [
        "system:serviceaccount:netpol-guard:netpol-guard",
        "system:serviceaccount:kube-system:namespace-controller",
        // kube-controller-manager --use-service-account-credentials=false
        "system:kube-controller-manager",
    ] {
        let mut r = req.clone();
        r.user_info.username = user.into();
        assert_eq!(decide(&r, &Settings::default()), Verdict::allow(), "{user}");
    }
    // The configured service account is the one trusted.
    let mut r = req.clone();
    r.user_info.username = "system:serviceaccount:ops:guard".into();
    assert_eq!(
        decide(
            &r,
            &settings("serviceAccount: system:serviceaccount:ops:guard\n")
        ),
        Verdict::allow()
    );
    // In an unmanaged namespace the label protects nothing.
    let mut r = req.clone();
    r.namespace = Some("legacy".into());
    assert_eq!(decide(&r, &Settings::default()), Verdict::allow());
    // An UPDATE is protected too.
    let mut r = req.clone();
    r.operation = Operation::Update;
    r.object = r.old_object.clone();
    assert!(
        decide(&r, &Settings::default())
            .denial_message()
            .unwrap()
            .contains("may not change")
    );
}

/// Found by an adversarial review: a developer could create a policy with a
/// baseline name (in audit mode, or before the namespace was managed), or
/// label any policy as netpol-guard's. The names are reserved by name alone
/// in managed namespaces, CREATE included, in audit mode too; the label is
/// netpol-guard's alone everywhere.
#[test]
fn reserved_names_and_the_label_are_netpol_guards_alone() {
    let delete = request("networkpolicy-delete-baseline");
    let squat = |name: &str, labels: serde_json::Value| {
        let mut r = delete.clone();
        r.operation = Operation::Create;
        r.name = Some(name.into());
        r.object = Some(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "payments", "labels": labels},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}}),
        );
        r.old_object = None;
        r
    };
    for name in ["netpol-guard-default-deny", "netpol-guard-allow-dns"] {
        let r = squat(name, json!({}));
        for settings in [
            Settings::default(),
            settings(
                "mode: audit
",
            ),
        ] {
            let v = decide(&r, &settings);
            assert_eq!(
                rules_of(&v),
                [(RuleId::BaselineProtected, Action::Deny)],
                "{name}"
            );
            assert!(
                v.denial_message().unwrap().starts_with(&format!(
                    "netpol-guard: baseline-protected: alice@example.com may not create NetworkPolicy payments/{name}: the name is reserved for netpol-guard's baseline in managed namespace payments. Give your policy another name."
                )),
                "{:?}",
                v.denial_message()
            );
        }
        // netpol-guard itself may.
        let mut ours = r.clone();
        ours.user_info.username = "system:serviceaccount:netpol-guard:netpol-guard".into();
        assert_eq!(decide(&ours, &Settings::default()), Verdict::allow());
        // In an unmanaged namespace the name is free.
        let mut free = r.clone();
        free.namespace = Some("legacy".into());
        free.object.as_mut().unwrap()["metadata"]["namespace"] = json!("legacy");
        assert_eq!(decide(&free, &Settings::default()), Verdict::allow());
    }
    // The label, under any name, in any namespace.
    let labelled = json!({"app.kubernetes.io/managed-by": "netpol-guard"});
    for ns in ["payments", "legacy"] {
        let mut r = squat("allow-web", labelled.clone());
        r.namespace = Some(ns.into());
        let v = decide(&r, &Settings::default());
        assert_eq!(
            rules_of(&v),
            [(RuleId::BaselineProtected, Action::Deny)],
            "{ns}"
        );
        assert!(
            v.denial_message().unwrap().contains(&format!(
                "may not label NetworkPolicy {ns}/allow-web app.kubernetes.io/managed-by=netpol-guard"
            )),
            "{:?}",
            v.denial_message()
        );
        // An update that keeps a label the object already had is not setting it.
        let mut keep = r.clone();
        keep.operation = Operation::Update;
        keep.old_object = keep.object.clone();
        assert_eq!(
            decide(&keep, &Settings::default()),
            Verdict::allow(),
            "{ns}"
        );
    }
    // A labelled impostor is an ordinary policy: deletable.
    let mut impostor = delete.clone();
    impostor.name = Some("allow-web".into());
    impostor.old_object = Some(
        json!({"metadata": {"name": "allow-web", "namespace": "payments",
        "labels": {"app.kubernetes.io/managed-by": "netpol-guard"}}}),
    );
    assert_eq!(decide(&impostor, &Settings::default()), Verdict::allow());
}

/// Issue 15, part 4: a configured `baseline.extraPolicies` entry's name is
/// reserved like the built-ins' (in audit mode too), and only while it is
/// configured.
#[test]
fn an_extra_baseline_policys_name_is_protected_like_the_built_ins() {
    const EXTRA: &str = "baseline:\n  extraPolicies:\n  - name: allow-prometheus-scrape\n    spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}], ports: [{port: 9090}]}]}\n";
    let name = "netpol-guard-allow-prometheus-scrape";
    let delete = request("networkpolicy-delete-baseline");
    let object = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "payments"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}});
    let mut create = delete.clone();
    create.operation = Operation::Create;
    create.name = Some(name.into());
    create.object = Some(object.clone());
    create.old_object = None;
    let mut update = create.clone();
    update.operation = Operation::Update;
    update.old_object = Some(object.clone());
    let mut remove = delete.clone();
    remove.name = Some(name.into());
    remove.old_object = Some(object);
    for (req, verb) in [
        (&create, "create"),
        (&update, "change"),
        (&remove, "delete"),
    ] {
        for mode in ["", "mode: audit\n"] {
            let v = decide(req, &settings(&format!("{mode}{EXTRA}")));
            assert_eq!(
                rules_of(&v),
                [(RuleId::BaselineProtected, Action::Deny)],
                "{verb} {mode}"
            );
            assert!(
                v.denial_message().unwrap().starts_with(&format!(
                    "netpol-guard: baseline-protected: alice@example.com may not {verb} NetworkPolicy payments/{name}"
                )),
                "{:?}",
                v.denial_message()
            );
        }
        // netpol-guard itself may.
        let mut ours = req.clone();
        ours.user_info.username = "system:serviceaccount:netpol-guard:netpol-guard".into();
        assert_eq!(decide(&ours, &settings(EXTRA)), Verdict::allow(), "{verb}");
        // Not configured (or no longer): the name is free.
        assert_eq!(
            decide(req, &Settings::default()),
            Verdict::allow(),
            "{verb}"
        );
    }
}

/// An extra policy that selects every pod (`podSelector: {}`) does not
/// count toward require-network-policy, however much it allows: like the
/// rest of the baseline, it is netpol-guard's, not the workload's own
/// policy. The same object written by a developer would cover.
#[test]
fn an_extra_policy_for_every_pod_does_not_cover_a_workload() {
    let settings = settings(
        "baseline:\n  extraPolicies:\n  - name: allow-prometheus-scrape\n    spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}], ports: [{port: 9090}]}]}\n",
    );
    let extra =
        netpol_guard::baseline::desired("payments", &settings, netpol_guard::config::Mode::Enforce)
            .pop()
            .unwrap();
    assert_eq!(
        extra["metadata"]["name"],
        "netpol-guard-allow-prometheus-scrape"
    );
    let req = request("deployment-create-uncovered");
    let mut view = view();
    view.add(&extra).unwrap();
    let v = engine::decide(&req, &view, &settings).unwrap();
    assert_eq!(rules_of(&v), [(RuleId::RequireNetworkPolicy, Action::Deny)]);
    // A developer's copy (another name, no label) covers.
    let mut theirs = extra.clone();
    theirs["metadata"] = json!({"name": "allow-scrape", "namespace": "payments"});
    let mut view = self::view();
    view.add(&theirs).unwrap();
    assert!(engine::decide(&req, &view, &settings).unwrap().allowed());
}

#[test]
fn a_workload_without_a_pod_template_is_an_error_not_an_allow() {
    let mut req = request("deployment-create-uncovered");
    req.object.as_mut().unwrap()["spec"] = json!({"replicas": 1});
    let e = engine::decide(&req, &view(), &Settings::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Deployment has no pod template at .spec.template"
    );
    req.object = None;
    let e = engine::decide(&req, &view(), &Settings::default()).unwrap_err();
    assert_eq!(e.to_string(), "CREATE Deployment request has no object");
}

#[test]
fn namespaces_and_unrelated_kinds_are_allowed() {
    assert_eq!(
        decide(&request("namespace-create-managed"), &Settings::default()),
        Verdict::allow()
    );
    let mut req = request("deployment-create-uncovered");
    req.kind.kind = "ConfigMap".into();
    req.kind.group = String::new();
    assert_eq!(decide(&req, &Settings::default()), Verdict::allow());
}

#[test]
fn audit_mode_allows_with_a_warning_naming_the_rule() {
    let req = request("deployment-create-uncovered");
    let v = decide(&req, &settings("mode: audit\n"));
    assert!(v.allowed());
    assert_eq!(rules_of(&v), [(RuleId::RequireNetworkPolicy, Action::Warn)]);
    assert_eq!(v.audit_would_deny, [RuleId::RequireNetworkPolicy]);
    let w = v.warnings();
    assert!(
        w[0].starts_with(
            "audit mode, would deny: require-network-policy: Deployment payments/ledger"
        ),
        "{w:?}"
    );
    assert!(w[0].chars().count() <= 256);
    // Policy rules too; and warnings stay warnings (not counted as would-deny).
    let v = decide(
        &request("networkpolicy-create-world-egress"),
        &settings("mode: audit\n"),
    );
    assert!(v.allowed());
    assert_eq!(v.audit_would_deny, [RuleId::WorldCidr]);
    let v = decide(
        &request("networkpolicy-create-or-mistake"),
        &settings("mode: audit\n"),
    );
    assert!(v.audit_would_deny.is_empty());
    assert!(v.warnings()[0].starts_with("or-selector-slip: "));
}

fn view_with_mode(mode: &str) -> ClusterView {
    let mut v = ClusterView::new();
    for o in manifests::load_paths(&[common::fixtures_cluster()]).unwrap() {
        let mut obj = o.object;
        if obj["kind"] == "Namespace" && obj["metadata"]["name"] == "payments" {
            obj["metadata"]["labels"]["netpol-guard.io/mode"] = json!(mode);
        }
        v.add(&obj).unwrap();
    }
    v
}

#[test]
fn namespace_mode_label_overrides_the_global_mode_both_ways() {
    let req = request("deployment-create-uncovered");
    let audit_ns = view_with_mode("audit");
    let v = engine::decide(&req, &audit_ns, &Settings::default()).unwrap();
    assert!(v.allowed(), "global enforce, namespace audit");
    assert_eq!(v.audit_would_deny, [RuleId::RequireNetworkPolicy]);
    let enforce_ns = view_with_mode("enforce");
    let v = engine::decide(&req, &enforce_ns, &settings("mode: audit\n")).unwrap();
    assert!(!v.allowed(), "global audit, namespace enforce");
    // A value that is neither keeps the global mode.
    let odd = view_with_mode("yes");
    assert!(
        !engine::decide(&req, &odd, &Settings::default())
            .unwrap()
            .allowed()
    );
    assert!(
        engine::decide(&req, &odd, &settings("mode: audit\n"))
            .unwrap()
            .allowed()
    );
}

#[test]
fn exemptions_by_namespace_user_group_and_workload_labels() {
    let req = request("deployment-create-uncovered");
    for yaml in [
        "exemptions:\n  namespaces: [payments]\n",
        "exemptions:\n  users: [alice@example.com]\n",
        "exemptions:\n  groups: [team-payments]\n",
        "exemptions:\n  workloadLabels: [{matchLabels: {app: ledger}}]\n",
    ] {
        assert_eq!(decide(&req, &settings(yaml)), Verdict::allow(), "{yaml}");
    }
    // Near misses: another user, another label, and a workload annotation
    // (developers cannot exempt themselves).
    for yaml in [
        "exemptions:\n  users: [bob@example.com]\n",
        "exemptions:\n  workloadLabels: [{matchLabels: {app: other}}]\n",
    ] {
        assert!(!decide(&req, &settings(yaml)).allowed(), "{yaml}");
    }
    let mut annotated = req.clone();
    annotated.object.as_mut().unwrap()["metadata"]["annotations"] =
        json!({"netpol-guard.io/exempt": "true"});
    assert!(!decide(&annotated, &Settings::default()).allowed());
    // An exempt user still may not delete the baseline.
    let del = request("networkpolicy-delete-baseline");
    let v = decide(
        &del,
        &settings("exemptions:\n  users: [alice@example.com]\n"),
    );
    assert_eq!(rules_of(&v), [(RuleId::BaselineProtected, Action::Deny)]);
}

/// The live re-read judges a request against `view.focused(ns)` with fresh
/// data overlaid: for that to be sound, every fixture must get exactly the
/// same verdict from the focused view as from the whole one.
#[test]
fn a_focused_view_judges_every_fixture_like_the_whole_view() {
    let whole = view();
    let settings = Settings::default();
    let mut judged = 0;
    for entry in std::fs::read_dir(common::shared("fixtures/admission")).unwrap() {
        let path = entry.unwrap().path();
        let Ok(req) = admission::parse_review(&std::fs::read(&path).unwrap()) else {
            continue;
        };
        let ns = req.namespace.clone().unwrap_or_default();
        let full = engine::decide(&req, &whole, &settings).map(|v| format!("{v:?}"));
        let focused =
            engine::decide(&req, &whole.focused(&ns), &settings).map(|v| format!("{v:?}"));
        assert_eq!(
            full.map_err(|e| e.to_string()),
            focused.map_err(|e| e.to_string()),
            "{}",
            path.display()
        );
        judged += 1;
    }
    assert!(judged >= 10, "only {judged} fixtures judged");
}

/// Issue 13: pods on the host network escape every NetworkPolicy, and were
/// admitted silently in managed namespaces, covered or not. Only a cluster
/// admin's `exemptions.workloads` exempts one; a pod label does not.
#[test]
fn host_network_workloads_are_denied_in_managed_namespaces_unless_an_admin_names_them() {
    let mut req = request("deployment-create-covered");
    req.object.as_mut().unwrap()["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    let name = req.object.as_ref().unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let v = decide(&req, &Settings::default());
    assert_eq!(
        rules_of(&v),
        [(RuleId::HostNetwork, Action::Deny)],
        "covered, but on the host network"
    );
    assert!(
        v.denial_message().unwrap().starts_with(&format!(
            "netpol-guard: host-network: Deployment payments/{name}: its pods use the node's network (hostNetwork: true), where no NetworkPolicy applies."
        )),
        "{:?}",
        v.denial_message()
    );
    // A label a developer sets does not exempt it...
    let labels = settings("exemptions:\n  workloadLabels:\n  - matchLabels: {app: payments-api}\n");
    assert_eq!(
        rules_of(&decide(&req, &labels)),
        [(RuleId::HostNetwork, Action::Deny)]
    );
    // ...an admin naming it does.
    let named = settings(&format!(
        "exemptions:\n  workloads:\n  - {{namespace: payments, kind: Deployment, name: {name}}}\n"
    ));
    assert_eq!(decide(&req, &named), Verdict::allow());
    // An update of one that already used the host network warns.
    let mut update = req.clone();
    update.operation = Operation::Update;
    update.old_object = update.object.clone();
    assert_eq!(
        rules_of(&decide(&update, &Settings::default())),
        [(RuleId::HostNetwork, Action::Warn)]
    );
    // Unmanaged namespaces are not judged; the rule can be turned off.
    let mut unmanaged = req.clone();
    unmanaged.namespace = Some("legacy".into());
    assert_eq!(decide(&unmanaged, &Settings::default()), Verdict::allow());
    assert_eq!(
        decide(&req, &settings("rules: {host-network: off}\n")),
        Verdict::allow()
    );
}

/// Issue 13: a Deployment admitted before its namespace was managed could
/// not roll out: the ReplicaSet its controller creates was denied. A
/// controller-owned ReplicaSet written by the deployment controller is
/// judged at its owner; the same object from anyone else is judged itself.
#[test]
fn a_controllers_replica_set_is_judged_at_its_owner_only_when_the_controller_writes_it() {
    let mut req = request("deployment-create-uncovered");
    req.kind.kind = "ReplicaSet".into();
    let obj = req.object.as_mut().unwrap();
    obj["kind"] = json!("ReplicaSet");
    obj["metadata"]["name"] = json!("ledger-6d9f");
    obj["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment",
        "name": "ledger", "uid": "u", "controller": true}]);
    for controller in [
        "system:serviceaccount:kube-system:deployment-controller",
        "system:kube-controller-manager",
    ] {
        let mut r = req.clone();
        r.user_info.username = controller.into();
        assert_eq!(
            decide(&r, &Settings::default()),
            Verdict::allow(),
            "{controller}"
        );
    }
    // A developer's ReplicaSet naming a Deployment as its owner: judged.
    assert_eq!(
        rules_of(&decide(&req, &Settings::default())),
        [(RuleId::RequireNetworkPolicy, Action::Deny)]
    );
}

/// The fixture cluster plus existing workloads in `payments`: `api` covered
/// by policy payments-api, `db` by policy postgres, `batch` by nothing.
fn view_with_workloads() -> ClusterView {
    let mut v = view();
    for (kind, api, name, app) in [
        ("Deployment", "apps/v1", "api", "payments-api"),
        ("StatefulSet", "apps/v1", "db", "postgres"),
        ("Deployment", "apps/v1", "batch", "batch"),
    ] {
        v.add(&json!({"apiVersion": api, "kind": kind,
            "metadata": {"name": name, "namespace": "payments"},
            "spec": {"template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": []}}}}))
            .unwrap();
    }
    // A Deployment's ReplicaSet is judged at its owner: never listed.
    v.add(&json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "api-5d4f", "namespace": "payments", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "uid": "u", "controller": true}]},
        "spec": {"template": {"metadata": {"labels": {"app": "payments-api"}}}}}))
        .unwrap();
    v
}

/// A DELETE (or UPDATE to `new`) of policy `name` in payments, by a developer.
fn policy_change(name: &str, new: Option<serde_json::Value>) -> AdmissionRequest {
    let mut req = request("networkpolicy-delete-baseline");
    let old = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "payments"},
        "spec": {"podSelector": {"matchLabels": {"app": "payments-api"}}}});
    req.name = Some(name.into());
    req.old_object = Some(old);
    req.object = new.clone();
    req.operation = if new.is_some() {
        Operation::Update
    } else {
        Operation::Delete
    };
    req
}

#[test]
fn deleting_the_only_policy_of_existing_workloads_warns_and_names_them() {
    let view = view_with_workloads();
    let req = policy_change("payments-api", None);
    let v = engine::decide(&req, &view, &Settings::default()).unwrap();
    assert!(v.allowed());
    assert_eq!(rules_of(&v), [(RuleId::UncoversWorkloads, Action::Warn)]);
    assert_eq!(
        v.warnings(),
        [
            "uncovers-workloads: deleting NetworkPolicy payments/payments-api leaves Deployment api without a policy \
          that grants its pods traffic. Cover it first."
        ]
    );
    let full = v.findings[0].0.full_text();
    assert!(
        full.contains("Why: in namespace payments, Deployment api has no other policy"),
        "{full}"
    );

    // An update that narrows the selector away from the pods does the same;
    // one that keeps them covered says nothing.
    let narrowed = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "payments-api", "namespace": "payments"},
        "spec": {"podSelector": {"matchLabels": {"app": "payments-api-v2"}},
                 "ingress": [{"from": [{"podSelector": {}}]}]}});
    let v = engine::decide(
        &policy_change("payments-api", Some(narrowed)),
        &view,
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(rules_of(&v), [(RuleId::UncoversWorkloads, Action::Warn)]);
    assert!(v.warnings()[0].starts_with("uncovers-workloads: this change to NetworkPolicy payments/payments-api leaves Deployment api "));
    let kept = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "payments-api", "namespace": "payments"},
        "spec": {"podSelector": {"matchLabels": {"app": "payments-api"}},
                 "ingress": [{"from": [{"podSelector": {}}]}]}});
    let v = engine::decide(
        &policy_change("payments-api", Some(kept)),
        &view,
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(v, Verdict::allow());
}

#[test]
fn coverage_loss_is_silent_without_known_workloads_or_outside_managed_namespaces() {
    // The fixture view knows no workloads: nothing can be said.
    let v = decide(&policy_change("payments-api", None), &Settings::default());
    assert_eq!(v, Verdict::allow());
    // A policy nobody else depends on: nothing lost.
    let view = view_with_workloads();
    let v = engine::decide(
        &policy_change("unrelated", None),
        &view,
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(v, Verdict::allow());
    // Unmanaged namespace.
    let mut req = policy_change("payments-api", None);
    req.namespace = Some("legacy".into());
    let v = engine::decide(&req, &view, &Settings::default()).unwrap();
    assert_eq!(v, Verdict::allow());
    // The namespace controller emptying a namespace: never even a warning,
    // so a configured deny cannot block namespace deletion.
    let mut req = policy_change("payments-api", None);
    req.user_info.username = "system:serviceaccount:kube-system:namespace-controller".into();
    let s = settings("rules:\n  uncovers-workloads: deny\n");
    assert_eq!(engine::decide(&req, &view, &s).unwrap(), Verdict::allow());
}

#[test]
fn coverage_loss_can_be_denied_turned_off_and_skips_exempt_workloads() {
    let view = view_with_workloads();
    let req = policy_change("payments-api", None);
    let deny = settings("rules:\n  uncovers-workloads: deny\n");
    let v = engine::decide(&req, &view, &deny).unwrap();
    assert!(!v.allowed());
    assert!(
        v.denial_message()
            .unwrap()
            .contains("Fix: apply the policy that should cover them first")
    );
    let off = settings("rules:\n  uncovers-workloads: off\n");
    assert_eq!(engine::decide(&req, &view, &off).unwrap(), Verdict::allow());
    let exempt = settings(
        "exemptions:\n  workloads:\n  - {namespace: payments, kind: Deployment, name: api}\n",
    );
    assert_eq!(
        engine::decide(&req, &view, &exempt).unwrap(),
        Verdict::allow()
    );
}

#[test]
fn coverage_loss_lists_as_many_workloads_as_fit_then_counts_the_rest() {
    let mut view = view();
    for i in 0..40 {
        view.add(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("api-{i:02}"), "namespace": "payments"},
            "spec": {"template": {"metadata": {"labels": {"app": "payments-api"}}}}}))
            .unwrap();
    }
    let v = engine::decide(
        &policy_change("payments-api", None),
        &view,
        &Settings::default(),
    )
    .unwrap();
    let w = &v.warnings()[0];
    assert!(w.chars().count() <= 256, "{w}");
    assert!(w.starts_with("uncovers-workloads: deleting NetworkPolicy payments/payments-api leaves Deployment api-00, Deployment api-01, "), "{w}");
    assert!(w.contains(" more without a policy"), "{w}");
    let detail = v.findings[0].0.full_text();
    assert!(
        detail.contains("Deployment api-39"),
        "the detail names them all: {detail}"
    );
}

/// Namespaces (name, env label or none), and whether the view is marked
/// as knowing every namespace of the cluster, as the live watch marks it.
fn namespaces_view(namespaces: &[(&str, Option<&str>)], complete: bool) -> ClusterView {
    let mut v = ClusterView::new();
    for (name, env) in namespaces {
        let mut labels = json!({"kubernetes.io/metadata.name": name});
        if let Some(env) = env {
            labels["env"] = json!(env);
        }
        v.add(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}))
            .unwrap();
    }
    v.set_namespaces_complete(complete);
    v
}

/// A NetworkPolicy CREATE in payments admitting from `peer`, on `ports`.
fn policy_from(peer: serde_json::Value, ports: serde_json::Value) -> AdmissionRequest {
    let obj = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "from-envs", "namespace": "payments"},
        "spec": {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [peer], "ports": ports}]}});
    admission::create_request(&obj, "alice@example.com").unwrap()
}

fn env_peer() -> serde_json::Value {
    json!({"namespaceSelector": {"matchExpressions": [
        {"key": "env", "operator": "In", "values": ["prod", "dev"]}]}})
}

/// Issue 13: "in live mode, also deny when the selector matches every
/// namespace the view knows". Only a view that knows every namespace (the
/// live watch has listed them) and holds at least three.
#[test]
fn a_namespace_selector_matching_every_namespace_of_a_complete_view_is_any_namespace() {
    let all = [
        ("payments", Some("prod")),
        ("web", Some("dev")),
        ("data", Some("prod")),
    ];
    let live = namespaces_view(&all, true);
    let req = policy_from(env_peer(), json!(null));
    let v = engine::decide(&req, &live, &Settings::default()).unwrap();
    assert_eq!(rules_of(&v), [(RuleId::AnyNamespacePeer, Action::Deny)]);
    let m = v.denial_message().unwrap();
    assert!(
        m.starts_with(
            "netpol-guard: any-namespace-peer: ingress rule 0, peer 0: namespaceSelector env in (prod,dev) \
             matches all 3 namespaces today (new ones only if labelled to match), so it admits traffic from all \
             their pods on every port. Fix: select only the namespaces you need.\n"
        ),
        "{m}"
    );
    assert!(m.contains("(3 of 3, by netpol-guard's live view"), "{m}");
    // On ports, as `namespaceSelector: {}` on ports: a warning.
    let on_port = policy_from(env_peer(), json!([{"protocol": "TCP", "port": 8080}]));
    let v = engine::decide(&on_port, &live, &Settings::default()).unwrap();
    assert_eq!(rules_of(&v), [(RuleId::AnyNamespacePeer, Action::Warn)]);
    assert!(
        v.warnings()[0].contains("on TCP 8080."),
        "{:?}",
        v.warnings()
    );
    // With a podSelector that picks pods, it is not every pod.
    let mut picked = env_peer();
    picked["podSelector"] = json!({"matchLabels": {"app": "web"}});
    let v = engine::decide(
        &policy_from(picked, json!(null)),
        &live,
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(v, Verdict::allow());
    let mut every_pod = env_peer();
    every_pod["podSelector"] = json!({});
    let v = engine::decide(
        &policy_from(every_pod, json!(null)),
        &live,
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(rules_of(&v), [(RuleId::AnyNamespacePeer, Action::Deny)]);
    // The same namespaces, from manifests (offline `check`): not every
    // namespace of a cluster, so nothing.
    let offline = namespaces_view(&all, false);
    assert_eq!(
        engine::decide(&req, &offline, &Settings::default()).unwrap(),
        Verdict::allow()
    );
    // A focused view (the live re-read) holds one namespace: nothing.
    assert_eq!(
        engine::decide(&req, &live.focused("payments"), &Settings::default()).unwrap(),
        Verdict::allow()
    );
    // One namespace it does not match: nothing.
    let mut more = all.to_vec();
    more.push(("kube-system", None));
    assert_eq!(
        engine::decide(&req, &namespaces_view(&more, true), &Settings::default()).unwrap(),
        Verdict::allow()
    );
    // Fewer than three namespaces: a tiny cluster does not trip it.
    let tiny = namespaces_view(&all[..2], true);
    assert_eq!(
        engine::decide(&req, &tiny, &Settings::default()).unwrap(),
        Verdict::allow()
    );
    // The rule's action applies; `{}` keeps its own message (no double finding).
    let v = engine::decide(
        &req,
        &live,
        &settings("rules: {any-namespace-peer: warn}\n"),
    )
    .unwrap();
    assert_eq!(rules_of(&v), [(RuleId::AnyNamespacePeer, Action::Warn)]);
    let empty = policy_from(json!({"namespaceSelector": {}}), json!(null));
    let v = engine::decide(&empty, &live, &Settings::default()).unwrap();
    assert_eq!(rules_of(&v), [(RuleId::AnyNamespacePeer, Action::Deny)]);
    assert!(
        v.denial_message()
            .unwrap()
            .contains("namespaceSelector: {} admits"),
        "{:?}",
        v.denial_message()
    );
}

/// `clusterCidrs` through the engine: an ipBlock over the pod network is
/// denied; without the setting, a block over a private range only warns.
#[test]
fn cluster_cidr_peer_denies_with_cluster_cidrs_and_warns_without() {
    let req = policy_from(json!({"ipBlock": {"cidr": "10.0.0.0/8"}}), json!(null));
    let v = decide(&req, &settings("clusterCidrs: [10.244.0.0/16]\n"));
    assert_eq!(rules_of(&v), [(RuleId::ClusterCidrPeer, Action::Deny)]);
    assert!(
        v.denial_message()
            .unwrap()
            .starts_with("netpol-guard: cluster-cidr-peer: ingress rule 0, peer 0: ipBlock 10.0.0.0/8 contains cluster CIDR 10.244.0.0/16"),
        "{:?}",
        v.denial_message()
    );
    let v = decide(&req, &Settings::default());
    assert!(v.allowed());
    assert_eq!(rules_of(&v), [(RuleId::ClusterCidrPeer, Action::Warn)]);
    let carved = policy_from(
        json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}}),
        json!(null),
    );
    assert_eq!(
        decide(&carved, &settings("clusterCidrs: [10.244.0.0/16]\n")),
        Verdict::allow()
    );
}

/// Issue 13: a bare Pod that named a ConfigMap (or anything) as its
/// controller was skipped like a ReplicaSet's Pods. Only the five workload
/// controllers, by exact apiVersion and kind, and the kinds the config lists
/// in `controllerKinds` exempt a Pod: in the webhook, in `check`
/// (`decide_existing`) and in `audit` alike.
#[test]
fn only_a_workload_controller_or_a_listed_kind_exempts_a_pod() {
    let owned_by = |api_version: &str, kind: &str| {
        let mut req = request("pod-create-controlled");
        let owner = &mut req.object.as_mut().unwrap()["metadata"]["ownerReferences"][0];
        owner["apiVersion"] = json!(api_version);
        owner["kind"] = json!(kind);
        req
    };
    let listed = settings(
        "controllerKinds:\n- {apiVersion: kubevirt.io/v1, kind: VirtualMachineInstance}\n",
    );
    let denial = "require-network-policy: Pod payments/ledger-7c9d8f6b5d-*: no NetworkPolicy selects its pods (pod labels: app=ledger, pod-template-hash=7c9d8f6b5d)";
    for (api_version, kind, skipped, skipped_when_listed) in [
        ("apps/v1", "ReplicaSet", true, true),
        ("apps/v1", "StatefulSet", true, true),
        ("batch/v1", "Job", true, true),
        ("v1", "ReplicationController", true, true),
        ("v1", "ConfigMap", false, false),
        ("example.com/v1", "ReplicaSet", false, false),
        ("apps/v2", "ReplicaSet", false, false),
        ("apps/v1", "Deployment", false, false),
        ("kubevirt.io/v1", "VirtualMachineInstance", false, true),
    ] {
        let req = owned_by(api_version, kind);
        for (s, skipped) in [
            (&Settings::default(), skipped),
            (&listed, skipped_when_listed),
        ] {
            let webhook = decide(&req, s);
            let check = engine::decide_existing(&req, &view(), s).unwrap();
            for v in [&webhook, &check] {
                if skipped {
                    assert_eq!(*v, Verdict::allow(), "{api_version} {kind}");
                } else {
                    assert_eq!(
                        rules_of(v),
                        [(RuleId::RequireNetworkPolicy, Action::Deny)],
                        "{api_version} {kind}"
                    );
                    let m = v.denial_message().unwrap();
                    assert!(m.contains(denial), "{api_version} {kind}: {m}");
                }
            }
        }
    }
    // The audit counts a Pod with a fake controller as a workload of its
    // own, and skips one of a listed kind.
    let mut objects: Vec<serde_json::Value> = manifests::load_paths(&[common::fixtures_cluster()])
        .unwrap()
        .into_iter()
        .map(|o| o.object)
        .collect();
    for (name, api_version, kind) in [
        ("fake", "v1", "ConfigMap"),
        ("vm", "kubevirt.io/v1", "VirtualMachineInstance"),
        ("rs", "apps/v1", "ReplicaSet"),
    ] {
        let mut pod = owned_by(api_version, kind).object.unwrap();
        pod["metadata"]["name"] = json!(name);
        objects.push(pod);
    }
    let uncovered = |s: &Settings| -> Vec<String> {
        let report = audit::audit(&objects, s);
        let ns = report
            .namespaces
            .iter()
            .find(|n| n.name == "payments")
            .unwrap();
        ns.uncovered.iter().map(|w| w.object.name.clone()).collect()
    };
    assert_eq!(uncovered(&Settings::default()), ["fake", "vm"]);
    assert_eq!(uncovered(&listed), ["fake"]);
}

/// A view of the shared cluster plus one NetworkPolicy in `payments` that
/// selects `selector` and allows ingress from the namespace.
fn view_with_policy(name: &str, selector: serde_json::Value) -> ClusterView {
    let mut v = view();
    v.add(
        &json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "payments"},
        "spec": {"podSelector": selector, "ingress": [{"from": [{"podSelector": {}}]}]}}),
    )
    .unwrap();
    v
}

fn has(key: &str, operator: &str, values: &[&str]) -> serde_json::Value {
    let mut r = json!({"key": key, "operator": operator});
    if !values.is_empty() {
        r["values"] = json!(values);
    }
    r
}

/// Issue 13: coverage was judged on the pod template's labels alone, but
/// controllers add labels to the real pods (`pod-template-hash`,
/// `controller-revision-hash`, ...). A policy that requires such a label
/// absent, or a value of it nobody knows in advance, selected none of the
/// real pods yet counted as covering them.
#[test]
fn labels_the_controller_adds_decide_coverage() {
    let deployment = request("deployment-create-uncovered");
    let absent = json!({"matchLabels": {"app": "ledger"},
        "matchExpressions": [has("pod-template-hash", "DoesNotExist", &[])]});
    let v = engine::decide(
        &deployment,
        &view_with_policy("no-hash", absent.clone()),
        &Settings::default(),
    )
    .unwrap();
    assert_eq!(rules_of(&v), [(RuleId::RequireNetworkPolicy, Action::Deny)]);
    let m = v.denial_message().unwrap();
    assert!(
        m.contains("require-network-policy: Deployment payments/ledger: no NetworkPolicy selects its pods (pod labels: app=ledger). NetworkPolicy no-hash does not count: it selects on pod-template-hash, which their controller sets. Select the template's labels."),
        "{m}"
    );
    assert!(
        m.contains("NetworkPolicy no-hash tests pod-template-hash, which the Deployment's controller adds to every pod"),
        "{m}"
    );
    // A value of it: unknown, so not counted either.
    let pinned = json!({"matchLabels": {"app": "ledger", "pod-template-hash": "7c9d8f6b5d"}});
    assert!(
        !engine::decide(
            &deployment,
            &view_with_policy("pinned", pinned),
            &Settings::default()
        )
        .unwrap()
        .allowed()
    );
    let not_in = json!({"matchExpressions": [has("pod-template-hash", "NotIn", &["x"])]});
    assert!(
        !engine::decide(
            &deployment,
            &view_with_policy("not-x", not_in),
            &Settings::default()
        )
        .unwrap()
        .allowed()
    );
    // Exists holds whatever the value: covered.
    let present = json!({"matchLabels": {"app": "ledger"},
        "matchExpressions": [has("pod-template-hash", "Exists", &[])]});
    assert_eq!(
        engine::decide(
            &deployment,
            &view_with_policy("hashed", present),
            &Settings::default()
        )
        .unwrap(),
        Verdict::allow()
    );
    // A StatefulSet's pods carry their controller's revision hash (app: db
    // is not selected by the fixture's postgres policy).
    let mut statefulset = request("statefulset-create-covered");
    statefulset.object.as_mut().unwrap()["spec"]["template"]["metadata"]["labels"] =
        json!({"app": "db"});
    for (operator, allowed) in [("DoesNotExist", false), ("Exists", true)] {
        let v = engine::decide(
            &statefulset,
            &view_with_policy(
                "revision",
                json!({"matchLabels": {"app": "db"},
                    "matchExpressions": [has("controller-revision-hash", operator, &[])]}),
            ),
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(v.allowed(), allowed, "{operator}: {v:?}");
    }
    // The Job's name is known: a policy on job-name covers its pods.
    let job = request("job-create-uncovered");
    assert!(
        !engine::decide(&job, &view(), &Settings::default())
            .unwrap()
            .allowed()
    );
    assert_eq!(
        engine::decide(
            &job,
            &view_with_policy(
                "migrate",
                json!({"matchExpressions": [has("job-name", "In", &["migrate-db"])]})
            ),
            &Settings::default()
        )
        .unwrap(),
        Verdict::allow()
    );
    // A bare Pod gets no label added: pod-template-hash is absent indeed.
    let pod = request("pod-create-bare-debug");
    assert_eq!(
        engine::decide(
            &pod,
            &view_with_policy(
                "bare",
                json!({"matchExpressions": [has("pod-template-hash", "DoesNotExist", &[])]})
            ),
            &Settings::default()
        )
        .unwrap(),
        Verdict::allow()
    );
    // The audit's nearest policy says which label the pods lack for sure.
    let mut objects: Vec<serde_json::Value> = manifests::load_paths(&[common::fixtures_cluster()])
        .unwrap()
        .into_iter()
        .map(|o| o.object)
        .collect();
    objects.push(deployment.object.clone().unwrap());
    objects.push(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "no-hash", "namespace": "payments"},
        "spec": {"podSelector": absent, "ingress": [{"from": [{"podSelector": {}}]}]}}),
    );
    let report = audit::audit(&objects, &Settings::default());
    let ns = report
        .namespaces
        .iter()
        .find(|n| n.name == "payments")
        .unwrap();
    let ledger = ns
        .uncovered
        .iter()
        .find(|w| w.object.name == "ledger")
        .unwrap();
    let nearest = ledger.nearest_policy.as_ref().unwrap();
    assert_eq!(nearest.name, "no-hash");
    assert_eq!(
        nearest.unmet,
        ["!pod-template-hash (their controller sets pod-template-hash)"]
    );
}

/// Issue 15: `audit` (whose judgement the background audit's PolicyReports
/// share) reports a policy that selects none of its namespace's Pods and
/// workloads, and a CiliumClusterwideNetworkPolicy that selects none in any
/// namespace; `deny` makes it a denial (exit 1), except in an audit-mode
/// namespace. A namespace without workloads says nothing.
#[test]
fn audit_reports_policies_that_select_nothing() {
    use netpol_guard::report::model::ExitCode;
    use netpol_guard::report::reporter;
    let np = |ns: &str, name: &str, app: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}})
    };
    let ccnp = |name: &str, app: &str| {
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": name},
            "spec": {"endpointSelector": {"matchLabels": {"app": app}},
                "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}]}]}})
    };
    let objects = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tools",
            "labels": {"platform.io/managed": "true", "netpol-guard.io/mode": "audit"}}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "empty"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "cart", "namespace": "shop"},
            "spec": {"template": {"metadata": {"labels": {"app": "cart"}}}}}),
        // A bare Pod is a workload of its namespace too.
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "debug", "namespace": "tools", "labels": {"app": "debug"}}}),
        np("shop", "cart", "cart"),
        np("shop", "cart-typo", "crat"),
        np("tools", "debug", "debug"),
        np("tools", "debgu", "debgu"),
        np("empty", "ahead", "later"),
        ccnp("debug-anywhere", "debug"),
        ccnp("nowhere", "ledger"),
    ];
    let findings = |report: &audit::AuditReport| -> Vec<(String, String, Action, String)> {
        report
            .findings()
            .filter(|f| f.rule == RuleId::PolicySelectsNothing)
            .map(|f| {
                (
                    f.object.namespace.clone(),
                    f.object.name.clone(),
                    f.action,
                    f.message.clone(),
                )
            })
            .collect()
    };
    let report = audit::audit(&objects, &Settings::default());
    assert_eq!(
        findings(&report),
        [
            (
                "shop".into(),
                "cart-typo".into(),
                Action::Warn,
                "policy-selects-nothing: podSelector app=crat matches no pods of the 1 workload in \
                 shop; did you mean app=cart? shop/cart has app=cart, this policy wants app=crat"
                    .into()
            ),
            (
                "tools".into(),
                "debgu".into(),
                Action::Warn,
                "policy-selects-nothing: podSelector app=debgu matches no pods of the 1 workload in \
                 tools; did you mean app=debug? tools/debug has app=debug, this policy wants \
                 app=debgu"
                    .into()
            ),
            (
                String::new(),
                "nowhere".into(),
                Action::Warn,
                "policy-selects-nothing: endpointSelector app=ledger matches no pods of the 2 \
                 workloads in the cluster; nearest: shop/cart has app=cart, this policy wants \
                 app=ledger"
                    .into()
            ),
        ]
    );
    assert_eq!(report.exit_code(), ExitCode::Clean);
    // The background audit's reports carry them: the namespace's
    // PolicyReport and, for the cluster-wide policy, the ClusterPolicyReport.
    let reports = reporter::build(&report, true, 0);
    let results_of = |kind: &str, ns: Option<&str>| -> Vec<String> {
        reports
            .iter()
            .filter(|r| r["kind"] == kind && r["metadata"]["namespace"].as_str() == ns)
            .flat_map(|r| r["results"].as_array().unwrap().clone())
            .filter(|r| r["rule"] == "policy-selects-nothing")
            .map(|r| format!("{} {}", r["result"], r["resources"][0]["name"]))
            .collect()
    };
    assert_eq!(
        results_of("PolicyReport", Some("shop")),
        [r#""warn" "cart-typo""#]
    );
    assert_eq!(
        results_of("ClusterPolicyReport", None),
        [r#""warn" "nowhere""#]
    );

    let deny = settings("rules:\n  policy-selects-nothing: deny\n");
    let report = audit::audit(&objects, &deny);
    let actions: Vec<(String, Action)> = findings(&report)
        .into_iter()
        .map(|(_, name, action, _)| (name, action))
        .collect();
    assert_eq!(
        actions,
        [
            ("cart-typo".into(), Action::Deny),
            // tools is in audit mode: a would-be denial only warns there.
            ("debgu".into(), Action::Warn),
            ("nowhere".into(), Action::Deny),
        ]
    );
    assert_eq!(report.exit_code(), ExitCode::Denied);
    let off = settings("rules:\n  policy-selects-nothing: off\n");
    assert!(findings(&audit::audit(&objects, &off)).is_empty());
}

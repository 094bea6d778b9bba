//! Every rule of the catalog through the engine: it fires with its default
//! action, and `warn`, `off` and `deny` in the config change the verdict.

use netpol_guard::admission::{self, AdmissionRequest};
use netpol_guard::cluster::ClusterView;
use netpol_guard::config::Settings;
use netpol_guard::engine;
use netpol_guard::manifests;
use netpol_guard::rules::{Action, RuleId};
use serde_json::{Value, json};

use crate::common;

/// The fixture cluster, plus a Deployment that policy payments-api covers
/// (for `uncovers-workloads`).
fn view() -> ClusterView {
    let mut v = ClusterView::new();
    for o in manifests::load_paths(&[common::fixtures_cluster()]).unwrap() {
        v.add(&o.object).unwrap();
    }
    v.add(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "payments"},
        "spec": {"template": {"metadata": {"labels": {"app": "payments-api"}}}}}))
        .unwrap();
    v
}

fn np(spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "payments"}, "spec": spec})
}

fn cnp(kind: &str, spec: Value) -> Value {
    let mut o = json!({"apiVersion": "cilium.io/v2", "kind": kind,
        "metadata": {"name": "c", "namespace": "payments"}, "spec": spec});
    if kind == "CiliumClusterwideNetworkPolicy" {
        o["metadata"].as_object_mut().unwrap().remove("namespace");
    }
    o
}

fn create(obj: &Value) -> AdmissionRequest {
    let (group, version) = obj["apiVersion"].as_str().unwrap().split_once('/').unwrap();
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": group, "version": version, "kind": obj["kind"]},
        "operation": "CREATE", "namespace": obj["metadata"]["namespace"], "name": obj["metadata"]["name"],
        "userInfo": {"username": "alice@example.com"}, "object": obj}});
    admission::parse_review(&serde_json::to_vec(&review).unwrap()).unwrap()
}

fn fixture(name: &str) -> AdmissionRequest {
    admission::parse_review(
        &std::fs::read(common::shared(&format!("fixtures/admission/{name}.json"))).unwrap(),
    )
    .unwrap()
}

/// One request per rule that fires that rule alone, with its default action.
fn cases() -> Vec<(RuleId, AdmissionRequest, Action)> {
    let app = json!({"matchLabels": {"app": "api"}});
    vec![
        (
            RuleId::RequireNetworkPolicy,
            fixture("deployment-create-uncovered"),
            Action::Deny,
        ),
        (
            RuleId::AllowAllPeers,
            create(&np(
                json!({"podSelector": app, "policyTypes": ["Ingress"], "ingress": [{}]}),
            )),
            Action::Deny,
        ),
        (
            RuleId::AnyNamespacePeer,
            create(&np(json!({"podSelector": app, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": {}}]}]}))),
            Action::Deny,
        ),
        (
            RuleId::WorldCidr,
            // The private ranges carved out: with world-cidr at warn or
            // off, cluster-cidr-peer would judge the block itself.
            create(&np(json!({"podSelector": app, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]}}],
                "ports": [{"protocol": "TCP", "port": 443}]}]}))),
            Action::Deny,
        ),
        (
            RuleId::ClusterCidrPeer,
            create(&np(json!({"podSelector": app, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"protocol": "TCP", "port": 443}]}]}))),
            Action::Deny,
        ),
        (
            RuleId::OrSelectorSlip,
            fixture("networkpolicy-create-or-mistake"),
            Action::Warn,
        ),
        (
            RuleId::ImplicitIngressIsolation,
            create(&np(json!({"podSelector": app,
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"protocol": "TCP", "port": 5432}]}]}))),
            Action::Warn,
        ),
        (
            RuleId::DnsSingleProtocol,
            create(&np(json!({"podSelector": app, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}], "ports": [{"protocol": "UDP", "port": 53}]}]}))),
            Action::Warn,
        ),
        (
            RuleId::BaselineProtected,
            fixture("networkpolicy-delete-baseline"),
            Action::Deny,
        ),
        (
            RuleId::WorldEntity,
            fixture("ciliumnetworkpolicy-create-from-world"),
            Action::Deny,
        ),
        (
            RuleId::FqdnWildcard,
            create(&cnp(
                "CiliumNetworkPolicy",
                json!({"endpointSelector": app,
            "egress": [{"toFQDNs": [{"matchPattern": "*"}]}]}),
            )),
            Action::Deny,
        ),
        (
            RuleId::AnyEndpointPeer,
            create(&cnp(
                "CiliumClusterwideNetworkPolicy",
                json!({"endpointSelector": app,
            "ingress": [{"fromEndpoints": [{}]}]}),
            )),
            Action::Deny,
        ),
        (
            RuleId::DefaultDenyDisabled,
            create(&cnp(
                "CiliumNetworkPolicy",
                json!({"endpointSelector": app,
            "enableDefaultDeny": {"ingress": false},
            "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}]}]}),
            )),
            Action::Warn,
        ),
        (
            RuleId::NamespaceLabelsIgnored,
            create(&cnp(
                "CiliumNetworkPolicy",
                json!({"endpointSelector": app,
            "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.team": "web"}}]}]}),
            )),
            Action::Warn,
        ),
        (
            RuleId::NodeEntity,
            create(&cnp(
                "CiliumNetworkPolicy",
                json!({"endpointSelector": app,
            "ingress": [{"fromEntities": ["remote-node"],
                         "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}]}),
            )),
            Action::Warn,
        ),
        (RuleId::HostNetwork, host_network(), Action::Deny),
        (
            RuleId::UncoversWorkloads,
            delete_payments_api(),
            Action::Warn,
        ),
        (
            RuleId::PolicySelectsNothing,
            create(&np(
                json!({"podSelector": {"matchLabels": {"app": "payments-apj"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}),
            )),
            Action::Warn,
        ),
    ]
}

/// How a rule's case is judged: `policy-selects-nothing` as `check` and
/// `audit` judge an object (the webhook never raises it), every other rule
/// as the webhook judges a request.
fn decide_as(rule: RuleId, req: &AdmissionRequest, s: &Settings) -> engine::Verdict {
    if rule == RuleId::PolicySelectsNothing {
        engine::decide_existing(req, &view(), s).unwrap()
    } else {
        engine::decide(req, &view(), s).unwrap()
    }
}

fn rule_findings(
    rule: RuleId,
    req: &AdmissionRequest,
    yaml: &str,
) -> (bool, Vec<(RuleId, Action)>) {
    let v = decide_as(rule, req, &Settings::from_yaml(yaml).unwrap());
    (
        v.allowed(),
        v.findings.iter().map(|(f, a)| (f.rule, *a)).collect(),
    )
}

/// A developer deletes policy payments-api, the only one covering `api`.
fn delete_payments_api() -> AdmissionRequest {
    let mut req = fixture("networkpolicy-delete-baseline");
    req.name = Some("payments-api".into());
    if let Some(old) = req.old_object.as_mut() {
        old["metadata"]["name"] = json!("payments-api");
        old["metadata"]["labels"] = json!({});
    }
    req
}

/// A covered Deployment whose pods use the host network.
fn host_network() -> AdmissionRequest {
    let mut req = fixture("deployment-create-covered");
    if let Some(obj) = req.object.as_mut() {
        obj["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    }
    req
}

/// The config a rule's case needs on top of `yaml`: cluster-cidr-peer only
/// denies once the cluster's CIDRs are configured (without them it warns).
fn config(rule: RuleId, yaml: &str) -> String {
    match rule {
        RuleId::ClusterCidrPeer => format!("clusterCidrs: [10.244.0.0/16]\n{yaml}"),
        _ => yaml.to_string(),
    }
}

fn findings(req: &AdmissionRequest, yaml: &str) -> (bool, Vec<(RuleId, Action)>) {
    let v = engine::decide(req, &view(), &Settings::from_yaml(yaml).unwrap()).unwrap();
    (
        v.allowed(),
        v.findings.iter().map(|(f, a)| (f.rule, *a)).collect(),
    )
}

/// Rules no admission request raises: the audit judges the cluster for
/// them (`audit_only_rules_follow_their_configured_action`).
const AUDIT_ONLY: &[RuleId] = &[RuleId::CniNotEnforcing];

#[test]
fn every_rule_is_covered_by_a_case() {
    let covered: Vec<RuleId> = cases().into_iter().map(|(r, _, _)| r).collect();
    let admission: Vec<RuleId> = RuleId::ALL
        .iter()
        .copied()
        .filter(|r| !AUDIT_ONLY.contains(r))
        .collect();
    assert_eq!(covered, admission, "one case per rule, in catalog order");
}

/// flannel's DaemonSet, alone: nothing enforces NetworkPolicy.
fn flannel() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-flannel-ds", "namespace": "kube-flannel"},
        "spec": {"selector": {"matchLabels": {"app": "flannel"}},
            "template": {"metadata": {"labels": {"app": "flannel"}},
                "spec": {"hostNetwork": true, "containers": [{"name": "kube-flannel",
                    "image": "docker.io/flannel/flannel:v0.25.7",
                    "command": ["/opt/bin/flanneld"], "args": ["--ip-masq", "--kube-subnet-mgr"]}]}}}})
}

#[test]
fn audit_only_rules_follow_their_configured_action() {
    use netpol_guard::report::audit;
    use netpol_guard::report::model::ExitCode;
    let objects = [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-flannel"}}),
        flannel(),
    ];
    for (yaml, want, exit) in [
        ("", Some(Action::Deny), ExitCode::Denied),
        (
            "rules: {cni-not-enforcing: warn}",
            Some(Action::Warn),
            ExitCode::Clean,
        ),
        ("rules: {cni-not-enforcing: off}", None, ExitCode::Clean),
        (
            "rules: {cni-not-enforcing: deny}",
            Some(Action::Deny),
            ExitCode::Denied,
        ),
        // No request is judged: audit mode does not soften it.
        ("mode: audit", Some(Action::Deny), ExitCode::Denied),
    ] {
        let report = audit::audit(&objects, &Settings::from_yaml(yaml).unwrap());
        let got: Vec<(RuleId, Action)> = report
            .cluster_findings
            .iter()
            .map(|f| (f.rule, f.action))
            .collect();
        assert_eq!(
            got,
            want.map(|a| (RuleId::CniNotEnforcing, a))
                .into_iter()
                .collect::<Vec<_>>(),
            "{yaml}"
        );
        assert_eq!(report.exit_code(), exit, "{yaml}");
        // The verdict is reported whatever the rule's action.
        assert_eq!(
            report.network_plugin.map(|v| v.state),
            Some(netpol_guard::cni::State::NotEnforcing),
            "{yaml}"
        );
    }
    // The webhook judges the DaemonSet like any other workload, never the
    // cluster's network plugin.
    let mut ds = flannel();
    ds["metadata"]["namespace"] = json!("payments");
    let (_, got) = findings(&create(&ds), "");
    assert!(
        !got.iter().any(|(r, _)| *r == RuleId::CniNotEnforcing),
        "{got:?}"
    );
}

#[test]
fn each_rule_fires_alone_with_its_default_action() {
    for (rule, req, default) in cases() {
        let (allowed, got) = rule_findings(rule, &req, &config(rule, ""));
        assert_eq!(got, [(rule, default)], "{rule}");
        assert_eq!(allowed, default != Action::Deny, "{rule}");
    }
}

#[test]
fn warn_turns_every_rule_into_an_allowed_warning() {
    for (rule, req, _) in cases() {
        let yaml = config(rule, &format!("rules:\n  {rule}: warn\n"));
        let (allowed, got) = rule_findings(rule, &req, &yaml);
        assert_eq!(got, [(rule, Action::Warn)], "{rule}");
        assert!(allowed, "{rule}");
        let v = decide_as(rule, &req, &Settings::from_yaml(&yaml).unwrap());
        let w = v.warnings();
        assert_eq!(w.len(), 1, "{rule}");
        assert!(w[0].starts_with(&format!("{rule}: ")), "{rule}: {}", w[0]);
        assert!(w[0].chars().count() <= 256, "{rule}: {}", w[0]);
    }
}

#[test]
fn off_silences_every_rule() {
    for (rule, req, _) in cases() {
        let (allowed, got) = rule_findings(
            rule,
            &req,
            &config(rule, &format!("rules:\n  {rule}: off\n")),
        );
        assert_eq!(got, [], "{rule}");
        assert!(allowed, "{rule}");
    }
}

#[test]
fn deny_turns_warning_rules_into_denials_with_the_full_text() {
    for (rule, req, _) in cases() {
        let yaml = config(rule, &format!("rules:\n  {rule}: deny\n"));
        let (allowed, got) = rule_findings(rule, &req, &yaml);
        assert_eq!(got, [(rule, Action::Deny)], "{rule}");
        assert!(!allowed, "{rule}");
        let v = decide_as(rule, &req, &Settings::from_yaml(&yaml).unwrap());
        let m = v.denial_message().unwrap();
        assert!(m.starts_with(&format!("netpol-guard: {rule}: ")), "{m}");
        assert!(
            m.contains('\n'),
            "{rule}: a denial carries the why and the fix: {m}"
        );
    }
}

/// Issue 15: applying a policy before its workload is the recommended
/// order, so the webhook never says it selects nothing, even set to deny;
/// `check` and `audit` do.
#[test]
fn the_webhook_never_raises_policy_selects_nothing() {
    let rule = RuleId::PolicySelectsNothing;
    let req = cases().into_iter().find(|(r, _, _)| *r == rule).unwrap().1;
    for yaml in ["", "rules:\n  policy-selects-nothing: deny\n"] {
        assert_eq!(findings(&req, yaml), (true, vec![]), "{yaml}");
    }
    let v = decide_as(rule, &req, &Settings::default());
    assert_eq!(
        v.warnings(),
        [
            "policy-selects-nothing: podSelector app=payments-apj matches no pods of the 1 workload \
          in payments; did you mean app=payments-api? payments/api has app=payments-api, this \
          policy wants app=payments-apj"
        ]
    );
}

#[test]
fn milder_variants_stay_warnings_under_deny() {
    // A namespaced CNP's `fromEndpoints: [{}]` only covers its own namespace.
    let req = create(&cnp(
        "CiliumNetworkPolicy",
        json!({"endpointSelector": {"matchLabels": {"app": "api"}},
        "ingress": [{"fromEndpoints": [{}]}]}),
    ));
    assert_eq!(
        findings(&req, ""),
        (true, vec![(RuleId::AnyEndpointPeer, Action::Warn)])
    );
    // An allow-all peer limited to a port warns (DNS exfiltration), not denies.
    let req = create(&np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})));
    assert_eq!(
        findings(&req, ""),
        (true, vec![(RuleId::AllowAllPeers, Action::Warn)])
    );
    // So does a Cilium L4-only rule (toPorts, no peer field), in a CCNP too.
    let req = create(&cnp(
        "CiliumClusterwideNetworkPolicy",
        json!({"endpointSelector": {}, "egress": [{"toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}]}]}]}),
    ));
    assert_eq!(
        findings(&req, ""),
        (true, vec![(RuleId::AllowAllPeers, Action::Warn)])
    );
    // Without clusterCidrs, a block over a private range only warns: it
    // may or may not hold this cluster's pods.
    let req = create(&np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]})));
    assert_eq!(
        findings(&req, "rules: {cluster-cidr-peer: deny}\n"),
        (true, vec![(RuleId::ClusterCidrPeer, Action::Warn)])
    );
}

#[test]
fn policy_rules_apply_in_unmanaged_namespaces_but_not_excluded_ones() {
    let mut req = fixture("networkpolicy-create-world-egress");
    req.namespace = Some("legacy".into());
    req.object.as_mut().unwrap()["metadata"]["namespace"] = json!("legacy");
    assert_eq!(
        findings(&req, ""),
        (false, vec![(RuleId::WorldCidr, Action::Deny)])
    );
    req.namespace = Some("kube-system".into());
    assert_eq!(findings(&req, ""), (true, vec![]));
}

#[test]
fn deletes_of_dangerous_policies_are_allowed() {
    let mut req = fixture("networkpolicy-create-world-egress");
    req.operation = netpol_guard::admission::Operation::Delete;
    req.old_object = req.object.take();
    assert_eq!(findings(&req, ""), (true, vec![]));
}

#[test]
fn canonical_safe_policies_pass_every_rule() {
    for name in [
        "networkpolicy-create-and",
        "ciliumnetworkpolicy-create-egress",
    ] {
        assert_eq!(findings(&fixture(name), ""), (true, vec![]), "{name}");
    }
    let dns = create(&np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})));
    assert_eq!(findings(&dns, ""), (true, vec![]));
    let deny_all = create(&np(
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    ));
    assert_eq!(findings(&deny_all, ""), (true, vec![]));
}

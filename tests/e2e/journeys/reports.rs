//! `audit`, `check` and PolicyReports against what the real API server holds.

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use crate::apply::{self, deployment};
use crate::cluster::{eventually, stderr, stdout};
use crate::install::Env;

fn netpol_guard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run netpol-guard")
}

/// A namespace with an uncovered workload, applied as cluster-admin while
/// the namespace was still unmanaged (as existing workloads are when a team
/// opts in).
fn reports_namespace(env: &Env) {
    env.namespace("reports-a", false, None);
    let out = apply::apply(env, &[], &[deployment("reports-a", "legacy", "legacy")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Its ReplicaSet exists before the namespace is managed (a rollout
    // after that is issue 13's stalled-rollout case).
    eventually(
        Duration::from_secs(30),
        "the ReplicaSet of reports-a/legacy",
        || {
            (!env
                .cluster
                .names(&["replicasets", "-n", "reports-a"])
                .is_empty())
            .then_some(())
        },
    );
    env.cluster.kubectl_ok(&[
        "label",
        "namespace",
        "reports-a",
        "platform.io/managed=true",
        "--overwrite",
    ]);
}

fn audit_json(env: &Env, kubeconfig: &std::path::Path) -> (Output, Value) {
    let out = netpol_guard(&[
        "audit",
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--output",
        "json",
    ]);
    let _ = env;
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

pub fn audit_against_the_real_server(env: &Env) {
    reports_namespace(env);
    let (out, report) = audit_json(env, &env.cluster.kubeconfig);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a denial-worthy finding: exit 1; {}",
        stderr(&out)
    );
    let ns = report["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .find(|n| n["name"] == "reports-a")
        .expect("reports-a in the audit")
        .clone();
    assert_eq!(ns["status"], "managed");
    assert_eq!(ns["mode"], "enforce");
    let uncovered: Vec<&str> = ns["uncovered"]
        .as_array()
        .expect("uncovered")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(uncovered, ["legacy"]);
    // The ReplicaSet and Pod the controllers made are judged at the Deployment.
    let findings: Vec<(&str, &str)> = ns["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap_or(""),
                f["rule"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(findings, [("Deployment", "require-network-policy")]);
    let err = stderr(&out);
    assert!(err.contains("audit: deployments: "), "{err}");
    assert!(!err.contains("Status {"), "no Debug dump: {err}");
}

pub fn an_unlistable_kind_is_skipped_with_one_line(env: &Env) {
    reports_namespace(env);
    // An auditor whose role lacks cronjobs: one kind cannot be listed.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "e2e-auditor"},
        "rules": [
            {"apiGroups": [""], "resources": ["namespaces", "pods", "replicationcontrollers", "configmaps"], "verbs": ["get", "list"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list"]},
            {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"], "verbs": ["list"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list"]},
            {"apiGroups": ["cilium.io"], "resources": ["ciliumnetworkpolicies", "ciliumclusterwidenetworkpolicies"], "verbs": ["list"]}]});
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "e2e-auditor", "namespace": "default"}});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "e2e-auditor"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e2e-auditor"},
        "subjects": [{"kind": "ServiceAccount", "name": "e2e-auditor", "namespace": "default"}]});
    let out = apply::apply(env, &[], &[role, sa, binding]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = env
        .cluster
        .kubectl_ok(&["-n", "default", "create", "token", "e2e-auditor"]);
    let kc = env.cluster.dir.join("auditor.kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: https://127.0.0.1:{}\n    certificate-authority: {}\nusers:\n- name: auditor\n  user:\n    token: {}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: auditor}}\ncurrent-context: e2e\n",
            env.cluster.apiserver_port(),
            env.cluster.ca().display(),
            token.trim()
        ),
    )
    .expect("write the auditor kubeconfig");
    let (out, report) = audit_json(env, &kc);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "the audit went on: {err}");
    let skipped: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("cannot be listed"))
        .collect();
    assert_eq!(
        skipped,
        [
            "audit: cronjobs: cannot be listed, skipped (HTTP 403 Forbidden: cronjobs.batch is forbidden: User \"system:serviceaccount:default:e2e-auditor\" cannot list resource \"cronjobs\" in API group \"batch\" at the cluster scope)"
        ],
        "{err}"
    );
    assert!(
        err.contains("warning: 1 kind(s) could not be listed and were not judged: cronjobs"),
        "{err}"
    );
    assert!(!err.contains("Status {"), "no Debug dump: {err}");
    assert!(
        report["namespaces"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["name"] == "reports-a")),
        "the rest was audited"
    );
}

/// (kind, namespace, name, rule, action, message) of every finding.
fn finding_set(findings: impl Iterator<Item = Value>) -> BTreeSet<[String; 6]> {
    findings
        .map(|f| {
            ["kind", "namespace", "name", "rule", "action", "message"]
                .map(|k| f[k].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

pub fn check_on_exported_objects_matches_audit(env: &Env) {
    reports_namespace(env);
    let exported = env.cluster.kubectl_ok(&[
        "get",
        "namespaces,networkpolicies,deployments,statefulsets,daemonsets,replicasets,replicationcontrollers,jobs,cronjobs,pods",
        "-A",
        "-o",
        "yaml",
    ]);
    let file = env.cluster.dir.join("exported.yaml");
    std::fs::write(&file, exported).expect("write the export");
    let check = netpol_guard(&["check", "--output", "json", file.to_str().expect("utf-8")]);
    assert!(
        matches!(check.status.code(), Some(0 | 1)),
        "check: {}",
        stderr(&check)
    );
    let check: Value = serde_json::from_slice(&check.stdout).expect("check JSON");
    let (out, audit) = audit_json(env, &env.cluster.kubeconfig);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    let from_check = finding_set(
        check["findings"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter(),
    );
    let from_audit = finding_set(
        audit["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .flat_map(|n| n["findings"].as_array().cloned().unwrap_or_default()),
    );
    assert!(
        !from_audit.is_empty(),
        "the cluster has findings to compare"
    );
    assert_eq!(
        from_check, from_audit,
        "check on the export and audit agree"
    );
    let _ = stdout;
}

pub fn background_audit_writes_policy_reports(env: &Env) {
    reports_namespace(env);
    env.set_config(&env.config_with(&[("  intervalSeconds: 600\n", "  intervalSeconds: 10\n")]));
    let report = eventually(
        Duration::from_secs(60),
        "a PolicyReport in reports-a",
        || {
            let list = env.cluster.get(&["policyreports", "-n", "reports-a"])?;
            list["items"].as_array()?.first().cloned()
        },
    );
    let results = report["results"].as_array().cloned().unwrap_or_default();
    assert!(
        results.iter().any(|r| r["policy"] == "netpol-guard"
            && r["rule"] == "require-network-policy"
            && r["result"] == "fail"
            && r["resources"][0]["name"] == "legacy"),
        "{results:?}"
    );
    eventually(Duration::from_secs(30), "a ClusterPolicyReport", || {
        let list = env.cluster.get(&["clusterpolicyreports"])?;
        (!list["items"].as_array()?.is_empty()).then_some(())
    });
    env.restore_config();
}

/// A DaemonSet of one container, as a network plugin's installer writes it
/// (the control plane has no nodes: no Pod ever runs).
fn plugin_daemonset(ns: &str, name: &str, container: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": ns, "labels": {"k8s-app": name}},
        "spec": {"selector": {"matchLabels": {"k8s-app": name}},
            "template": {"metadata": {"labels": {"k8s-app": name}},
                "spec": {"hostNetwork": true, "containers": [container]}}}})
}

/// The `cni-not-enforcing` findings of an audit, as (namespace, name).
fn cni_findings(report: &Value) -> Vec<(String, String)> {
    report["clusterFindings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|f| f["rule"] == "cni-not-enforcing")
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (s("namespace"), s("name"))
        })
        .collect()
}

/// Issue 15: flannel alone stores policies and enforces none; `audit` says
/// so from the DaemonSets the real API server lists, and stops saying it
/// once Calico runs beside it. Leaves the cluster as it found it.
pub fn a_cni_that_enforces_nothing_fails_the_audit(env: &Env) {
    env.namespace("kube-flannel", false, None);
    let flannel = plugin_daemonset(
        "kube-flannel",
        "kube-flannel-ds",
        json!({"name": "kube-flannel", "image": "docker.io/flannel/flannel:v0.25.7",
            "command": ["/opt/bin/flanneld"], "args": ["--ip-masq", "--kube-subnet-mgr"]}),
    );
    let out = apply::apply(env, &[], &[flannel]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, report) = audit_json(env, &env.cluster.kubeconfig);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        report["networkPlugin"]["state"], "not-enforcing",
        "{:#}",
        report["networkPlugin"]
    );
    assert_eq!(
        cni_findings(&report),
        [("kube-flannel".to_string(), "kube-flannel-ds".to_string())]
    );

    let calico = plugin_daemonset(
        "kube-system",
        "calico-node",
        json!({"name": "calico-node", "image": "docker.io/calico/node:v3.28.0",
            "env": [{"name": "CALICO_NETWORKING_BACKEND", "value": "none"}]}),
    );
    let out = apply::apply(env, &[], &[calico]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, report) = audit_json(env, &env.cluster.kubeconfig);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    assert_eq!(report["networkPlugin"]["state"], "enforcing");
    assert_eq!(cni_findings(&report), []);

    env.cluster
        .kubectl_ok(&["-n", "kube-system", "delete", "daemonset", "calico-node"]);
    env.cluster.kubectl_ok(&[
        "-n",
        "kube-flannel",
        "delete",
        "daemonset",
        "kube-flannel-ds",
    ]);
    env.cluster
        .kubectl_ok(&["delete", "namespace", "kube-flannel", "--wait=false"]);
}

/// Issue 17: `connectivity --cluster` on the real API server. The
/// Deployments' ReplicaSets and Pods that kube-controller-manager creates
/// are the Deployments' pods, not nodes of their own, and the map is what
/// the policies allow: web reaches db on 5432, and nothing else reaches db.
pub fn connectivity_of_the_real_server(env: &Env) {
    let ns = "conn-a";
    env.namespace(ns, false, None);
    let np = |name: &str, spec: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec})
    };
    let objects = [
        np(
            "deny-all",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        np(
            "db-from-web",
            json!({"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                "ports": [{"port": "pg"}]}]}),
        ),
        np(
            "web-to-db",
            json!({"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}]}),
        ),
        deployment(ns, "web", "web"),
        {
            let mut db = deployment(ns, "db", "db");
            db["spec"]["template"]["spec"]["containers"][0]["ports"] =
                json!([{"name": "pg", "containerPort": 5432}]);
            db
        },
    ];
    let out = apply::apply(env, &[], &objects);
    assert!(out.status.success(), "{}", stderr(&out));
    // The ReplicaSets exist: the map must still show the Deployments only.
    eventually(
        Duration::from_secs(30),
        "the ReplicaSets of web and db",
        || {
            let o = env
                .cluster
                .kubectl(&["-n", ns, "get", "replicasets", "-o", "name"]);
            (stdout(&o).lines().count() >= 2).then_some(())
        },
    );
    let kubeconfig = env.cluster.kubeconfig.to_str().expect("utf-8");
    let out = netpol_guard(&[
        "connectivity",
        "--cluster",
        "--kubeconfig",
        kubeconfig,
        "--focus",
        "conn-a/db",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "conn-a/web[Deployment] => conn-a/db[Deployment] : TCP 5432\n"
    );
    env.cluster
        .kubectl_ok(&["delete", "namespace", ns, "--wait=false"]);
}

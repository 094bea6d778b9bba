//! What a cluster admin does and sees.

use std::time::{Duration, Instant};

use netpol_guard::baseline::{self, ALLOW_DNS, DEFAULT_DENY};
use netpol_guard::config::{Mode, Settings};
use netpol_guard::generate::access::REFUSED;
use serde_json::{Value, json};

use super::settle;
use crate::apply::{
    self, apply_as_developer, as_developer, deployment, egress_policy, policy, warnings,
};
use crate::cluster::{eventually, stderr};
use crate::install::{Env, NAMESPACE, SERVICE_ACCOUNT};

fn world_policy(ns: &str, name: &str) -> Value {
    egress_policy(
        ns,
        name,
        json!({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
    )
}

pub fn a_configmap_edit_takes_effect(env: &Env) {
    env.namespace("admin-a", true, None);
    let denied = apply_as_developer(env, &[], &[world_policy("admin-a", "world-1")]);
    assert!(!denied.status.success(), "world-cidr is deny as shipped");
    env.set_config(&env.config_with(&[("  world-cidr: deny\n", "  world-cidr: warn\n")]));
    let out = apply_as_developer(env, &[], &[world_policy("admin-a", "world-1")]);
    assert!(
        out.status.success(),
        "world-cidr: warn lets it in: {}",
        stderr(&out)
    );
    let w = warnings(&out);
    // Once world-cidr no longer denies the block, cluster-cidr-peer judges
    // it too: without clusterCidrs, a warning about the private ranges.
    assert!(
        w.len() == 2
            && w[0].starts_with("world-cidr: egress rule 0, peer 0: ipBlock 0.0.0.0/0")
            && w[1].starts_with("cluster-cidr-peer: egress rule 0, peer 0: ipBlock 0.0.0.0/0"),
        "{w:?}"
    );
    env.restore_config();
    let out = apply_as_developer(env, &[], &[world_policy("admin-a", "world-2")]);
    assert!(!out.status.success(), "deny again once restored");
}

/// Events of `reason` in `ns` (all namespaces when `None`).
fn events(env: &Env, ns: Option<&str>, reason: &str) -> Vec<Value> {
    let mut args = vec!["events"];
    match ns {
        Some(n) => args.extend_from_slice(&["-n", n]),
        None => args.push("-A"),
    }
    let list = env.cluster.get(&args).unwrap_or_default();
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

pub fn a_bad_configmap_is_reported_and_the_last_good_config_stays(env: &Env) {
    env.namespace("admin-a", true, None);
    let before = events(env, Some(NAMESPACE), "InvalidConfig").len();
    env.set_config("mode: nonsense\n");
    let event = eventually(Duration::from_secs(15), "an InvalidConfig Event", || {
        events(env, Some(NAMESPACE), "InvalidConfig")
            .into_iter()
            .nth(before)
    });
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["involvedObject"]["kind"], "ConfigMap");
    assert_eq!(event["involvedObject"]["name"], "netpol-guard");
    let note = event["message"].as_str().unwrap_or_default();
    assert!(note.contains("mode"), "{note}");
    assert!(
        note.ends_with("the last good configuration stays in force"),
        "{note}"
    );
    let out = apply_as_developer(env, &[], &[world_policy("admin-a", "world-3")]);
    assert!(
        !out.status.success(),
        "the last good config (deny) stays in force"
    );
    for r in &env.replicas {
        assert!(r.metric("netpol_guard_config_reloads_total{result=\"invalid\"}") >= 1.0);
    }
    env.restore_config();
}

fn baseline_now(env: &Env, ns: &str) -> Vec<String> {
    env.cluster.names(&[
        "networkpolicies",
        "-n",
        ns,
        "-l",
        "app.kubernetes.io/managed-by=netpol-guard",
    ])
}

/// The BaselineImpact Events about namespace `ns` (in `default`, where
/// Events about cluster-scoped objects live).
fn impact_events(env: &Env, ns: &str) -> Vec<Value> {
    events(env, None, "BaselineImpact")
        .into_iter()
        .filter(|e| e["involvedObject"]["kind"] == "Namespace" && e["involvedObject"]["name"] == ns)
        .collect()
}

pub fn audit_mode_by_label_creates_nothing_and_enforce_creates_both(env: &Env) {
    // A team's namespace with a workload, opted in to audit mode, as the
    // rollout guide says (docs/operations.md section 5).
    env.namespace("audit-label", false, None);
    let out = apply_as_developer(env, &[], &[deployment("audit-label", "ledger", "ledger")]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(
        Duration::from_secs(30),
        "the ReplicaSet of audit-label/ledger",
        || {
            (!env
                .cluster
                .names(&["replicasets", "-n", "audit-label"])
                .is_empty())
            .then_some(())
        },
    );
    env.cluster.kubectl_ok(&[
        "label",
        "namespace",
        "audit-label",
        "platform.io/managed=true",
        "netpol-guard.io/mode=audit",
    ]);
    // Audit mode: admitted, with the would-be denial as a warning.
    let out = apply_as_developer(env, &[], &[deployment("audit-label", "billing", "billing")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let w = warnings(&out);
    assert!(
        w.len() == 1
            && w[0].starts_with(
                "audit mode, would deny: require-network-policy: Deployment audit-label/billing: no NetworkPolicy selects its pods"
            ),
        "{w:?}"
    );
    // The reconcile ran (its impact report names the workload) and created
    // nothing: any policy that selects pods would enforce.
    let event = eventually(Duration::from_secs(20), "a BaselineImpact Event", || {
        impact_events(env, "audit-label").into_iter().next()
    });
    let note = event["message"].as_str().unwrap_or_default();
    assert!(
        note.starts_with(
            "audit mode: once default-deny is enforced, these workloads would be isolated"
        ) && note.ends_with("Deployment ledger"),
        "{note}"
    );
    assert_eq!(event["metadata"]["namespace"], "default");
    assert!(baseline_now(env, "audit-label").is_empty());
    // Enforce: both together.
    env.cluster.kubectl_ok(&[
        "label",
        "namespace",
        "audit-label",
        "netpol-guard.io/mode=enforce",
        "--overwrite",
    ]);
    env.wait_baseline(
        "audit-label",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
}

pub fn audit_mode_global(env: &Env) {
    env.namespace("audit-global", true, None);
    env.wait_baseline(
        "audit-global",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    env.set_config(&env.config_with(&[("\nmode: enforce\n", "\nmode: audit\n")]));
    // Switching to audit removes what selects pods.
    env.wait_baseline("audit-global", &[], Duration::from_secs(15));
    let out = apply_as_developer(env, &[], &[deployment("audit-global", "ledger", "ledger")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        warnings(&out).iter().any(|w| w.starts_with(
            "audit mode, would deny: require-network-policy: Deployment audit-global/ledger"
        )),
        "{:?}",
        warnings(&out)
    );
    for r in &env.replicas {
        assert!(
            r.metric(
                "netpol_guard_audit_would_deny_total{rule=\"require-network-policy\",namespace=\"audit-global\"}"
            ) + env
                .other(&r.name)
                .metric("netpol_guard_audit_would_deny_total{rule=\"require-network-policy\",namespace=\"audit-global\"}")
                >= 1.0
        );
    }
    env.restore_config();
    env.wait_baseline(
        "audit-global",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
}

pub fn unmanaging_removes_the_baseline(env: &Env) {
    env.namespace("unmanage-me", true, None);
    env.wait_baseline(
        "unmanage-me",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    env.cluster
        .kubectl_ok(&["label", "namespace", "unmanage-me", "platform.io/managed-"]);
    env.wait_baseline("unmanage-me", &[], Duration::from_secs(15));
}

pub fn a_users_delete_of_the_baseline_is_denied(env: &Env) {
    env.namespace("admin-b", true, None);
    env.wait_baseline(
        "admin-b",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    let out = as_developer(
        env,
        &["delete", "networkpolicy", "-n", "admin-b", DEFAULT_DENY],
        None,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "Error from server (Forbidden): admission webhook \"policies.netpol-guard.io\" denied the request: netpol-guard: baseline-protected: alice@example.com may not delete NetworkPolicy admin-b/netpol-guard-default-deny: it is netpol-guard's baseline for managed namespace admin-b."
        ),
        "{err}"
    );
    // cluster-admin too: the way out is unmanaging the namespace.
    let out = env
        .cluster
        .kubectl(&["delete", "networkpolicy", "-n", "admin-b", ALLOW_DNS]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("baseline-protected: admin may not delete"),
        "{}",
        stderr(&out)
    );
    assert_eq!(baseline_now(env, "admin-b"), [ALLOW_DNS, DEFAULT_DENY]);
}

pub fn edited_baseline_is_restored(env: &Env) {
    env.namespace("admin-c", true, None);
    env.wait_baseline(
        "admin-c",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    let before = env
        .cluster
        .get(&["networkpolicy", "-n", "admin-c", ALLOW_DNS])
        .expect("the DNS allow");
    // Only netpol-guard's own identity may change it (baseline-protected):
    // drift from a second writer with that identity.
    let out = env.cluster.kubectl(&[
        "--as",
        SERVICE_ACCOUNT,
        "patch",
        "networkpolicy",
        "-n",
        "admin-c",
        ALLOW_DNS,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"egress":[{"ports":[{"protocol":"UDP","port":5353}]}]}}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(Duration::from_secs(15), "the DNS allow restored", || {
        let now = env
            .cluster
            .get(&["networkpolicy", "-n", "admin-c", ALLOW_DNS])?;
        (now["spec"] == before["spec"]).then_some(())
    });
    eventually(Duration::from_secs(15), "a BaselineRestored Event", || {
        events(env, None, "BaselineRestored")
            .into_iter()
            .find(|e| e["involvedObject"]["name"] == "admin-c")
    });
}

/// Creates a managed namespace with its baseline and a covered workload,
/// deletes it, and returns how long deletion took.
fn delete_managed_namespace(env: &Env, ns: &str) -> Duration {
    env.namespace(ns, true, None);
    env.wait_baseline(ns, &[ALLOW_DNS, DEFAULT_DENY], Duration::from_secs(15));
    let out = apply::apply(
        env,
        &[],
        &[
            policy(ns, "ledger", "ledger"),
            deployment(ns, "ledger", "ledger"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let started = Instant::now();
    env.cluster
        .kubectl_ok(&["delete", "namespace", ns, "--wait=false"]);
    eventually(
        Duration::from_secs(30),
        &format!("namespace {ns} deleted"),
        || env.cluster.get(&["namespace", ns]).is_none().then_some(()),
    );
    started.elapsed()
}

/// The users whose baseline DELETEs the replicas allowed in `ns`.
fn baseline_deleters(env: &Env, ns: &str) -> Vec<String> {
    let mut users: Vec<String> = env
        .replicas
        .iter()
        .flat_map(|r| r.logged(0, "admission decision"))
        .filter(|l| {
            l["namespace"] == ns
                && l["operation"] == "DELETE"
                && l["kind"] == "NetworkPolicy"
                && l["decision"] == "Allowed"
        })
        .filter_map(|l| l["user"].as_str().map(String::from))
        .collect();
    users.sort();
    users.dedup();
    users
}

pub fn namespace_deletion_completes_with_per_controller_credentials(env: &Env) {
    let took = delete_managed_namespace(env, "del-per-controller");
    println!("e2e:   namespace deleted in {:.1} s", took.as_secs_f64());
    assert_eq!(
        baseline_deleters(env, "del-per-controller"),
        ["system:serviceaccount:kube-system:namespace-controller"]
    );
}

pub fn namespace_deletion_completes_with_shared_credentials(env: &Env) {
    env.cluster.restart_kcm(true);
    let took = delete_managed_namespace(env, "del-shared");
    println!("e2e:   namespace deleted in {:.1} s", took.as_secs_f64());
    // The controller manager's own user, which netpol-guard knows nothing
    // about: let through because the namespace is terminating.
    assert_eq!(
        baseline_deleters(env, "del-shared"),
        ["e2e:controller-manager"]
    );
    env.cluster.restart_kcm(false);
}

pub fn auto_manage_labels_a_new_namespace(env: &Env) {
    env.set_config(&env.config_with(&[("\nautoManage: false\n", "\nautoManage: true\n")]));
    env.cluster.kubectl_ok(&["create", "namespace", "auto-1"]);
    let ns = env.cluster.get(&["namespace", "auto-1"]).expect("auto-1");
    assert_eq!(ns["metadata"]["labels"]["platform.io/managed"], "true");
    env.wait_baseline(
        "auto-1",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    // Opted out: left alone.
    let out = apply::apply(
        env,
        &[],
        &[json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "auto-2", "labels": {"netpol-guard.io/managed": "false"}}})],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ns = env.cluster.get(&["namespace", "auto-2"]).expect("auto-2");
    assert!(
        ns["metadata"]["labels"]
            .get("platform.io/managed")
            .is_none()
    );
    env.restore_config();
}

pub fn every_event_is_visible_and_none_failed(env: &Env) {
    env.namespace("events-a", true, None);
    env.wait_baseline(
        "events-a",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    // One BaselineCreated names both policies (issue 16: one Event per
    // reconcile and kind of write, not one per policy).
    let created = || -> Vec<Value> {
        events(env, None, "BaselineCreated")
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == "events-a")
            .collect()
    };
    eventually(Duration::from_secs(15), "a BaselineCreated Event", || {
        (!created().is_empty()).then_some(())
    });
    settle(Duration::from_millis(500));
    let created = created();
    assert_eq!(created.len(), 1, "{created:?}");
    for e in &created {
        assert_eq!(
            e["message"],
            format!("netpol-guard created NetworkPolicies {DEFAULT_DENY}, {ALLOW_DNS}")
        );
        assert_eq!(e["metadata"]["namespace"], "default");
        assert_eq!(e["involvedObject"]["kind"], "Namespace");
        assert_eq!(e["reportingComponent"], "netpol-guard");
    }
    // The reasons earlier journeys produced, all listed by `get events -A`.
    for reason in ["BaselineImpact", "BaselineRestored", "InvalidConfig"] {
        assert!(
            !events(env, None, reason).is_empty(),
            "no {reason} Event in kubectl get events -A"
        );
    }
    settle(Duration::from_millis(500));
    for r in &env.replicas {
        let text = r.get("/metrics").unwrap_or_default();
        let failures: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("netpol_guard_event_failures_total{"))
            .collect();
        assert!(failures.is_empty(), "{}: {failures:?}", r.name);
    }
}

/// Issue 13: a Deployment that existed before its namespace was managed
/// must still roll out (existing workloads keep working until fixed); its
/// new ReplicaSet, created by the deployment controller, was denied.
pub fn an_existing_uncovered_deployment_still_rolls_out(env: &Env) {
    env.namespace("rollout", false, None);
    let out = apply_as_developer(env, &[], &[deployment("rollout", "legacy", "legacy")]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(Duration::from_secs(30), "the first ReplicaSet", || {
        (env.cluster.names(&["replicasets", "-n", "rollout"]).len() == 1).then_some(())
    });
    env.cluster
        .kubectl_ok(&["label", "namespace", "rollout", "platform.io/managed=true"]);
    env.wait_baseline(
        "rollout",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    // The update is let through with a warning (it was already uncovered)...
    let out = as_developer(
        env,
        &[
            "-n",
            "rollout",
            "set",
            "image",
            "deployment/legacy",
            "app=registry.example/app:2",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        warnings(&out).iter().any(|w| w.starts_with(
            "require-network-policy: Deployment rollout/legacy has no NetworkPolicy; this update is allowed"
        )),
        "{:?}",
        warnings(&out)
    );
    // ...and the deployment controller's new ReplicaSet gets in.
    eventually(
        Duration::from_secs(30),
        "the rollout's new ReplicaSet",
        || (env.cluster.names(&["replicasets", "-n", "rollout"]).len() == 2).then_some(()),
    );
    // A new uncovered Deployment is still denied.
    let out = apply_as_developer(env, &[], &[deployment("rollout", "fresh", "fresh")]);
    assert!(!out.status.success());
}

/// Issue 15, part 4: an admin-defined baseline policy.
const EXTRA: &str = "netpol-guard-allow-prometheus-scrape";

/// The shipped config with one extra baseline policy letting Prometheus
/// scrape `port`.
fn extra_config(env: &Env, port: u16) -> String {
    env.config_with(&[(
        "\n  extraPolicies: []\n",
        &format!(
            "\n  extraPolicies:\n  - name: allow-prometheus-scrape\n    spec:\n      podSelector: {{}}\n      policyTypes: [Ingress]\n      ingress:\n      - from:\n        - namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: monitoring}}}}\n          podSelector: {{matchLabels: {{app.kubernetes.io/name: prometheus}}}}\n        ports: [{{port: {port}}}]\n"
        ),
    )])
}

/// Sets the names netpol-guard's ClusterRole lets it update, patch and
/// delete: the built-ins plus `extra`, as docs/rules.md tells admins to.
fn set_baseline_resource_names(env: &Env, extra: &[&str]) {
    let mut role = env
        .cluster
        .get(&["clusterrole", "netpol-guard"])
        .expect("the ClusterRole");
    let mut found = false;
    for rule in role["rules"].as_array_mut().expect("rules") {
        let baseline_rule = rule["resourceNames"]
            .as_array()
            .is_some_and(|n| n.iter().any(|x| x == DEFAULT_DENY));
        if baseline_rule {
            let mut names = vec![DEFAULT_DENY, ALLOW_DNS];
            names.extend_from_slice(extra);
            rule["resourceNames"] = json!(names);
            found = true;
        }
    }
    assert!(found, "no baseline rule in the ClusterRole: {role}");
    let out = env
        .cluster
        .kubectl_stdin(&["replace", "-f", "-"], Some(&role.to_string()));
    assert!(
        out.status.success(),
        "replace the ClusterRole: {}",
        stderr(&out)
    );
}

fn scrape_port(env: &Env, ns: &str) -> Option<Value> {
    env.cluster
        .get(&["networkpolicy", "-n", ns, EXTRA])
        .map(|p| p["spec"]["ingress"][0]["ports"][0]["port"].clone())
}

pub fn extra_baseline_policies_are_generated_restored_and_rolled_out(env: &Env) {
    let with_extra = [ALLOW_DNS, EXTRA, DEFAULT_DENY];
    env.namespace("extra-a", true, None);
    env.wait_baseline(
        "extra-a",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    // The shipped RBAC does not name it: each replica says so, from the
    // API server's own answer to its SelfSubjectAccessReviews.
    let skip: Vec<usize> = env.replicas.iter().map(|r| r.logs().len()).collect();
    env.set_config(&extra_config(env, 9090));
    for (r, skip) in env.replicas.iter().zip(skip) {
        let line = eventually(
            Duration::from_secs(15),
            &format!("{}: the RBAC warning", r.name),
            || r.logged(skip, REFUSED).into_iter().next(),
        );
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["policy"], EXTRA, "{line}");
        assert_eq!(line["refused"], "patch,update,delete", "{line}");
    }
    // As the docs say: the name joins the ClusterRole's resourceNames.
    set_baseline_resource_names(env, &[EXTRA]);
    // A new namespace gets the extra policy, and so does one that existed
    // (its reconcile failed meanwhile, and is retried with backoff).
    env.namespace("extra-b", true, None);
    env.wait_baseline("extra-b", &with_extra, Duration::from_secs(15));
    env.wait_baseline("extra-a", &with_extra, Duration::from_secs(90));
    // Exactly what netpol-guard computes, as the real API server stores it
    // (defaults filled in), and provably netpol-guard's (managedFields).
    let settings = Settings::from_yaml(&extra_config(env, 9090)).expect("the config");
    let want = baseline::desired("extra-b", &settings, Mode::Enforce)
        .pop()
        .expect("the extra policy");
    let got = env
        .cluster
        .get(&["networkpolicy", "-n", "extra-b", EXTRA])
        .expect("the extra policy");
    assert_eq!(got["spec"], want["spec"]);
    assert!(baseline::exactly_as_desired(&got, &want), "{got}");
    // A developer may not delete it.
    let out = as_developer(
        env,
        &["delete", "networkpolicy", "-n", "extra-b", EXTRA],
        None,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "baseline-protected: alice@example.com may not delete NetworkPolicy extra-b/{EXTRA}: it is netpol-guard's baseline"
        )),
        "{}",
        stderr(&out)
    );
    // An edit (a second writer with netpol-guard's identity) is restored.
    let out = env.cluster.kubectl(&[
        "--as",
        SERVICE_ACCOUNT,
        "patch",
        "networkpolicy",
        "-n",
        "extra-b",
        EXTRA,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"ingress":[{"ports":[{"protocol":"TCP","port":1}]}]}}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(Duration::from_secs(15), "the extra policy restored", || {
        let now = env
            .cluster
            .get(&["networkpolicy", "-n", "extra-b", EXTRA])?;
        (now["spec"] == want["spec"]).then_some(())
    });
    eventually(Duration::from_secs(15), "a BaselineRestored Event", || {
        events(env, None, "BaselineRestored").into_iter().find(|e| {
            e["involvedObject"]["name"] == "extra-b"
                && e["message"].as_str().is_some_and(|m| m.contains(EXTRA))
        })
    });
    // A config change (a ConfigMap edit) rolls out to every namespace.
    env.set_config(&extra_config(env, 9091));
    for ns in ["extra-a", "extra-b"] {
        eventually(
            Duration::from_secs(30),
            &format!("port 9091 in {ns}"),
            || (scrape_port(env, ns) == Some(json!(9091))).then_some(()),
        );
    }
    // Removed from the config: deleted from every managed namespace (the
    // name stays in RBAC until then), the built-ins stay.
    env.restore_config();
    for ns in ["extra-a", "extra-b"] {
        env.wait_baseline(ns, &[ALLOW_DNS, DEFAULT_DENY], Duration::from_secs(30));
    }
    eventually(
        Duration::from_secs(90),
        "the extra policy gone from every namespace",
        || {
            let left = env.cluster.get(&[
                "networkpolicies",
                "-A",
                "-l",
                "app.kubernetes.io/managed-by=netpol-guard",
            ])?;
            let any = left["items"]
                .as_array()
                .is_some_and(|items| items.iter().any(|p| p["metadata"]["name"] == EXTRA));
            (!any).then_some(())
        },
    );
    set_baseline_resource_names(env, &[]);
}

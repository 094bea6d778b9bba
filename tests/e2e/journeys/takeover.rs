//! Issue 13, part 1: nobody but netpol-guard owns the baseline. Squatted
//! names are taken over whole, added fields are reverted, the managed-by
//! label proves nothing, and a kept baseline is released.

use std::time::Duration;

use netpol_guard::baseline::{self, ALLOW_DNS, DEFAULT_DENY};
use netpol_guard::config::{Mode, Settings};
use serde_json::{Value, json};

use crate::apply::{apply_as_developer, as_developer, deployment};
use crate::cluster::{eventually, stderr};
use crate::install::{Env, SERVICE_ACCOUNT};

/// A policy under a baseline name that passes every rule, as a developer
/// would write it to squat the name.
fn squatter(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                "ports": [{"protocol": "TCP", "port": 8080}]}],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                "ports": [{"protocol": "TCP", "port": 5432}]}]}})
}

/// Waits until both baseline policies in `ns` are exactly what netpol-guard
/// writes: the spec field for field, and netpol-guard the only manager of
/// the spec.
fn wait_exact_baseline(env: &Env, ns: &str) {
    let desired = baseline::desired(ns, &Settings::default(), Mode::Enforce);
    for want in &desired {
        let name = want["metadata"]["name"].as_str().expect("a name");
        eventually(
            Duration::from_secs(20),
            &format!("{ns}/{name} exactly the baseline"),
            || {
                let got =
                    env.cluster
                        .get(&["networkpolicy", "-n", ns, name, "--show-managed-fields"])?;
                (got["spec"] == want["spec"] && baseline::is_ours(&got)).then_some(())
            },
        );
        let got = env
            .cluster
            .get(&["networkpolicy", "-n", ns, name, "--show-managed-fields"])
            .expect("the policy");
        assert_eq!(got["metadata"]["labels"], want["metadata"]["labels"]);
        assert_eq!(
            got["metadata"]["annotations"],
            want["metadata"]["annotations"]
        );
    }
}

pub fn a_name_squatted_while_unmanaged_is_taken_over(env: &Env) {
    env.namespace("squat-a", false, None);
    let out = apply_as_developer(env, &[], &[squatter("squat-a", DEFAULT_DENY)]);
    assert!(
        out.status.success(),
        "free in an unmanaged namespace: {}",
        stderr(&out)
    );
    env.cluster
        .kubectl_ok(&["label", "namespace", "squat-a", "platform.io/managed=true"]);
    wait_exact_baseline(env, "squat-a");
    eventually(Duration::from_secs(15), "a BaselineTakenOver Event", || {
        let list = env.cluster.get(&["events", "-n", "default"])?;
        list["items"]
            .as_array()?
            .iter()
            .find(|e| {
                e["reason"] == "BaselineTakenOver" && e["involvedObject"]["name"] == "squat-a"
            })
            .map(|_| ())
    });
}

pub fn a_name_squatted_before_audit_is_taken_over_on_enforce(env: &Env) {
    env.namespace("squat-b", false, None);
    let out = apply_as_developer(env, &[], &[squatter("squat-b", ALLOW_DNS)]);
    assert!(out.status.success(), "{}", stderr(&out));
    env.cluster.kubectl_ok(&[
        "label",
        "namespace",
        "squat-b",
        "platform.io/managed=true",
        "netpol-guard.io/mode=audit",
    ]);
    // Audit mode: the names are reserved now, CREATE included.
    let out = apply_as_developer(env, &[], &[squatter("squat-b", DEFAULT_DENY)]);
    assert!(!out.status.success(), "a reserved name in audit mode");
    assert!(
        stderr(&out).contains(
            "baseline-protected: alice@example.com may not create NetworkPolicy squat-b/netpol-guard-default-deny: the name is reserved"
        ),
        "{}",
        stderr(&out)
    );
    env.cluster.kubectl_ok(&[
        "label",
        "namespace",
        "squat-b",
        "netpol-guard.io/mode=enforce",
        "--overwrite",
    ]);
    wait_exact_baseline(env, "squat-b");
}

pub fn fields_added_to_the_baseline_are_reverted(env: &Env) {
    env.namespace("squat-c", true, None);
    env.wait_baseline(
        "squat-c",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    // The webhook denies this to everyone but netpol-guard: as if it had
    // been unavailable, write it as netpol-guard's own identity.
    let out = env.cluster.kubectl(&[
        "--as",
        SERVICE_ACCOUNT,
        "patch",
        "networkpolicy",
        "-n",
        "squat-c",
        DEFAULT_DENY,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"ingress":[{"from":[{"podSelector":{"matchLabels":{"app":"web"}}}]}]}}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_exact_baseline(env, "squat-c");
}

pub fn the_label_alone_makes_nothing_a_baseline(env: &Env) {
    env.namespace("impostor", true, None);
    env.wait_baseline(
        "impostor",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    let labelled = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "ledger", "namespace": "impostor",
            "labels": {"app.kubernetes.io/managed-by": "netpol-guard"}},
        "spec": {"podSelector": {"matchLabels": {"app": "ledger"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "gateway"}}}]}]}});
    for admin in [false, true] {
        let out = if admin {
            crate::apply::apply(env, &[], std::slice::from_ref(&labelled))
        } else {
            apply_as_developer(env, &[], std::slice::from_ref(&labelled))
        };
        assert!(!out.status.success(), "admin {admin}: setting the label");
        assert!(
            stderr(&out).contains("may not label NetworkPolicy impostor/ledger app.kubernetes.io/managed-by=netpol-guard"),
            "{}",
            stderr(&out)
        );
    }
    // One that got in anyway (written as netpol-guard's identity) is an
    // ordinary policy: it covers its pods, and a developer may delete it.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [labelled]}).to_string();
    let out = env
        .cluster
        .kubectl_stdin(&["--as", SERVICE_ACCOUNT, "apply", "-f", "-"], Some(&list));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = apply_as_developer(env, &[], &[deployment("impostor", "ledger", "ledger")]);
    assert!(
        out.status.success(),
        "the labelled policy covers its pods: {}",
        stderr(&out)
    );
    let out = as_developer(
        env,
        &["delete", "networkpolicy", "-n", "impostor", "ledger"],
        None,
    );
    assert!(
        out.status.success(),
        "an impostor is deletable: {}",
        stderr(&out)
    );
}

pub fn a_kept_baseline_is_released(env: &Env) {
    env.namespace("keep-me", true, None);
    env.wait_baseline(
        "keep-me",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    env.set_config(&env.config_with(&[("  onUnmanage: delete\n", "  onUnmanage: keep\n")]));
    env.cluster
        .kubectl_ok(&["label", "namespace", "keep-me", "platform.io/managed-"]);
    // Kept, but no longer netpol-guard's: the label and hash are gone.
    env.wait_baseline("keep-me", &[], Duration::from_secs(15));
    assert_eq!(
        env.cluster.names(&["networkpolicies", "-n", "keep-me"]),
        [ALLOW_DNS, DEFAULT_DENY]
    );
    let out = as_developer(
        env,
        &["delete", "networkpolicy", "-n", "keep-me", DEFAULT_DENY],
        None,
    );
    assert!(
        out.status.success(),
        "an ordinary policy now: {}",
        stderr(&out)
    );
    env.restore_config();
}

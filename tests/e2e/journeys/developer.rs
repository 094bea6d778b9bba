//! What a developer sees in a managed namespace.

use std::time::Duration;

use netpol_guard::baseline::{self, ALLOW_DNS, DEFAULT_DENY};
use netpol_guard::config::{Mode, Settings};
use serde_json::json;

use super::offline_denial;
use crate::apply::{
    self, apply_as_developer, cronjob, deployment, egress_policy, pod, policy, warnings,
};
use crate::cluster::{eventually, stderr};
use crate::install::Env;

pub fn managed_namespace_gets_its_baseline(env: &Env) {
    env.namespace("dev-a", true, None);
    env.wait_baseline("dev-a", &[ALLOW_DNS, DEFAULT_DENY], Duration::from_secs(15));
    let desired = baseline::desired("dev-a", &Settings::default(), Mode::Enforce);
    for want in &desired {
        let name = want["metadata"]["name"].as_str().expect("a name");
        let got = env
            .cluster
            .get(&[
                "networkpolicy",
                "-n",
                "dev-a",
                name,
                "--show-managed-fields",
            ])
            .expect("the baseline policy");
        assert_eq!(got["spec"], want["spec"], "{name}: the exact spec");
        assert_eq!(
            got["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "netpol-guard"
        );
        assert_eq!(
            got["metadata"]["annotations"]["netpol-guard.io/config-hash"],
            want["metadata"]["annotations"]["netpol-guard.io/config-hash"]
        );
        let managers: Vec<&str> = got["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert_eq!(
            managers,
            ["netpol-guard"],
            "{name}: written by server-side apply only"
        );
    }
}

/// The exact text kubectl prints for a webhook denial of a create (the
/// message's own last newline is not printed twice).
fn denied_create(webhook: &str, message: &str) -> String {
    format!(
        "Error from server (Forbidden): error when creating \"STDIN\": admission webhook \"{webhook}\" denied the request: {}\n",
        message.trim_end()
    )
}

pub fn uncovered_workloads_are_rejected_with_the_whole_message(env: &Env) {
    env.namespace("dev-a", true, None);
    env.wait_baseline("dev-a", &[ALLOW_DNS, DEFAULT_DENY], Duration::from_secs(15));
    for obj in [
        deployment("dev-a", "ledger", "ledger"),
        cronjob("dev-a", "nightly", "nightly"),
        pod("dev-a", "debug", "debug"),
    ] {
        let kind = obj["kind"].as_str().expect("kind").to_string();
        let message = offline_denial(env, &obj);
        assert!(
            message.starts_with(&format!(
                "netpol-guard: require-network-policy: {kind} dev-a/{}: no NetworkPolicy selects its pods (pod labels: app=",
                obj["metadata"]["name"].as_str().expect("name")
            )),
            "{message}"
        );
        assert!(message.contains("\nFix: "), "{message}");
        let out = apply_as_developer(env, &[], std::slice::from_ref(&obj));
        assert!(!out.status.success(), "{kind} must be rejected");
        assert_eq!(
            stderr(&out),
            denied_create("workloads.netpol-guard.io", &message),
            "{kind}: the whole message as kubectl prints it"
        );
        let plural = format!("{}s", kind.to_lowercase());
        assert!(
            env.cluster.names(&[&plural, "-n", "dev-a"]).is_empty(),
            "no {kind} was stored"
        );
    }
}

pub fn policy_and_deployment_in_one_apply_are_accepted(env: &Env) {
    for (ns, server_side) in [("dev-b", false), ("dev-c", true)] {
        env.namespace(ns, true, None);
        env.wait_baseline(ns, &[ALLOW_DNS, DEFAULT_DENY], Duration::from_secs(15));
        // As `kubectl apply -f dir/`: the policy's file sorts first, and the
        // Deployment follows within milliseconds, before any watch event.
        let dir = env.cluster.dir.join(format!("apply-{ns}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let p = policy(ns, "ledger", "ledger");
        let d = deployment(ns, "ledger", "ledger");
        std::fs::write(dir.join("00-policy.json"), p.to_string()).expect("write");
        std::fs::write(dir.join("10-deployment.json"), d.to_string()).expect("write");
        let dir = dir.to_str().expect("utf-8").to_string();
        let mut args = vec![
            "--as",
            crate::install::DEVELOPER,
            "--as-group",
            "system:authenticated",
            "apply",
            "-f",
            &dir,
        ];
        if server_side {
            args.push("--server-side");
        }
        let out = env.cluster.kubectl(&args);
        assert!(
            out.status.success(),
            "{ns}: policy + Deployment in one apply (server-side {server_side}): {}",
            stderr(&out)
        );
        assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
        assert_eq!(env.cluster.names(&["deployments", "-n", ns]), ["ledger"]);
        // Applying the same directory again changes nothing and is allowed.
        let again = env.cluster.kubectl(&args);
        assert!(again.status.success(), "{}", stderr(&again));
    }
}

pub fn controller_owned_pods_never_reach_the_webhook(env: &Env) {
    // The Deployment of the previous journey, or a fresh one.
    env.namespace("dev-b", true, None);
    let out = apply::apply(
        env,
        &[],
        &[
            policy("dev-b", "ledger", "ledger"),
            deployment("dev-b", "ledger", "ledger"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The deployment controller creates a ReplicaSet (judged: a workload),
    // the ReplicaSet controller a Pod (skipped by matchConditions).
    let pods = eventually(
        Duration::from_secs(30),
        "the controller-created Pod",
        || {
            let pods = env
                .cluster
                .names(&["pods", "-n", "dev-b", "-l", "app=ledger"]);
            (!pods.is_empty()).then_some(pods)
        },
    );
    let decisions: Vec<serde_json::Value> = env
        .replicas
        .iter()
        .flat_map(|r| r.logged(0, "admission decision"))
        .filter(|l| l["namespace"] == "dev-b")
        .collect();
    assert!(
        decisions.iter().any(|l| l["kind"] == "ReplicaSet"),
        "the ReplicaSet the deployment controller wrote was judged"
    );
    let pod_decisions: Vec<_> = decisions.iter().filter(|l| l["kind"] == "Pod").collect();
    assert!(
        pod_decisions.is_empty(),
        "controller-owned Pods {pods:?} reached the webhook: {pod_decisions:?}"
    );
}

pub fn dangerous_policies_are_denied_and_warnings_are_printed(env: &Env) {
    env.namespace("dev-a", true, None);
    let cases = [
        (
            "any-namespace",
            json!({"to": [{"namespaceSelector": {}}]}),
            "any-namespace-peer",
        ),
        (
            "world",
            json!({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
            "world-cidr",
        ),
    ];
    for (name, rule, rule_id) in cases {
        let obj = egress_policy("dev-a", name, rule);
        let out = apply_as_developer(env, &[], std::slice::from_ref(&obj));
        assert!(!out.status.success(), "{name} must be denied");
        let err = stderr(&out);
        assert!(
            err.starts_with(
                "Error from server (Forbidden): error when creating \"STDIN\": admission webhook \"policies.netpol-guard.io\" denied the request: netpol-guard: "
            ),
            "{err}"
        );
        assert!(
            err.contains(&format!("{rule_id}: egress rule 0, peer 0: ")),
            "{err}"
        );
    }
    // A warning is a `Warning:` line, and the policy is stored; both apply modes.
    for (name, extra) in [
        ("dns-udp", &[][..]),
        ("dns-udp-ssa", &["--server-side"][..]),
    ] {
        let obj = egress_policy(
            "dev-a",
            name,
            json!({"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}]}),
        );
        let out = apply_as_developer(env, extra, std::slice::from_ref(&obj));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let w = warnings(&out);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("dns-single-protocol: "), "{w:?}");
        assert!(
            env.cluster
                .get(&["networkpolicy", "-n", "dev-a", name])
                .is_some()
        );
    }
}

/// Issue 13: pods on the host network escape every NetworkPolicy.
pub fn host_network_workloads_are_rejected(env: &Env) {
    env.namespace("dev-a", true, None);
    let mut ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "dev-a"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"hostNetwork": true,
                    "containers": [{"name": "agent", "image": "registry.example/agent:1"}]}}}});
    let out = apply_as_developer(env, &[], &[policy("dev-a", "agent", "agent"), ds.clone()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("admission webhook \"workloads.netpol-guard.io\" denied the request: netpol-guard: host-network: DaemonSet dev-a/agent: its pods use the node's network (hostNetwork: true)"),
        "{}",
        stderr(&out)
    );
    ds["spec"]["template"]["spec"]["hostNetwork"] = json!(false);
    let out = apply_as_developer(env, &[], &[ds]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Deleting the only policy of a running Deployment (and of a bare Pod)
/// warns and names them, from the watched workloads: kubectl prints it.
/// Once they are gone, the same delete is silent.
pub fn deleting_the_only_policy_of_workloads_names_them(env: &Env) {
    env.namespace("dev-d", true, None);
    env.wait_baseline("dev-d", &[ALLOW_DNS, DEFAULT_DENY], Duration::from_secs(15));
    let out = apply_as_developer(
        env,
        &[],
        &[
            policy("dev-d", "web", "web"),
            deployment("dev-d", "web", "web"),
            pod("dev-d", "probe", "web"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The watches see them within moments; a dry-run delete asks the
    // webhook without deleting anything.
    let want = "uncovers-workloads: deleting NetworkPolicy dev-d/web leaves Deployment web, Pod probe without a \
                policy that grants their pods traffic. Cover them first.";
    let dry_run_delete = || {
        crate::apply::as_developer(
            env,
            &[
                "delete",
                "networkpolicy",
                "-n",
                "dev-d",
                "web",
                "--dry-run=server",
            ],
            None,
        )
    };
    eventually(Duration::from_secs(15), "the warning naming both", || {
        let out = dry_run_delete();
        warnings(&out).iter().any(|w| w == want).then_some(())
    });
    let out = crate::apply::as_developer(
        env,
        &[
            "delete",
            "deployment,pod",
            "-n",
            "dev-d",
            "--all",
            "--wait=false",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    eventually(
        Duration::from_secs(30),
        "a silent delete once they are gone",
        || {
            let out = dry_run_delete();
            (out.status.success() && warnings(&out).is_empty()).then_some(())
        },
    );
    let out = crate::apply::as_developer(
        env,
        &["delete", "networkpolicy", "-n", "dev-d", "web"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A bare Pod that names a ConfigMap (or a made-up kind) as its controller
/// is not a controller's Pod: the matchCondition sends it to the webhook,
/// and it is judged like any bare Pod. A Pod naming a real workload
/// controller kind is skipped by the API server itself.
pub fn a_made_up_controller_owner_does_not_skip_the_pod(env: &Env) {
    env.namespace("dev-e", true, None);
    env.wait_baseline("dev-e", &[ALLOW_DNS, DEFAULT_DENY], Duration::from_secs(15));
    for (api_version, kind) in [("v1", "ConfigMap"), ("example.com/v1", "ReplicaSet")] {
        let mut p = pod("dev-e", "sneaky", "sneaky");
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": api_version, "kind": kind,
            "name": "anything", "uid": "0b6c5c5e-0000-4000-8000-000000000001", "controller": true}]);
        let out = apply_as_developer(env, &[], &[p]);
        assert!(
            !out.status.success(),
            "owned by {api_version} {kind}: must be judged"
        );
        assert!(
            stderr(&out).contains("denied the request: netpol-guard: require-network-policy: Pod dev-e/sneaky: no NetworkPolicy selects its pods"),
            "{}",
            stderr(&out)
        );
    }
    // Owned by an apps/v1 ReplicaSet: the API server never asks (the
    // garbage collector removes the Pod, whose owner does not exist).
    let mut p = pod("dev-e", "skipped", "skipped");
    p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "gone", "uid": "0b6c5c5e-0000-4000-8000-000000000002", "controller": true}]);
    let out = apply_as_developer(env, &["--dry-run=server"], &[p]);
    assert!(out.status.success(), "{}", stderr(&out));
    let judged = env
        .replicas
        .iter()
        .flat_map(|r| r.logged(0, "admission decision"))
        .any(|l| l["namespace"] == "dev-e" && l["name"] == "skipped");
    assert!(
        !judged,
        "a Pod of an apps/v1 ReplicaSet reached the webhook"
    );
}

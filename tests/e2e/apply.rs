//! Objects the journeys apply, and kubectl as the developer.

use std::process::Output;

use serde_json::{Value, json};

use crate::install::{DEVELOPER, Env};

pub fn deployment(ns: &str, name: &str, app: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1",
                    "ports": [{"name": "http", "containerPort": 8080}]}]}}}})
}

pub fn cronjob(ns: &str, name: &str, app: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {
            "metadata": {"labels": {"app": app}},
            "spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "job", "image": "registry.example/job:1"}]}}}}}})
}

pub fn pod(ns: &str, name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}})
}

/// A policy that covers pods `app=APP`: ingress from `app=gateway` on TCP 8080.
pub fn policy(ns: &str, name: &str, app: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "gateway"}}}],
                "ports": [{"protocol": "TCP", "port": 8080}]}]}})
}

/// A policy with this egress rule, for the dangerous-policy journeys.
pub fn egress_policy(ns: &str, name: &str, rule: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
            "egress": [rule]}})
}

fn list(objects: &[Value]) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string()
}

/// `kubectl apply -f -` (extra args first, e.g. `--server-side`) as
/// cluster-admin.
pub fn apply(env: &Env, extra: &[&str], objects: &[Value]) -> Output {
    let mut args = vec!["apply"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "-"]);
    env.cluster.kubectl_stdin(&args, Some(&list(objects)))
}

/// `kubectl ARGS` as the developer (the `edit` role in their namespaces).
pub fn as_developer(env: &Env, args: &[&str], stdin: Option<&[Value]>) -> Output {
    let mut full = vec!["--as", DEVELOPER, "--as-group", "system:authenticated"];
    full.extend_from_slice(args);
    let input = stdin.map(list);
    env.cluster.kubectl_stdin(&full, input.as_deref())
}

/// `kubectl apply -f -` as the developer.
pub fn apply_as_developer(env: &Env, extra: &[&str], objects: &[Value]) -> Output {
    let mut args = vec!["apply"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "-"]);
    as_developer(env, &args, Some(objects))
}

/// The `Warning:` lines kubectl printed.
pub fn warnings(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("Warning: "))
        .map(String::from)
        .collect()
}

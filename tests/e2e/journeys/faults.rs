//! The API server restarting under netpol-guard, and netpol-guard gone.

use std::time::Duration;

use netpol_guard::baseline::{ALLOW_DNS, DEFAULT_DENY};
use serde_json::json;

use crate::apply::{apply_as_developer, deployment, egress_policy, policy};
use crate::cluster::{eventually, stderr};
use crate::install::Env;

pub fn apiserver_restart_loses_no_decision(env: &Env) {
    env.namespace("fault-a", true, None);
    env.wait_baseline(
        "fault-a",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    let restarts_before: f64 = env
        .replicas
        .iter()
        .map(|r| r.metric("netpol_guard_watch_restarts_total{resource=\"networkpolicies\"}"))
        .sum();
    env.cluster.restart_apiserver();
    for r in &env.replicas {
        r.wait_ready();
    }
    // Watches came back: every replica (the balancer spreads requests)
    // must know a policy created now, and forget one deleted now.
    let out = apply_as_developer(env, &[], &[policy("fault-a", "api", "api")]);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in 0..6 {
        let out = apply_as_developer(
            env,
            &[],
            &[deployment("fault-a", &format!("api-{i}"), "api")],
        );
        assert!(
            out.status.success(),
            "covered workload {i} after the restart: {}",
            stderr(&out)
        );
    }
    let out = apply_as_developer(env, &[], &[deployment("fault-a", "nope", "nope")]);
    assert!(
        !out.status.success(),
        "an uncovered workload is still denied"
    );
    env.cluster
        .kubectl_ok(&["delete", "networkpolicy", "-n", "fault-a", "api"]);
    // Once deleted, the next new covered-by-nothing workload is denied on
    // every replica (the live re-read confirms the cache).
    for i in 0..6 {
        let out = apply_as_developer(
            env,
            &[],
            &[deployment("fault-a", &format!("late-{i}"), "api")],
        );
        assert!(
            !out.status.success(),
            "workload {i} after the policy's deletion must be denied"
        );
    }
    let restarts_after: f64 = env
        .replicas
        .iter()
        .map(|r| r.metric("netpol_guard_watch_restarts_total{resource=\"networkpolicies\"}"))
        .sum();
    println!(
        "e2e:   watch restarts counted: {}",
        restarts_after - restarts_before
    );
    // The generator recovered too.
    env.namespace("fault-b", true, None);
    env.wait_baseline(
        "fault-b",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(20),
    );
}

pub fn both_replicas_down_follows_failure_policy(env: &Env) {
    env.namespace("fault-c", true, None);
    env.namespace("fault-open", false, None);
    for r in &env.replicas {
        r.terminate();
    }
    // Managed namespace: failurePolicy Fail, the API server's own message.
    let out = apply_as_developer(env, &[], &[deployment("fault-c", "ledger", "ledger")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Internal error occurred: failed calling webhook \"workloads.netpol-guard.io\": failed to call webhook: Post \"https://"),
        "{err}"
    );
    // Unmanaged namespace: failurePolicy Ignore, even for a policy
    // netpol-guard would deny.
    let out = apply_as_developer(
        env,
        &[],
        &[egress_policy(
            "fault-open",
            "world",
            json!({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
        )],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for r in &env.replicas {
        r.start();
    }
    env.wait_leader(Duration::from_secs(30));
    eventually(Duration::from_secs(10), "admission again", || {
        let out = apply_as_developer(env, &[], &[deployment("fault-c", "ledger", "ledger")]);
        stderr(&out)
            .contains("require-network-policy")
            .then_some(())
    });
}

/// Issue 13: with `--client-ca`, the replicas answer admission only to the
/// API server's client certificate (its AdmissionConfiguration
/// kubeConfigFile); every journey above went through it. Anyone else who
/// reaches the port gets 403, while probes stay open.
pub fn only_the_api_server_may_call(env: &Env) {
    for r in &env.replicas {
        assert_eq!(r.get("/readyz").as_deref(), Some("ready"), "{}", r.name);
        let (status, body) = r.post_anonymous("/validate", "{}");
        assert_eq!(status, 403, "{}: {body}", r.name);
        assert_eq!(
            body,
            "a client certificate signed by the --client-ca is required for admission requests\n"
        );
    }
}

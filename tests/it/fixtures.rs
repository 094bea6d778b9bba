//! Every shared fixture, posted over TLS to the real server judging against
//! the shared cluster state, gets the verdict `expected.json` gives it.

use serde_json::Value;

use crate::common::{Server, fixtures_cluster, shared};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_gets_its_expected_verdict_over_tls() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(shared("fixtures/expected.json")).unwrap())
            .unwrap();
    let expected = expected.as_object().unwrap();
    assert!(expected.len() >= 20, "expected.json lists every fixture");
    let server = Server::start(&fixtures_cluster(), &[]);
    // One keep-alive connection for every request, as the API server does.
    let mut client = server.connect().await;
    let mut failures = Vec::new();
    for (file, want) in expected {
        let body = std::fs::read(shared(&format!("fixtures/admission/{file}"))).unwrap();
        let review: Value = serde_json::from_slice(&body).unwrap();
        let endpoint = want["endpoint"].as_str().unwrap();
        let reply = client.post(endpoint, body).await;
        if reply.status != want["status"].as_u64().unwrap() as u16 {
            failures.push(format!("{file}: HTTP {} ({})", reply.status, reply.text()));
            continue;
        }
        let out = reply.json();
        let resp = &out["response"];
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1", "{file}");
        assert_eq!(out["kind"], "AdmissionReview", "{file}");
        assert_eq!(resp["uid"], review["request"]["uid"], "{file}: uid echoed");
        if resp["allowed"] != want["allowed"] {
            failures.push(format!(
                "{file}: allowed={} want {}: {resp}",
                resp["allowed"], want["allowed"]
            ));
            continue;
        }
        let message = resp["status"]["message"].as_str().unwrap_or("");
        let warnings: Vec<&str> = resp["warnings"]
            .as_array()
            .map(|w| w.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if resp["allowed"] == false {
            assert_eq!(resp["status"]["code"], 403, "{file}");
        }
        if let Some(must) = want.get("warnings").and_then(Value::as_bool)
            && must == warnings.is_empty()
        {
            failures.push(format!(
                "{file}: warnings present={} want {must}: {warnings:?}",
                !warnings.is_empty()
            ));
        }
        for frag in want["contains"].as_array().into_iter().flatten() {
            let frag = frag.as_str().unwrap();
            if !message.contains(frag) && !warnings.iter().any(|w| w.contains(frag)) {
                failures.push(format!(
                    "{file}: {frag:?} missing from message {message:?} and warnings {warnings:?}"
                ));
            }
        }
        for w in &warnings {
            assert!(
                w.chars().count() <= 256,
                "{file}: warning over 256 chars: {w}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "fixture verdicts wrong:\n{}",
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncovered_deployment_message_tells_the_developer_everything() {
    let server = Server::start(&fixtures_cluster(), &[]);
    let mut client = server.connect().await;
    let body = std::fs::read(shared(
        "fixtures/admission/deployment-create-uncovered.json",
    ))
    .unwrap();
    let resp = client.post("/validate", body).await.json();
    let message = resp["response"]["status"]["message"].as_str().unwrap();
    for frag in [
        "require-network-policy: Deployment payments/ledger: no NetworkPolicy selects its pods (pod labels: app=ledger)",
        "namespace payments is managed by netpol-guard (its labels match platform.io/managed=true)",
        "BEFORE the Deployment",
        "kind: NetworkPolicy\nmetadata:\n  name: \"allow-ledger\"\n  namespace: \"payments\"\nspec:\n  podSelector:\n    matchLabels:\n      app: \"ledger\"\n",
        "      port: 8080\n",
    ] {
        assert!(message.contains(frag), "{frag:?} missing from:\n{message}");
    }
    assert_eq!(resp["response"]["status"]["reason"], "Forbidden");
}

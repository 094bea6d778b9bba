//! Config hot reload from a file and audit mode, through the real server.

use std::time::{Duration, Instant};

use crate::common::{self, Server, fixtures_cluster, shared};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(shared(&format!("fixtures/admission/{name}"))).unwrap()
}

async fn allowed(c: &mut common::Client, name: &str) -> (bool, Vec<String>) {
    let r = c.post("/validate", fixture(name)).await.json();
    let warnings = r["response"]["warnings"]
        .as_array()
        .map(|w| w.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    (r["response"]["allowed"].as_bool().unwrap(), warnings)
}

/// Polls until `f` is true (the file is re-read every 2 s), at most 15 s.
async fn eventually<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_allows_the_uncovered_deployment_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "mode: audit\n").unwrap();
    let server = Server::start(&fixtures_cluster(), &["--config", cfg.to_str().unwrap()]);
    let mut c = server.connect().await;
    let (ok, warnings) = allowed(&mut c, "deployment-create-uncovered.json").await;
    assert!(ok);
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with(
            "audit mode, would deny: require-network-policy: Deployment payments/ledger"
        ),
        "{warnings:?}"
    );
    assert!(warnings[0].chars().count() <= 256);
    let m = c.get("/metrics").await.text();
    assert!(
        m.contains("netpol_guard_audit_would_deny_total{rule=\"require-network-policy\",namespace=\"payments\"} 1"),
        "{m}"
    );
    assert!(m.contains(
        "netpol_guard_admission_requests_total{endpoint=\"/validate\",kind=\"Deployment\",operation=\"CREATE\",decision=\"warned\"} 1"
    ));
    // A forged review for a made-up namespace (a policy rule fires in any
    // namespace) adds no series of its own: the label is bounded by the
    // cluster's namespaces.
    for i in 0..20 {
        let body = String::from_utf8(
            std::fs::read(common::shared(
                "fixtures/admission/networkpolicy-create-world-egress.json",
            ))
            .unwrap(),
        )
        .unwrap()
        .replace("\"payments\"", &format!("\"made-up-{i}\""));
        let r = c.post("/validate", body).await.json();
        assert_eq!(r["response"]["allowed"], true, "{r}");
    }
    let m = c.get("/metrics").await.text();
    assert!(!m.contains("made-up-"), "{m}");
    assert!(
        m.contains(
            "netpol_guard_audit_would_deny_total{rule=\"world-cidr\",namespace=\"other\"} 20"
        ),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_config_file_changes_the_verdict_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "mode: enforce\n").unwrap();
    let server = Server::start(&fixtures_cluster(), &["--config", cfg.to_str().unwrap()]);
    let pid = server.child.id();
    let mut c = server.connect().await;
    assert!(!allowed(&mut c, "deployment-create-uncovered.json").await.0);

    // A valid edit applies to the next requests.
    std::fs::write(&cfg, "rules:\n  require-network-policy: warn\n").unwrap();
    assert!(
        eventually(|| async {
            server
                .connect()
                .await
                .post("/validate", fixture("deployment-create-uncovered.json"))
                .await
                .json()["response"]["allowed"]
                == true
        })
        .await
    );

    // A broken edit is rejected, reported, and the last good config stays.
    std::fs::write(&cfg, "rules:\n  require-network-polcy: deny\n").unwrap();
    assert!(
        eventually(|| async {
            server
                .connect()
                .await
                .get("/metrics")
                .await
                .text()
                .contains("netpol_guard_config_reloads_total{result=\"invalid\"} 1")
        })
        .await
    );
    let mut c = server.connect().await;
    let (ok, warnings) = allowed(&mut c, "deployment-create-uncovered.json").await;
    assert!(ok, "the last good config (warn) is still in force");
    assert_eq!(warnings.len(), 1);
    let logs: Vec<String> = server.stderr.try_iter().collect();
    assert!(
        logs.iter().any(|l| l.contains("configuration rejected")
            && l.contains("unknown field `require-network-polcy`")),
        "{logs:#?}"
    );
    assert_eq!(server.child.id(), pid, "same process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_logs_carry_the_decision() {
    let server = Server::start(&fixtures_cluster(), &[]);
    let mut c = server.connect().await;
    c.post("/validate", fixture("deployment-create-uncovered.json"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = None;
    while found.is_none() && Instant::now() < deadline {
        if let Ok(line) = server.stderr.recv_timeout(Duration::from_millis(200))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "admission decision"
        {
            found = Some(v);
        }
    }
    let v = found.expect("a JSON log line for the decision");
    assert_eq!(v["uid"], "705ab4f5-6393-11e8-b7cc-42010a800004");
    assert_eq!(v["kind"], "Deployment");
    assert_eq!(v["namespace"], "payments");
    assert_eq!(v["name"], "ledger");
    assert_eq!(v["operation"], "CREATE");
    assert_eq!(v["user"], "alice@example.com");
    assert_eq!(v["decision"], "Denied");
    assert_eq!(v["rules"], "[\"require-network-policy\"]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_comes_from_the_config_when_the_environment_does_not_set_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    // A tracing filter: the start-up lines (target netpol_guard) stay at
    // info, the per-request ones (netpol_guard::webhook) only warn.
    std::fs::write(
        &cfg,
        "logLevel: warn,netpol_guard=info,netpol_guard::webhook=warn\n",
    )
    .unwrap();
    let server = common::Server::start_with_env(
        &[
            "--state",
            fixtures_cluster().to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[],
        false,
    );
    let mut c = server.connect().await;
    c.post("/validate", fixture("deployment-create-uncovered.json"))
        .await;
    c.post("/validate", b"garbage".to_vec()).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        if let Ok(l) = server.stderr.recv_timeout(Duration::from_millis(100)) {
            lines.push(l);
        }
    }
    assert!(
        lines.iter().any(|l| l.contains("rejected request body")),
        "warnings still log: {lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("admission decision")),
        "info is filtered out: {lines:#?}"
    );
}

//! The HTTPS server's protocol behaviour, against the real binary on 127.0.0.1.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, Server, fixtures_cluster, shared};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(shared(&format!("fixtures/admission/{name}"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_routing() {
    let server = Server::start(&fixtures_cluster(), &[]);
    let mut c = server.connect().await;
    let r = c.get("/healthz").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = c.get("/readyz").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    assert_eq!(c.get("/validate").await.status, 405);
    assert_eq!(c.get("/nope").await.status, 404);
    c.post("/validate", fixture("deployment-create-uncovered.json"))
        .await;
    c.post("/validate", fixture("deployment-create-covered.json"))
        .await;
    let m = c.get("/metrics").await.text();
    for line in [
        "netpol_guard_admission_requests_total{endpoint=\"/validate\",kind=\"Deployment\",operation=\"CREATE\",decision=\"denied\"} 1",
        "netpol_guard_admission_requests_total{endpoint=\"/validate\",kind=\"Deployment\",operation=\"CREATE\",decision=\"allowed\"} 1",
        "netpol_guard_rule_findings_total{rule=\"require-network-policy\",action=\"deny\"} 1",
        "netpol_guard_admission_duration_seconds_count 2",
        "netpol_guard_admission_judging_seconds_count 2",
        "netpol_guard_ready 1",
        "netpol_guard_cache_namespaces 4",
        "netpol_guard_cache_policies 4",
    ] {
        assert!(
            m.lines().any(|l| l == line),
            "{line:?} missing from metrics:\n{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_400_with_a_plain_reason() {
    let server = Server::start(&fixtures_cluster(), &[]);
    let mut c = server.connect().await;
    for (body, want) in [
        (&b"not json"[..], "body is not valid JSON"),
        (b"{\"kind\": \"Pod\"}", "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview"),
        (b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}", "AdmissionReview has no request"),
        (b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\"}}", "body is not an AdmissionReview request"),
        (b"", "body is not valid JSON"),
    ] {
        let r = c.post("/validate", body.to_vec()).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().starts_with(want), "{:?} should start with {want:?}", r.text());
        let r = c.post("/mutate", body.to_vec()).await;
        assert_eq!(r.status, 400);
    }
    // Deep nesting is refused by the JSON parser's recursion limit, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let r = c.post("/validate", deep).await;
    assert_eq!(r.status, 400);
    // The connection is still usable after all of that.
    assert_eq!(c.get("/healthz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let server = Server::start(&fixtures_cluster(), &[]);
    let mut c = server.connect().await;
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = c.post("/validate", big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    // A configured smaller limit applies too.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "maxBodyBytes: 2048\n").unwrap();
    let small = Server::start(&fixtures_cluster(), &["--config", cfg.to_str().unwrap()]);
    let mut c = small.connect().await;
    let r = c
        .post("/validate", fixture("deployment-create-uncovered.json"))
        .await;
    assert_eq!(r.status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_many_requests_on_one_connection() {
    let server = Server::start(&fixtures_cluster(), &[]);
    let mut c = server.connect().await;
    let body = Bytes::from(fixture("deployment-create-covered.json"));
    for _ in 0..50 {
        let r = c.post("/validate", body.clone()).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["response"]["allowed"], true);
    }
}

/// kube-apiserver speaks HTTP/2 to a webhook that offers it (one
/// multiplexed connection; over HTTP/1.1 it opened about 30), so `h2` is
/// offered by default; `--http2=false` serves HTTP/1.1 only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_offered_over_alpn_unless_turned_off() {
    let off = Server::start(&fixtures_cluster(), &["--http2=false"]);
    let stream = off.tls_stream(&[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(stream);
    let server = Server::start(&fixtures_cluster(), &[]);
    let stream = server.tls_stream(&[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post("https://localhost/validate")
        .body(Full::new(Bytes::from(fixture(
            "deployment-create-uncovered.json",
        ))))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["response"]["allowed"], false);
}

/// With HTTP/2 on by default, a client that completes TLS with ALPN `h2`,
/// sends the connection preface and then nothing (not even a ping answer)
/// must not hold the connection: it is pinged after `--header-read-timeout`
/// of silence and closed `--handshake-timeout` later, as an idle HTTP/1.1
/// connection is closed after `--header-read-timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_http2_connection_is_closed() {
    let server = Server::start(
        &fixtures_cluster(),
        &["--header-read-timeout", "1s", "--handshake-timeout", "1s"],
    );
    let mut stream = server.tls_stream(&[b"h2"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // The server's SETTINGS, then its ping: never answered.
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a silent HTTP/2 connection stayed open for 15 s"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}: before the ping was even due",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutate_labels_new_namespaces_with_a_json_patch_when_auto_manage_is_on() {
    use base64::Engine as _;
    let mut review: serde_json::Value =
        serde_json::from_slice(&fixture("namespace-create-managed.json")).unwrap();
    review["request"]["object"]["metadata"]["labels"] = serde_json::json!({"team": "orders"});
    let body = serde_json::to_vec(&review).unwrap();
    // Off by default: allowed, no patch.
    let server = Server::start(&fixtures_cluster(), &[]);
    let r = server
        .connect()
        .await
        .post("/mutate", body.clone())
        .await
        .json();
    assert_eq!(r["response"]["allowed"], true);
    assert!(r["response"].get("patch").is_none());
    // On: a JSONPatch adding the managed label.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "autoManage: true\n").unwrap();
    let server = Server::start(&fixtures_cluster(), &["--config", cfg.to_str().unwrap()]);
    let r = server.connect().await.post("/mutate", body).await.json();
    assert_eq!(r["response"]["allowed"], true);
    assert_eq!(r["response"]["uid"], review["request"]["uid"]);
    assert_eq!(r["response"]["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(r["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: serde_json::Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        serde_json::json!([{"op": "add", "path": "/metadata/labels/platform.io~1managed", "value": "true"}])
    );
    let m = server.connect().await.get("/metrics").await.text();
    assert!(m.contains("netpol_guard_admission_requests_total{endpoint=\"/mutate\",kind=\"Namespace\",operation=\"CREATE\",decision=\"patched\"} 1"), "{m}");
}

fn sigterm(server: &Server) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(server: &mut Server, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit within {within:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_request_then_exits() {
    let mut server = Server::start(&fixtures_cluster(), &[]);
    // An idle keep-alive connection must not hold shutdown up.
    let mut idle = server.connect().await;
    assert_eq!(idle.get("/healthz").await.status, 200);
    // A request whose body is half sent when SIGTERM arrives.
    let body = fixture("deployment-create-uncovered.json");
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = server.tls_stream(&[b"http/1.1"]).await;
    let req = format!(
        "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    stream.write_all(head).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(&server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(tail).await.unwrap();
    stream.flush().await.unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut resp)).await;
    let resp = String::from_utf8_lossy(&resp);
    assert!(
        resp.starts_with("HTTP/1.1 200 OK"),
        "in-flight request was cut: {resp:?}"
    );
    assert!(resp.contains("\"allowed\":false"), "{resp}");
    let status = wait_exit(&mut server, Duration::from_secs(5));
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_tls_and_early_disconnects_do_not_hurt_the_server() {
    let server = Server::start(&fixtures_cluster(), &[]);
    // Plain HTTP on the TLS port, then a client that connects and leaves.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    drop(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    let mut c = server.connect().await;
    assert_eq!(c.get("/healthz").await.status, 200);
}

#[test]
fn serve_refuses_bad_state_and_config_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: y}\nspec:\n  podSelector:\n    matchExpressions: [{key: a, operator: In}]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
        .args(["serve", "--addr", "127.0.0.1:0", "--state"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:1: NetworkPolicy x: matchExpressions key \"a\": operator In needs at least one value"), "{err}");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "rules:\n  nope: deny\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
        .args(["serve", "--addr", "127.0.0.1:0", "--state"])
        .arg(fixtures_cluster())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `nope`"));
}

/// Issue 13: a 1 MB `apiVersion` was echoed whole into the 400 and into a
/// WARN line, so 20 requests wrote 20 MB of log in a second. Request-supplied
/// strings are cut, and the warning is written at most once a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_is_not_echoed_whole_nor_logged_for_every_request() {
    let server = Server::start(&fixtures_cluster(), &[]);
    let huge = "v".repeat(1 << 20);
    let fixture = String::from_utf8(fixture("deployment-create-covered.json")).unwrap();
    let at = fixture.find("admission.k8s.io/v1").unwrap();
    let body = format!(
        "{}{huge}{}",
        &fixture[..at],
        &fixture[at + "admission.k8s.io/v1".len()..]
    );
    let mut c = server.connect().await;
    for _ in 0..20 {
        let r = c.post("/validate", body.clone()).await;
        assert_eq!(r.status, 400);
        assert!(r.body.len() < 512, "a {} byte answer", r.body.len());
        assert!(
            r.text().starts_with(
                "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got \"vvv"
            ),
            "{}",
            r.text()
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let lines: Vec<String> = server.stderr.try_iter().collect();
    let rejected: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("rejected request body"))
        .collect();
    assert!(
        !rejected.is_empty() && rejected.len() <= 3,
        "{} warnings for 20 junk requests",
        rejected.len()
    );
    assert!(lines.iter().all(|l| l.len() < 4096), "a log line over 4 KB");
}

/// Issue 13: with `--client-ca`, only a client that presents a certificate
/// from that CA (the API server, through its AdmissionConfiguration
/// kubeConfigFile) gets admission answers; probes and metrics stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_certified_clients_are_judged() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["kube-apiserver".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    let ca_path = dir.path().join("client-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let server = Server::start(
        &fixtures_cluster(),
        &["--client-ca", ca_path.to_str().unwrap()],
    );

    // Without a certificate: probes yes, admission no.
    let mut anonymous = server.connect().await;
    assert_eq!(anonymous.get("/healthz").await.status, 200);
    let mut anonymous = server.connect().await;
    let r = anonymous
        .post("/validate", fixture("deployment-create-covered.json"))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.text(),
        "a client certificate signed by the --client-ca is required for admission requests\n"
    );

    // With one: judged.
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&server.ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![client.der().clone()],
            PrivateKeyDer::from_pem_slice(client_key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut certified = common::Client { sender };
    let r = certified
        .post("/validate", fixture("deployment-create-covered.json"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["response"]["allowed"], true);
}

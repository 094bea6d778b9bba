//! Certificate rotation under load: the certificate files of a running
//! `serve` are replaced (half-written first, then a new certificate with the
//! old key, then the new key) while clients keep sending requests. No request
//! may fail, established keep-alive connections keep working, and new
//! connections get the new certificate once the pair is complete.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use crate::common::{Client, Server};

/// A CA (certificate PEM) and a `localhost` leaf it signed (PEM, key PEM).
struct Pki {
    ca_pem: String,
    leaf_pem: String,
    leaf_key_pem: String,
}

fn pki(name: &str, expires_year: i32) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(expires_year, 1, 1);
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        leaf_pem: leaf.pem(),
        leaf_key_pem: leaf_key.serialize_pem(),
    }
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Trusts both CAs, as an API server does during a CA rotation. rustls
/// clients try to resume sessions by default: the server must not let that
/// pin the old certificate.
fn connector(cas: &[&str]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for pem in cas {
        roots
            .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(cfg))
}

/// Opens a keep-alive connection; returns the client and the leaf certificate
/// the server presented.
async fn open(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
) -> Result<(Client, Vec<u8>), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or("no peer certificate")?;
    let (sender, conn) = http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http handshake: {e}"))?;
    tokio::spawn(conn);
    Ok((Client { sender }, leaf))
}

/// One admission request; an error string instead of a panic so the test
/// counts failures.
async fn review(client: &mut Client, body: &Bytes) -> Result<(), String> {
    client
        .sender
        .ready()
        .await
        .map_err(|e| format!("not ready: {e}"))?;
    let req = hyper::Request::post("/validate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    let resp = client
        .sender
        .send_request(req)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    if status != 200 || v["response"]["allowed"] != true {
        return Err(format!("status {status}: {v}"));
    }
    Ok(())
}

/// Replaces a file in one step (write aside, then rename), as the kubelet
/// swaps a Secret volume's files: each write is exactly one state the
/// watcher can see, so the reload counters below are exact. A plain
/// `fs::write` truncates first, and a poll landing between the truncate and
/// the write would count one more (correctly ignored) invalid state.
fn write(path: &Path, text: &str) {
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn counter(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_certificate_under_load_fails_no_request() {
    let (old, new) = (pki("old", 2040), pki("new", 2041));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    write(&cert, &old.leaf_pem);
    write(&key, &old.leaf_key_pem);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let server = Server::start_with_certs(&[
        "--state",
        root.join("examples/cluster").to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--tls-reload-interval",
        "100ms",
    ]);
    let addr = server.addr;
    let body =
        Bytes::from(std::fs::read(root.join("examples/requests/deployment-covered.json")).unwrap());
    let connector = connector(&[&old.ca_pem, &new.ca_pem]);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let new_leaf = der(&new.leaf_pem);
    let saw_new = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();

    // Two keep-alive connections opened before the rotation, as the API
    // server keeps them: they must keep working on the old certificate.
    for _ in 0..2 {
        let (mut client, leaf) = open(&connector, addr).await.unwrap();
        assert_eq!(leaf, der(&old.leaf_pem));
        let (stop, ok, failures, body) = (stop.clone(), ok.clone(), failures.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match review(&mut client, &body).await {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failures.lock().unwrap().push(format!("keep-alive: {e}"));
                        return;
                    }
                };
            }
        }));
    }
    // A client opening a new connection for every request, so every state
    // of the files is met by a fresh handshake.
    {
        let (stop, ok, failures, body, connector) = (
            stop.clone(),
            ok.clone(),
            failures.clone(),
            body.clone(),
            connector.clone(),
        );
        let (new_leaf, saw_new) = (new_leaf.clone(), saw_new.clone());
        let old_leaf = der(&old.leaf_pem);
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = match open(&connector, addr).await {
                    Ok((mut client, leaf)) => {
                        if leaf == new_leaf {
                            saw_new.store(true, Ordering::Relaxed);
                        } else if leaf != old_leaf {
                            failures
                                .lock()
                                .unwrap()
                                .push("an unknown certificate".into());
                        } else if saw_new.load(Ordering::Relaxed) {
                            failures
                                .lock()
                                .unwrap()
                                .push("the old certificate came back after the new one".into());
                        }
                        review(&mut client, &body).await
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures
                        .lock()
                        .unwrap()
                        .push(format!("new connection: {e}")),
                }
            }
        }));
    }

    let pause = || tokio::time::sleep(Duration::from_millis(500));
    pause().await;
    // 1. A half-written certificate: ignored.
    write(&cert, &new.leaf_pem[..new.leaf_pem.len() / 2]);
    pause().await;
    // 2. The whole new certificate, the key still old: ignored.
    write(&cert, &new.leaf_pem);
    pause().await;
    assert!(
        !saw_new.load(Ordering::Relaxed),
        "the new certificate was served before its key arrived"
    );
    // 3. The new key: the pair is complete and is used for new connections.
    write(&key, &new.leaf_key_pem);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !saw_new.load(Ordering::Relaxed) {
        assert!(
            Instant::now() < deadline,
            "new connections never got the new certificate"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pause().await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    let served = ok.load(Ordering::Relaxed);
    assert!(served > 50, "too few requests to mean anything: {served}");

    // The two rejected states were reported, the good pair applied once.
    let mut client = {
        let (c, leaf) = open(&connector, addr).await.unwrap();
        assert_eq!(leaf, new_leaf);
        c
    };
    client.sender.ready().await.unwrap();
    let metrics = client.get("/metrics").await.text();
    assert_eq!(
        counter(
            &metrics,
            "netpol_guard_tls_reloads_total{result=\"invalid\"}"
        ),
        2,
        "{metrics}"
    );
    assert_eq!(
        counter(
            &metrics,
            "netpol_guard_tls_reloads_total{result=\"applied\"}"
        ),
        1
    );
    // 2041-01-01T00:00:00Z: the expiry gauge follows the served pair.
    assert!(
        metrics.contains("netpol_guard_tls_cert_expiry_timestamp_seconds 2240611200\n"),
        "{metrics}"
    );
    let logs: Vec<String> = server.stderr.try_iter().collect();
    let errors: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("\"level\":\"ERROR\"") && l.contains("new pair is unusable"))
        .collect();
    assert_eq!(errors.len(), 2, "{logs:#?}");
    assert!(
        errors[1].contains("does not belong to the certificate"),
        "{}",
        errors[1]
    );
    assert!(
        logs.iter().any(|l| l.contains("TLS certificate reloaded")),
        "{logs:#?}"
    );
}

//! `netpol-guard certs`, end to end: the files it writes, a TLS client's view
//! of the serving certificate, `serve` with it, CA reuse and rotation, and
//! `kubectl kustomize` of the generated directory.

use std::error::Error;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use netpol_guard::certs::{MUTATING_WEBHOOKS, SECRET_NAME, VALIDATING_WEBHOOKS};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Deserialize;
use serde_json::Value;

use crate::common;

type TestResult = Result<(), Box<dyn Error>>;

const SANS: [&str; 4] = [
    "netpol-guard",
    "netpol-guard.netpol-guard",
    "netpol-guard.netpol-guard.svc",
    "netpol-guard.netpol-guard.svc.cluster.local",
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `netpol-guard certs --out DIR --base <repo>/manifests ARGS...`.
fn certs(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
        .arg("certs")
        .arg("--out")
        .arg(dir)
        .arg("--base")
        .arg(repo("manifests"))
        .args(args)
        .output()
        .expect("run netpol-guard certs")
}

/// As `certs`, and expects success; returns the summary.
fn certs_ok(dir: &Path, args: &[&str]) -> String {
    let out = certs(dir, args);
    assert!(
        out.status.success(),
        "netpol-guard certs {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 summary")
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("PEM certificates")
}

fn verifier(ca_pem: &str) -> Result<Arc<WebPkiServerVerifier>, Box<dyn Error>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca_pem) {
        roots.add(c)?;
    }
    Ok(WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()?)
}

/// Checks `tls.crt` as kube-apiserver would: valid for `name` under the CAs.
fn verify(ca_pem: &str, tls_pem: &str, name: &str) -> Result<(), Box<dyn Error>> {
    let leaf = pem_certs(tls_pem)
        .into_iter()
        .next()
        .ok_or("no certificate")?;
    verifier(ca_pem)?.verify_server_cert(
        &leaf,
        &[],
        &ServerName::try_from(name)?,
        &[],
        UnixTime::now(),
    )?;
    Ok(())
}

fn yaml_docs(s: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(s)
        .map(|d| Value::deserialize(d).expect("YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn b64(s: &str) -> String {
    BASE64.encode(s)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn writes_a_ca_a_serving_certificate_and_manifests() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("certs/out");
    let summary = certs_ok(&dir, &[]);

    for f in [
        "ca.crt",
        "ca.key",
        "tls.crt",
        "tls.key",
        "ca-bundle.crt",
        "secret.yaml",
        "cabundle-patch.yaml",
        "kustomization.yaml",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(!dir.join("previous-ca.crt").exists());
    #[cfg(unix)]
    for f in ["ca.key", "tls.key", "secret.yaml"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }

    let ca = read(&dir, "ca.crt");
    let tls = read(&dir, "tls.crt");
    assert_eq!(pem_certs(&tls).len(), 1, "tls.crt holds the leaf only");
    assert_eq!(read(&dir, "ca-bundle.crt"), ca);
    for san in SANS {
        verify(&ca, &tls, san).map_err(|e| format!("{san}: {e}"))?;
    }
    for other in [
        "netpol-guard.default.svc",
        "localhost",
        "netpol-guard.netpol-guard.svc.cluster.example",
        "evil.example",
    ] {
        assert!(
            verify(&ca, &tls, other).is_err(),
            "tls.crt must not be valid for {other}"
        );
    }
    // The key in tls.key is the certificate's.
    rustls::sign::CertifiedKey::from_der(
        pem_certs(&tls),
        rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("tls.key"))?,
        &rustls::crypto::ring::default_provider(),
    )?;

    let secret = &yaml_docs(&read(&dir, "secret.yaml"))[0];
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"]["name"], SECRET_NAME);
    assert_eq!(secret["metadata"]["namespace"], "netpol-guard");
    let data = secret["data"].as_object().ok_or("no data")?;
    assert_eq!(data.len(), 3);
    for (key, file) in [
        ("tls.crt", "tls.crt"),
        ("tls.key", "tls.key"),
        ("ca.crt", "ca.crt"),
    ] {
        let decoded = BASE64.decode(data[key].as_str().ok_or("not a string")?)?;
        assert_eq!(String::from_utf8(decoded)?, read(&dir, file), "{key}");
    }

    let k = &yaml_docs(&read(&dir, "kustomization.yaml"))[0];
    let base = k["resources"][0].as_str().ok_or("no resources")?;
    assert!(
        base.starts_with(".."),
        "relative to the output directory: {base}"
    );
    assert_eq!(
        dir.join(base).canonicalize()?,
        repo("manifests").canonicalize()?
    );
    assert_eq!(k["resources"][1], "secret.yaml");
    assert_eq!(k["patches"][0]["path"], "cabundle-patch.yaml");

    for needle in [
        "kubectl apply -k",
        "private keys",
        "netpol-guard.netpol-guard.svc.cluster.local",
        "expires",
    ] {
        assert!(
            summary.contains(needle),
            "summary lacks {needle:?}:\n{summary}"
        );
    }
    Ok(())
}

/// Starts `serve` with the generated certificate (the shared harness).
fn start_serve(dir: &Path) -> common::Server {
    common::Server::start_with_certs(&[
        "--state",
        repo("examples/cluster").to_str().expect("utf-8 path"),
        "--tls-cert",
        dir.join("tls.crt").to_str().expect("utf-8 path"),
        "--tls-key",
        dir.join("tls.key").to_str().expect("utf-8 path"),
    ])
}

async fn healthz(addr: SocketAddr, ca_pem: &str, sni: &str) -> Result<u16, Box<dyn Error>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca_pem) {
        roots.add(c)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(sni)?.to_owned(), tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get("/healthz")
        .header("host", sni)
        .body(Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

#[test]
fn serve_uses_the_generated_certificate() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("out");
    certs_ok(&dir, &[]);
    let serve = start_serve(&dir);
    let addr = serve.addr;
    let ca = read(&dir, "ca.crt");
    let rt = tokio::runtime::Runtime::new()?;
    let status = rt.block_on(healthz(addr, &ca, "netpol-guard.netpol-guard.svc"))?;
    assert_eq!(status, 200);
    // A client that trusts another CA refuses the handshake.
    let other = tmp.path().join("other");
    certs_ok(&other, &[]);
    let refused = rt.block_on(healthz(
        addr,
        &read(&other, "ca.crt"),
        "netpol-guard.netpol-guard.svc",
    ));
    assert!(refused.is_err(), "a foreign CA must not be trusted");
    Ok(())
}

#[test]
fn rerunning_reuses_the_ca_and_new_ca_rotates_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("out");
    certs_ok(&dir, &[]);
    let ca1 = read(&dir, "ca.crt");
    let key1 = read(&dir, "ca.key");
    let tls1 = read(&dir, "tls.crt");

    // Rotating the serving certificate keeps the CA and the caBundle.
    let summary = certs_ok(&dir, &["--days", "30"]);
    assert!(summary.contains("reused"), "{summary}");
    assert_eq!(read(&dir, "ca.crt"), ca1);
    assert_eq!(read(&dir, "ca.key"), key1);
    let tls2 = read(&dir, "tls.crt");
    assert_ne!(tls2, tls1);
    verify(&ca1, &tls2, SANS[2])?;
    assert_eq!(read(&dir, "ca-bundle.crt"), ca1);

    // --new-ca: a new CA, the old one kept and still trusted.
    let summary = certs_ok(&dir, &["--new-ca"]);
    assert!(summary.contains("previous-ca.crt"), "{summary}");
    let ca2 = read(&dir, "ca.crt");
    assert_ne!(ca2, ca1);
    assert_ne!(read(&dir, "ca.key"), key1);
    assert_eq!(read(&dir, "previous-ca.crt"), ca1);
    let bundle = read(&dir, "ca-bundle.crt");
    assert_eq!(bundle, format!("{ca2}{ca1}"));
    assert_eq!(pem_certs(&bundle).len(), 2);
    let tls3 = read(&dir, "tls.crt");
    verify(&ca2, &tls3, SANS[3])?;
    assert!(
        verify(&ca1, &tls3, SANS[3]).is_err(),
        "signed by the new CA"
    );
    verify(&bundle, &tls3, SANS[3])?;
    verify(&bundle, &tls2, SANS[3])?;
    let patch = yaml_docs(&read(&dir, "cabundle-patch.yaml"));
    assert_eq!(
        patch[0]["webhooks"][0]["clientConfig"]["caBundle"],
        b64(&bundle)
    );

    // Re-running keeps the old CA in the bundle until previous-ca.crt goes.
    certs_ok(&dir, &[]);
    assert_eq!(read(&dir, "ca-bundle.crt"), bundle);
    fs::remove_file(dir.join("previous-ca.crt"))?;
    certs_ok(&dir, &[]);
    assert_eq!(read(&dir, "ca.crt"), ca2);
    assert_eq!(read(&dir, "ca-bundle.crt"), ca2);

    // A second --new-ca replaces an older previous-ca.crt.
    certs_ok(&dir, &["--new-ca"]);
    certs_ok(&dir, &["--new-ca"]);
    let ca4 = read(&dir, "ca.crt");
    assert_eq!(
        read(&dir, "ca-bundle.crt"),
        format!("{ca4}{}", read(&dir, "previous-ca.crt"))
    );
    assert_ne!(read(&dir, "previous-ca.crt"), ca2);
    Ok(())
}

#[test]
fn a_broken_ca_is_an_error_that_names_the_file() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("out");
    certs_ok(&dir, &[]);
    let other = tmp.path().join("other");
    certs_ok(&other, &[]);
    fs::copy(other.join("ca.key"), dir.join("ca.key"))?;
    let out = certs(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr)?;
    assert!(err.starts_with("netpol-guard certs: "), "{err}");
    assert!(err.contains("ca.key"), "{err}");
    assert!(err.contains("--new-ca"), "{err}");
    // --new-ca recovers.
    certs_ok(&dir, &["--new-ca"]);
    verify(&read(&dir, "ca.crt"), &read(&dir, "tls.crt"), SANS[0])?;
    Ok(())
}

#[test]
fn bad_arguments_exit_1_and_write_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("out");
    for (args, needle) in [
        (&["--service", "Netpol"][..], "--service"),
        (&["--namespace", "a_b"][..], "--namespace"),
        (
            &["--cluster-domain", "cluster..local"][..],
            "--cluster-domain",
        ),
        (&["--days", "0"][..], "--days"),
        (&["--days", "3651"][..], "--days"),
    ] {
        let out = certs(&dir, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!dir.exists());
}

#[test]
fn a_missing_base_is_a_warning() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
        .args(["certs", "--base", "no/such/base", "--out"])
        .arg(&dir)
        .output()
        .expect("run certs");
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("warning: --base no/such/base does not exist"),
        "{summary}"
    );
    let k = &yaml_docs(&read(&dir, "kustomization.yaml"))[0];
    assert_eq!(k["resources"][0], "no/such/base");
}

/// Finds the one object of this kind and name in rendered manifests.
fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{kind} {name}: {} found", found.len());
    found[0]
}

#[test]
fn kubectl_kustomize_renders_the_secret_and_every_ca_bundle() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("out");
    certs_ok(&dir, &[]);
    // Mid-rotation, so the bundle holds two CAs.
    certs_ok(&dir, &["--new-ca"]);
    let rendered = match Command::new("kubectl").arg("kustomize").arg(&dir).output() {
        Ok(out) => out,
        Err(e) => panic!(
            "this test needs kubectl on PATH (`kubectl kustomize` renders the generated directory): {e}"
        ),
    };
    assert!(
        rendered.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&rendered.stderr)
    );
    let docs = yaml_docs(&String::from_utf8(rendered.stdout)?);

    let secret = object(&docs, "Secret", SECRET_NAME);
    assert_eq!(secret["metadata"]["namespace"], "netpol-guard");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["data"]["tls.crt"], b64(&read(&dir, "tls.crt")));
    assert_eq!(secret["data"]["tls.key"], b64(&read(&dir, "tls.key")));
    assert_eq!(secret["data"]["ca.crt"], b64(&read(&dir, "ca.crt")));

    let bundle = b64(&read(&dir, "ca-bundle.crt"));
    for (kind, names) in [
        ("ValidatingWebhookConfiguration", &VALIDATING_WEBHOOKS[..]),
        ("MutatingWebhookConfiguration", &MUTATING_WEBHOOKS[..]),
    ] {
        let config = object(&docs, kind, netpol_guard::certs::WEBHOOK_CONFIGURATION);
        let webhooks = config["webhooks"].as_array().ok_or("no webhooks")?;
        let mut got: Vec<&str> = webhooks.iter().filter_map(|w| w["name"].as_str()).collect();
        got.sort_unstable();
        let mut want = names.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{kind}: the patch must not add or drop webhooks");
        for w in webhooks {
            assert_eq!(
                w["clientConfig"]["caBundle"], bundle,
                "{kind} {}",
                w["name"]
            );
            // Merged into the base's clientConfig, not replacing it.
            assert_eq!(
                w["clientConfig"]["service"]["name"], "netpol-guard",
                "{kind} {}",
                w["name"]
            );
        }
    }
    Ok(())
}

//! The baseline for `benches/load.sh`: the least a validating admission
//! webhook can do, served the way netpol-guard serves.
//!
//! Every `POST` (any path) is parsed as JSON and answered with
//! `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":<request uid>,"allowed":true}}`;
//! a body that is not JSON, or has no `request.uid` string, gets 400.
//! `GET /readyz` and `GET /healthz` answer 200.
//!
//! Same stack as `netpol-guard serve`, minus the engine, metrics and logs:
//! tokio multi-thread runtime (one worker per core), rustls with the ring
//! provider, an ephemeral self-signed certificate from rcgen, ALPN `h2` and
//! `http/1.1`, HTTP/1.1 keep-alive with a 30 s header timeout, no TLS session
//! resumption, the body parsed into a `serde_json::Value`, and the system
//! allocator (netpol-guard uses mimalloc, see src/main.rs: the comparison
//! measures the product as shipped against this floor).
//!
//! ```sh
//! cargo run --release --example minimal_webhook -- 127.0.0.1:18444
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::NoServerSessionStorage;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Parses the AdmissionReview and allows it, echoing `request.uid`.
async fn review(body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not JSON: {e}\n")).into_response(),
    };
    let Some(uid) = value.pointer("/request/uid").and_then(Value::as_str) else {
        return (StatusCode::BAD_REQUEST, "no request.uid\n").into_response();
    };
    axum::Json(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": uid, "allowed": true}
    }))
    .into_response()
}

fn tls_config() -> Result<Arc<ServerConfig>, Error> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let certified = rcgen::generate_simple_self_signed(names)?;
    let chain: Vec<CertificateDer<'static>> = vec![certified.cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18444".to_string())
        .parse()?;
    let acceptor = TlsAcceptor::from(tls_config()?);
    let app = Router::new()
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(post(review));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(addr, acceptor, app))
}

/// Accepts TLS connections and serves `app` on each until the process is
/// killed.
async fn serve(addr: SocketAddr, acceptor: TlsAcceptor, app: Router) -> Result<(), Error> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!(
        "minimal_webhook listening on https://{}",
        listener.local_addr()?
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    let builder = Arc::new(builder);
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(_) => {
                // Out of file descriptors and the like: back off, keep serving.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await;
        });
    }
}

//! The HTTPS server: TLS accept loop, HTTP/1.1 keep-alive (what kube-apiserver
//! speaks to webhooks) and HTTP/2 via ALPN, the admission endpoints, health,
//! readiness and metrics, and graceful shutdown on SIGTERM.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admission::{self, AdmissionRequest, AdmissionResponse};
use crate::cluster::ClusterView;
use crate::config::Settings;
use crate::engine::{self, Verdict};
use crate::live::LiveReader;
use crate::metrics::{Decision, Metrics};
use crate::mutation;
use crate::rules::{Action, RuleId};
use crate::tls::CertStore;
use base64::Engine as _;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers (slowloris guard);
/// also closes keep-alive connections idle for that long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests before exiting anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared by every request. The view and settings are swapped whole
/// (cluster watches, config reload); a request clones the `Arc` it needs and
/// never holds a lock across work.
pub struct AppState {
    settings: RwLock<Arc<Settings>>,
    view: RwLock<Arc<ClusterView>>,
    config_ready: AtomicBool,
    view_ready: AtomicBool,
    /// Live reads for read-after-write safety (absent with `--state`).
    live: std::sync::OnceLock<LiveReader>,
    /// The serving certificate, for its expiry metric.
    certs: std::sync::OnceLock<Arc<CertStore>>,
    /// Bumped on every settings change (the generator re-applies on it).
    settings_generation: tokio::sync::watch::Sender<u64>,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(settings: Settings, view: ClusterView) -> Arc<Self> {
        Arc::new(Self {
            settings: RwLock::new(Arc::new(settings)),
            view: RwLock::new(Arc::new(view)),
            config_ready: AtomicBool::new(false),
            view_ready: AtomicBool::new(false),
            live: std::sync::OnceLock::new(),
            certs: std::sync::OnceLock::new(),
            settings_generation: tokio::sync::watch::Sender::new(0),
            metrics: Metrics::new(),
        })
    }

    pub fn settings(&self) -> Arc<Settings> {
        match self.settings.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn view(&self) -> Arc<ClusterView> {
        match self.view.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_view(&self, view: ClusterView) {
        let new = Arc::new(view);
        match self.view.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Replaces the settings; the next request uses them.
    pub fn set_settings(&self, settings: Settings) {
        let new = Arc::new(settings);
        match self.settings.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        self.config_ready.store(true, Ordering::SeqCst);
        self.settings_generation.send_modify(|g| *g += 1);
    }

    /// Notified on every settings change.
    pub fn settings_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.settings_generation.subscribe()
    }

    /// Marks config and cluster view as loaded (offline `--state` mode).
    pub fn set_ready(&self, ready: bool) {
        self.config_ready.store(ready, Ordering::SeqCst);
        self.view_ready.store(ready, Ordering::SeqCst);
    }

    pub fn config_ready(&self) -> bool {
        self.config_ready.load(Ordering::SeqCst)
    }

    pub fn set_config_ready(&self) {
        self.config_ready.store(true, Ordering::SeqCst);
    }

    pub fn set_view_ready(&self) {
        self.view_ready.store(true, Ordering::SeqCst);
    }

    pub fn view_ready(&self) -> bool {
        self.view_ready.load(Ordering::SeqCst)
    }

    /// `/readyz`: config loaded and the cluster view synced.
    pub fn ready(&self) -> bool {
        self.config_ready.load(Ordering::SeqCst) && self.view_ready()
    }

    /// Enables live re-reads before require-network-policy denials.
    pub fn set_cert_store(&self, store: Arc<CertStore>) {
        let _ = self.certs.set(store);
    }

    pub fn set_live_reader(&self, reader: LiveReader) {
        let _ = self.live.set(reader);
    }
}

/// The HTTP routes. `max_body_bytes` bounds every request body (HTTP 413).
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.settings().config.max_body_bytes;
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The routes of the plain-HTTP `--metrics-addr` listener: no admission.
pub fn ops_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: config or cluster view not loaded\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let view = state.view();
    let mut gauges = vec![
        (
            "netpol_guard_ready",
            "1 once config and cluster view are loaded.",
            f64::from(u8::from(state.ready())),
        ),
        (
            "netpol_guard_cache_namespaces",
            "Namespaces in the cluster view.",
            view.namespace_count() as f64,
        ),
        (
            "netpol_guard_cache_policies",
            "Policy objects in the cluster view (all kinds).",
            view.policy_count() as f64,
        ),
    ];
    if let Some(expiry) = state.certs.get().and_then(|c| c.not_after()) {
        gauges.push((
            "netpol_guard_tls_cert_expiry_timestamp_seconds",
            "When the serving certificate expires (Unix time).",
            expiry as f64,
        ));
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&gauges),
    )
        .into_response()
}

/// A body that is not an AdmissionReview: answered with its status and a
/// short plain-text reason.
struct Rejected(StatusCode, String);

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}

/// Reads the body or answers 413 (too large) / 400 with the reason.
fn body_or_error(
    state: &AppState,
    endpoint: &'static str,
    body: Result<Bytes, BytesRejection>,
    started: Instant,
) -> Result<AdmissionRequest, Rejected> {
    let rejected = |status: StatusCode, message: String| {
        state
            .metrics
            .observe(endpoint, "", "", Decision::Rejected, started.elapsed());
        tracing::warn!(endpoint, status = status.as_u16(), error = %message, "rejected request body");
        Rejected(status, message)
    };
    let body = body.map_err(|r| rejected(r.status(), r.body_text()))?;
    admission::parse_review(&body).map_err(|e| rejected(StatusCode::BAD_REQUEST, e.to_string()))
}

fn review_json(response: AdmissionResponse) -> Response {
    axum::Json(response.into_review()).into_response()
}

async fn validate(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let req = match body_or_error(&state, "/validate", body, started) {
        Ok(r) => r,
        Err(rejected) => return rejected.into_response(),
    };
    let (response, decision, rules) = match decide(&state, &req).await {
        Ok(verdict) => {
            for (f, a) in &verdict.findings {
                state.metrics.finding(f.rule.as_str(), action_str(*a));
            }
            let namespace = req.namespace.as_deref().unwrap_or("");
            for rule in &verdict.audit_would_deny {
                state.metrics.inc(
                    "netpol_guard_audit_would_deny_total",
                    &[("rule", rule.as_str()), ("namespace", namespace)],
                );
                tracing::info!(
                    uid = %req.uid,
                    kind = %req.kind.kind,
                    namespace,
                    name = req.name.as_deref().unwrap_or(""),
                    operation = req.operation.as_str(),
                    user = %req.user_info.username,
                    rule = rule.as_str(),
                    "audit: would deny"
                );
            }
            let decision = decision_of(&verdict);
            (
                to_response(&req.uid, &verdict),
                decision,
                verdict.rule_ids(),
            )
        }
        // Fail closed with the reason: an object we cannot read is not allowed
        // in silently.
        Err(e) => (
            AdmissionResponse::deny(
                &req.uid,
                format!("netpol-guard could not judge this object: {e}"),
            ),
            Decision::Denied,
            vec![],
        ),
    };
    let took = started.elapsed();
    state.metrics.observe(
        "/validate",
        &req.kind.kind,
        req.operation.as_str(),
        decision,
        took,
    );
    log_decision(&req, decision, &rules, took);
    review_json(response)
}

/// Why a request could not be judged.
#[derive(Debug, thiserror::Error)]
enum JudgeError {
    #[error("{0}")]
    Engine(#[from] engine::DecideError),
    #[error(
        "namespace {namespace} is not in netpol-guard's cache yet and reading it from the API server failed ({reason}); retry in a moment"
    )]
    LiveRead { namespace: String, reason: String },
}

/// Decides with the cached view; with a live API server, first reads a
/// namespace the cache does not know yet, and re-reads the namespace before
/// confirming a `require-network-policy` denial (read-after-write: a policy
/// applied milliseconds before its workload may not be in the cache yet).
async fn decide(state: &AppState, req: &AdmissionRequest) -> Result<Verdict, JudgeError> {
    let settings = state.settings();
    let view = state.view();
    let Some(reader) = state.live.get() else {
        return Ok(engine::decide(req, &view, &settings)?);
    };
    let ns = req.namespace.as_deref().unwrap_or("");
    let cache_miss =
        !ns.is_empty() && !settings.is_excluded(ns) && view.namespace_labels(ns).is_none();
    if !cache_miss {
        let verdict = engine::decide(req, &view, &settings)?;
        let uncovered = verdict
            .findings
            .iter()
            .any(|(f, a)| f.rule == RuleId::RequireNetworkPolicy && *a == Action::Deny);
        if !uncovered {
            return Ok(verdict);
        }
    }
    let timeout = Duration::from_millis(settings.config.live_read_timeout_millis);
    let snapshot = match tokio::time::timeout(timeout, reader.namespace(ns)).await {
        Ok(Ok(s)) => s,
        failed => {
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {} ms", timeout.as_millis()),
            };
            state
                .metrics
                .inc("netpol_guard_live_rereads_total", &[("result", "error")]);
            tracing::warn!(namespace = ns, error = %reason, "live re-read failed");
            if cache_miss {
                // Fail closed: the cache cannot say whether the namespace is managed.
                return Err(JudgeError::LiveRead {
                    namespace: ns.to_string(),
                    reason,
                });
            }
            // The cache says uncovered and nothing says otherwise: the denial stands.
            return Ok(engine::decide(req, &view, &settings)?);
        }
    };
    let mut overlay = (*view).clone();
    for e in overlay.set_namespace(ns, snapshot.labels, snapshot.policies.iter()) {
        tracing::warn!(namespace = ns, error = %e, "policy ignored: it cannot be compiled");
    }
    let verdict = engine::decide(req, &overlay, &settings)?;
    if !cache_miss {
        let still = !verdict.allowed();
        let result = if still { "confirmed" } else { "overturned" };
        state
            .metrics
            .inc("netpol_guard_live_rereads_total", &[("result", result)]);
    }
    Ok(verdict)
}

/// The namespace mutation (`autoManage`): allowed, with a JSON Patch adding
/// the managed label when one is due. Never denies: a mutation must not
/// block namespace creation.
async fn mutate(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let req = match body_or_error(&state, "/mutate", body, started) {
        Ok(r) => r,
        Err(rejected) => return rejected.into_response(),
    };
    let mut response = AdmissionResponse::allow(&req.uid);
    let mut decision = Decision::Allowed;
    if let Some(patch) = mutation::namespace_patch(&req, &state.settings()) {
        match serde_json::to_vec(&patch) {
            Ok(bytes) => {
                tracing::info!(uid = %req.uid, name = req.name.as_deref().unwrap_or(""), patch = %String::from_utf8_lossy(&bytes), "namespace labelled managed");
                response.patch_type = Some("JSONPatch".into());
                response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                decision = Decision::Patched;
            }
            Err(e) => {
                tracing::error!(uid = %req.uid, error = %e, "cannot serialise the namespace patch")
            }
        }
    }
    state.metrics.observe(
        "/mutate",
        &req.kind.kind,
        req.operation.as_str(),
        decision,
        started.elapsed(),
    );
    review_json(response)
}

fn action_str(a: Action) -> &'static str {
    match a {
        Action::Deny => "deny",
        Action::Warn => "warn",
        Action::Off => "off",
    }
}

fn decision_of(v: &Verdict) -> Decision {
    if !v.allowed() {
        Decision::Denied
    } else if v.findings.is_empty() {
        Decision::Allowed
    } else {
        Decision::Warned
    }
}

/// The AdmissionResponse for a verdict.
pub fn to_response(uid: &str, verdict: &Verdict) -> AdmissionResponse {
    let mut resp = match verdict.denial_message() {
        Some(message) => AdmissionResponse::deny(uid, message),
        None => AdmissionResponse::allow(uid),
    };
    resp.warnings = verdict.warnings();
    resp
}

fn log_decision(req: &AdmissionRequest, decision: Decision, rules: &[&str], took: Duration) {
    tracing::info!(
        uid = %req.uid,
        kind = %req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or(""),
        name = req.name.as_deref().unwrap_or(""),
        operation = req.operation.as_str(),
        user = %req.user_info.username,
        dry_run = req.dry_run.unwrap_or(false),
        rules = ?rules,
        decision = ?decision,
        micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        "admission decision"
    );
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish (at most `DRAIN_TIMEOUT`), and
/// returns.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    serve_on(listener, Some(TlsAcceptor::from(tls)), app, shutdown).await;
}

/// As `serve`, over plain HTTP (the `--metrics-addr` listener), with the
/// same header timeout and drain.
pub async fn serve_plain(listener: TcpListener, app: Router, shutdown: impl Future<Output = ()>) {
    serve_on(listener, None, app, shutdown).await;
}

async fn serve_on(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
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
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let result =
                match acceptor {
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                    Some(acceptor) => {
                        let tls_stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                        watcher.watch(conn.into_owned()).await
                    }
                };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    match tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("drain timed out; exiting with connections still open"),
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

//! The HTTPS server: TLS accept loop, HTTP/1.1 keep-alive (what kube-apiserver
//! speaks to webhooks) and HTTP/2 via ALPN, the admission endpoints, health,
//! readiness and metrics, and graceful shutdown on SIGTERM.

pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admission::{self, AdmissionRequest, AdmissionResponse, Operation};
use crate::cluster::ClusterView;
use crate::cluster::live::{LiveReadError, LiveReader};
use crate::config::Settings;
use crate::engine::{self, Verdict};
use crate::generate::mutation;
use crate::metrics::{Decision, Metrics};
use crate::rules::{Action, RuleId};
use crate::webhook::tls::CertStore;
use base64::Engine as _;

/// The process's allocator. glibc's malloc made up a quarter of the
/// instructions per admission request (parsing builds and drops a tree of
/// a few hundred small maps and strings per object) and, with two runtime
/// workers allocating and freeing each other's memory, contended on its
/// arena locks (a futex call per request); mimalloc's thread-local free
/// lists do neither (docs/benchmarks.md, "Throughput work"). Not under
/// `cargo fuzz` (`cfg(fuzzing)`), where AddressSanitizer must see every
/// allocation.
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long shutdown waits for in-flight requests before exiting anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// At shutdown, how long open HTTP/1.1 connections may still bring requests
/// (each answered with `Connection: close`) before idle ones are closed.
/// Closing an idle keep-alive connection races with a client that is just
/// sending on it; a busy client instead learns from the header to stop.
const IDLE_GRACE: Duration = Duration::from_secs(1);
/// Default of `serve --max-in-flight`: admission requests judged at once.
/// Judging takes microseconds against the cache, so this many in flight
/// means requests are piling up behind live re-reads of a slow API server;
/// queueing more would only turn fast answers into webhook timeouts.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Connection-level bounds of the HTTPS (and plain metrics) listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// How long a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers, from the
    /// connection's start or the end of the previous response (slowloris
    /// guard; also closes keep-alive connections idle that long).
    pub header_read_timeout: Duration,
    /// Connections open at once; more are closed as they are accepted.
    pub max_connections: usize,
    /// `--client-ca`: /validate and /mutate answer 403 to a connection
    /// without a verified client certificate.
    pub require_client_cert: bool,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            require_client_cert: false,
        }
    }
}

/// Default of `serve --max-connections`: far above what two API servers
/// keep open, far below what exhausts memory (a connection costs tens of KB).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of `serve --max-body-buffer`: 16 bodies of the 4 MiB
/// `maxBodyBytes`, well inside the Deployment's 256Mi limit.
pub const DEFAULT_MAX_BODY_BUFFER: usize = 64 << 20;

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
    /// Admission requests being judged now, and the most allowed at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// How long a request body may take to arrive once its headers have.
    body_read_timeout_ms: AtomicU64,
    /// Unix second of the last "shedding" warning (logged once a second).
    last_shed_warning: AtomicU64,
    /// Unix second of the last "rejected request body" warning, and the
    /// rejections not logged since (logged once a second).
    last_reject_warning: AtomicU64,
    unlogged_rejects: AtomicU64,
    /// Request bodies being buffered now, within `--max-body-buffer`.
    bodies: BodyBudget,
    pub metrics: Metrics,
}

/// The global budget for buffered request bodies. A body reserves room for
/// its announced length before a byte is read. When the budget is full, the
/// reads that have been going on longest (at least `EVICT_AFTER`) are cut to
/// make room for a body of ordinary size (`EVICTING_MAX`): the API server
/// sends a body in one go, so a read that is still waiting for bytes after
/// that long is a slow or malicious client, and it must not keep
/// well-formed requests out.
struct BodyBudget {
    max: AtomicUsize,
    state: std::sync::Mutex<BodyReads>,
    /// Signalled whenever room is given back.
    freed: tokio::sync::Notify,
}

#[derive(Default)]
struct BodyReads {
    used: usize,
    next_id: u64,
    /// Reads in progress, oldest first: when each started, its size, and
    /// how to cut it (taken once it was told to stop).
    reads:
        std::collections::BTreeMap<u64, (Instant, usize, Option<tokio::sync::oneshot::Sender<()>>)>,
}

/// A read younger than this is never cut to make room.
const EVICT_AFTER: Duration = Duration::from_millis(500);
/// Only a body up to this size may have older reads cut for it. The API
/// server's AdmissionReviews are tens of KB; large bodies waiting for room
/// never cut each other, or a crowd of slow large bodies would take turns
/// holding the budget while a well-formed request waited behind them.
const EVICTING_MAX: usize = 1 << 20;
/// How long a request waits for room beyond `EVICT_AFTER` (the reads it
/// cut must end and give their room back).
const ROOM_WAIT: Duration = Duration::from_millis(500);

/// Room for one request body in the budget; given back when dropped (after
/// the body is parsed).
struct BodyReservation<'a> {
    budget: &'a BodyBudget,
    id: u64,
}

impl Drop for BodyReservation<'_> {
    fn drop(&mut self) {
        let mut s = lock_ignoring_poison(&self.budget.state);
        if let Some((_, bytes, _)) = s.reads.remove(&self.id) {
            s.used -= bytes;
        }
        drop(s);
        self.budget.freed.notify_waiters();
    }
}

impl BodyBudget {
    fn new(max: usize) -> Self {
        Self {
            max: AtomicUsize::new(max),
            state: std::sync::Mutex::new(BodyReads::default()),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Room for `bytes`, cutting reads older than `EVICT_AFTER` if needed;
    /// `None` when there is none to be had. The receiver fires if this read
    /// is cut later.
    async fn reserve(
        &self,
        bytes: usize,
    ) -> Option<(BodyReservation<'_>, tokio::sync::oneshot::Receiver<()>)> {
        let deadline = tokio::time::Instant::now() + EVICT_AFTER + ROOM_WAIT;
        loop {
            let freed = self.freed.notified();
            // When to look again if nothing can be cut yet (`None`: reads
            // were cut, wait for their room).
            let ripe = {
                let mut s = lock_ignoring_poison(&self.state);
                let max = self.max.load(Ordering::SeqCst);
                if s.used + bytes <= max {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let id = s.next_id;
                    s.next_id += 1;
                    s.used += bytes;
                    s.reads.insert(id, (Instant::now(), bytes, Some(tx)));
                    return Some((BodyReservation { budget: self, id }, rx));
                }
                if bytes > max {
                    return None;
                }
                // Cut the oldest reads (the map is in start order) until
                // enough room is on its way; reads already cut count too.
                let free = max.saturating_sub(s.used);
                let mut coming = 0;
                let now = Instant::now();
                for (started, size, cancel) in s.reads.values_mut() {
                    match cancel {
                        None => coming += *size,
                        Some(_) if free + coming >= bytes || bytes > EVICTING_MAX => {}
                        Some(_) if now.duration_since(*started) < EVICT_AFTER => break,
                        Some(_) => {
                            if let Some(c) = cancel.take() {
                                let _ = c.send(());
                            }
                            coming += *size;
                        }
                    }
                }
                if free + coming < bytes {
                    // Nothing old enough to cut yet: wait until the oldest
                    // is (or room is given back), within the deadline.
                    let oldest = s.reads.values().find(|(_, _, c)| c.is_some()).map(|r| r.0);
                    match oldest {
                        Some(t) => Some(tokio::time::Instant::from_std(t + EVICT_AFTER)),
                        None => return None,
                    }
                } else {
                    None
                }
            };
            match ripe {
                Some(ripe) if ripe >= deadline => return None,
                Some(ripe) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(ripe) => {}
                        () = freed => {}
                    }
                }
                None => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }
}

/// One admission request being judged; frees its slot when dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(DEFAULT_MAX_IN_FLIGHT),
            body_read_timeout_ms: AtomicU64::new(30_000),
            last_shed_warning: AtomicU64::new(0),
            last_reject_warning: AtomicU64::new(0),
            unlogged_rejects: AtomicU64::new(0),
            bodies: BodyBudget::new(DEFAULT_MAX_BODY_BUFFER),
            metrics: Metrics::new(),
        })
    }

    /// At most `n` admission requests are judged at once; more get 503.
    pub fn set_max_in_flight(&self, n: usize) {
        self.max_in_flight.store(n.max(1), Ordering::SeqCst);
    }

    /// At most `bytes` of request bodies are buffered at once.
    pub fn set_max_body_buffer(&self, bytes: usize) {
        self.bodies.max.store(bytes.max(1), Ordering::SeqCst);
    }

    /// How long a request body may take to arrive once its headers have
    /// (HTTP 408 after that).
    pub fn set_body_read_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.body_read_timeout_ms.store(ms, Ordering::SeqCst);
    }

    fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms.load(Ordering::SeqCst))
    }

    /// A slot to judge one request, or `None` when `max_in_flight` are taken.
    fn try_admit(&self) -> Option<InFlight<'_>> {
        let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
        let slot = InFlight(&self.in_flight);
        (before < self.max_in_flight.load(Ordering::SeqCst)).then_some(slot)
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

/// The HTTP routes. `max_body_bytes` (read now; a reload does not change it)
/// bounds every request body (HTTP 413).
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.settings().config.max_body_bytes;
    Router::new()
        .route(
            "/validate",
            post(move |State(state): State<Arc<AppState>>, req: Request| {
                validate(state, req, limit)
            }),
        )
        .route(
            "/mutate",
            post(move |State(state): State<Arc<AppState>>, req: Request| mutate(state, req, limit)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
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

/// A body that is not an AdmissionReview, or that could not be read:
/// answered with its status and a short plain-text reason. `close` asks an
/// HTTP/1.1 client not to reuse the connection (the body was left unread).
struct Rejected {
    status: StatusCode,
    message: String,
    close: bool,
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response();
        if self.close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Reads the body, bounded in size (`limit`, HTTP 413) and in time (HTTP
/// 408, `body_read_timeout`). A `Content-Length` over the limit is refused
/// without buffering any of it: up to twice the limit the body is read and
/// discarded first (a client that writes its whole body before reading
/// still gets the 413, and keeps its connection); beyond that the 413 goes
/// out at once and the connection closes, so a client announcing 100 MB is
/// not waited for.
async fn read_body(
    state: &AppState,
    req: Request,
    limit: usize,
) -> Result<(Bytes, BodyReservation<'_>), Rejected> {
    // Connection-specific headers are not allowed in HTTP/2.
    let http1 = req.version() < Version::HTTP_2;
    let timeout = state.body_read_timeout();
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if let Some(len) = announced
        && len > limit64
    {
        let drained = len <= limit64.saturating_mul(2)
            && tokio::time::timeout(timeout, discard(req.into_body()))
                .await
                .is_ok_and(|r| r.is_ok());
        return Err(Rejected {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "body of {len} bytes is over the limit of {limit} bytes (maxBodyBytes)"
            ),
            close: http1 && !drained,
        });
    }
    // Room in the global budget before a byte is buffered: what the
    // Content-Length announces, or the whole limit for a chunked body.
    let wanted = announced
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(limit)
        .min(limit);
    let budget_full = || {
        state.metrics.inc(
            "netpol_guard_shed_requests_total",
            &[("endpoint", "body-buffer")],
        );
        Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "netpol-guard is already buffering {} bytes of request bodies (--max-body-buffer); retry in a second",
                state.bodies.max.load(Ordering::SeqCst)
            ),
            // The body was not (all) read: the connection cannot be reused.
            close: http1,
        }
    };
    let Some((reservation, cut)) = state.bodies.reserve(wanted).await else {
        return Err(budget_full());
    };
    let body = collect_into(req.into_body(), wanted, limit);
    let read = tokio::select! {
        read = tokio::time::timeout(timeout, body) => read,
        // Cut to make room for newer requests: it was too slow.
        _ = cut => return Err(budget_full()),
    };
    match read {
        Ok(Ok(collected)) => Ok((collected, reservation)),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(Rejected {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("body is over the limit of {limit} bytes (maxBodyBytes)"),
            close: http1,
        }),
        Ok(Err(e)) => Err(Rejected {
            status: StatusCode::BAD_REQUEST,
            message: format!("cannot read the body: {e}"),
            close: http1,
        }),
        Err(_) => Err(Rejected {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "body not received within {} ms of the headers",
                timeout.as_millis()
            ),
            close: http1,
        }),
    }
}

/// Reads a body into one buffer of the announced size (`capacity`), so what
/// is held is what the budget reserved: no growth by doubling, no copy at the
/// end, and the transport's read buffers are not kept alive by slices of
/// them. Over `limit`: `LengthLimitError`, as `Limited` reports it.
async fn collect_into(
    body: axum::body::Body,
    capacity: usize,
    limit: usize,
) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync>> {
    let mut body = Limited::new(body, limit);
    let mut buf = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// Reads a body to its end without keeping it.
async fn discard(mut body: axum::body::Body) -> Result<(), axum::Error> {
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(())
}

/// Reads and parses an admission request once a judging slot is free:
/// answers 413/408/400 for a body that cannot be read or is not an
/// AdmissionReview, and 503 (`Retry-After: 1`) when `max_in_flight`
/// requests are already being judged. The body is read before taking a slot,
/// so a slow client never holds one.
async fn admit<'a>(
    state: &'a AppState,
    endpoint: &'static str,
    req: Request,
    limit: usize,
    started: Instant,
) -> Result<(AdmissionRequest, InFlight<'a>), Response> {
    let rejected = |r: Rejected| {
        state
            .metrics
            .observe(endpoint, "", "", Decision::Rejected, started.elapsed());
        // Anyone can send junk: at most one line a second (with how many
        // were not logged), so junk cannot flood the logs.
        if first_this_second(&state.last_reject_warning) {
            let unlogged = state.unlogged_rejects.swap(0, Ordering::SeqCst);
            tracing::warn!(endpoint, status = r.status.as_u16(), error = %r.message, unlogged, "rejected request body");
        } else {
            state.unlogged_rejects.fetch_add(1, Ordering::SeqCst);
        }
        r.into_response()
    };
    let (body, _reservation) = read_body(state, req, limit).await.map_err(rejected)?;
    let Some(slot) = state.try_admit() else {
        return Err(shed(state, endpoint));
    };
    let req = admission::parse_review(&body).map_err(|e| {
        rejected(Rejected {
            status: StatusCode::BAD_REQUEST,
            // serde's messages quote the offending value: bounded.
            message: engine::truncate_chars(&e.to_string(), MAX_ECHO),
            close: false,
        })
    })?;
    Ok((req, slot))
}

/// The answer to a request over `max_in_flight`: 503 with `Retry-After`.
/// The API server treats it as a webhook failure (its failurePolicy decides).
fn shed(state: &AppState, endpoint: &'static str) -> Response {
    let max = state.max_in_flight.load(Ordering::SeqCst);
    state.metrics.inc(
        "netpol_guard_shed_requests_total",
        &[("endpoint", endpoint)],
    );
    if first_this_second(&state.last_shed_warning) {
        tracing::warn!(
            endpoint,
            max_in_flight = max,
            "overloaded: shedding admission requests with 503 (netpol_guard_shed_requests_total counts them)"
        );
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, "1"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        format!(
            "netpol-guard is overloaded: {max} admission requests are already being judged (--max-in-flight); retry in a second\n"
        ),
    )
        .into_response()
}

/// The AdmissionReview answer as JSON, serialised once into a buffer sized
/// for it (what `axum::Json` sends, without growing a 128-byte buffer
/// through a denial message of several KB).
fn review_json(response: AdmissionResponse) -> Response {
    let texts = response.status.as_ref().map_or(0, |s| s.message.len())
        + response.warnings.iter().map(String::len).sum::<usize>()
        + response.patch.as_ref().map_or(0, String::len);
    // The fixed fields, and room for escaping (newlines, quotes) in the texts.
    let mut body = Vec::with_capacity(256 + response.uid.len() + texts + texts / 8);
    match serde_json::to_writer(&mut body, &response.into_review()) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            e.to_string(),
        )
            .into_response(),
    }
}

async fn validate(state: Arc<AppState>, req: Request, limit: usize) -> Response {
    let started = Instant::now();
    let (req, _slot) = match admit(&state, "/validate", req, limit, started).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
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
                let clip = |s: &str| engine::truncate_chars(s, MAX_ECHO);
                tracing::info!(
                    uid = %clip(&req.uid),
                    kind = %clip(&req.kind.kind),
                    namespace,
                    name = %clip(req.name.as_deref().unwrap_or("")),
                    operation = req.operation.as_str(),
                    user = %clip(&req.user_info.username),
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
    let timeout = Duration::from_millis(settings.config.live_read_timeout_millis);
    if !cache_miss {
        let verdict = engine::decide(req, &view, &settings)?;
        if denies(&verdict, RuleId::BaselineProtected)
            && req.operation == Operation::Delete
            && !view.is_terminating(ns)
        {
            // The namespace controller may be deleting the namespace's
            // contents before the watch shows its deletionTimestamp.
            return Ok(terminating_reread(state, reader, req, &view, verdict, timeout).await);
        }
        if !denies(&verdict, RuleId::RequireNetworkPolicy) {
            return Ok(verdict);
        }
    }
    let snapshot = match live_read(state, ns, timeout, reader.namespace(ns)).await {
        Ok(s) => s,
        Err(reason) => {
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
    if cache_miss && snapshot.meta.is_none() {
        // The API server never sends a request for an object in a namespace
        // that does not exist (NamespaceLifecycle runs first): this one was
        // not sent by it. Fail closed rather than judge it unmanaged.
        return Err(JudgeError::LiveRead {
            namespace: ns.to_string(),
            reason: "the namespace does not exist".to_string(),
        });
    }
    // Only the namespace being judged is replaced: no copy of the whole view.
    let mut overlay = view.focused(ns);
    for e in overlay.set_namespace(ns, snapshot.meta.clone(), snapshot.policies.iter()) {
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

/// One live read of the API server within `timeout`; a failure is counted
/// and logged, and returned as text for the denial that may carry it.
async fn live_read<T>(
    state: &AppState,
    ns: &str,
    timeout: Duration,
    read: impl Future<Output = Result<T, LiveReadError>>,
) -> Result<T, String> {
    let reason = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} ms", timeout.as_millis()),
    };
    state
        .metrics
        .inc("netpol_guard_live_rereads_total", &[("result", "error")]);
    tracing::warn!(namespace = ns, error = %reason, "live re-read failed");
    Err(reason)
}

fn denies(verdict: &Verdict, rule: RuleId) -> bool {
    verdict
        .findings
        .iter()
        .any(|(f, a)| f.rule == rule && *a == Action::Deny)
}

/// Before denying a baseline DELETE: reads the Namespace live, and judges
/// again if it is in fact terminating (see `engine::judge_baseline_change`).
/// A failed read leaves the denial in place; the namespace controller retries.
async fn terminating_reread(
    state: &AppState,
    reader: &LiveReader,
    req: &AdmissionRequest,
    view: &ClusterView,
    verdict: Verdict,
    timeout: Duration,
) -> Verdict {
    let ns = req.namespace.as_deref().unwrap_or("");
    let Ok(meta) = live_read(state, ns, timeout, reader.namespace_meta(ns)).await else {
        return verdict;
    };
    if !meta.as_ref().is_some_and(|m| m.terminating) {
        state.metrics.inc(
            "netpol_guard_live_rereads_total",
            &[("result", "confirmed")],
        );
        return verdict;
    }
    let mut overlay = view.focused(ns);
    overlay.set_namespace_meta(ns, meta);
    let settings = state.settings();
    match engine::decide(req, &overlay, &settings) {
        Ok(fresh) => {
            state.metrics.inc(
                "netpol_guard_live_rereads_total",
                &[("result", "overturned")],
            );
            fresh
        }
        Err(_) => verdict,
    }
}

/// The namespace mutation (`autoManage`): allowed, with a JSON Patch adding
/// the managed label when one is due. Never denies: a mutation must not
/// block namespace creation.
async fn mutate(state: Arc<AppState>, req: Request, limit: usize) -> Response {
    let started = Instant::now();
    let (req, _slot) = match admit(&state, "/mutate", req, limit, started).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let mut response = AdmissionResponse::allow(&req.uid);
    let mut decision = Decision::Allowed;
    if let Some(patch) = mutation::namespace_patch(&req, &state.settings()) {
        match serde_json::to_vec(&patch) {
            Ok(bytes) => {
                tracing::info!(uid = %engine::truncate_chars(&req.uid, MAX_ECHO), name = %engine::truncate_chars(req.name.as_deref().unwrap_or(""), MAX_ECHO), patch = %engine::truncate_chars(&String::from_utf8_lossy(&bytes), 4 * MAX_ECHO), "namespace labelled managed");
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

/// The most characters of a request-supplied string echoed in a response
/// or a log line.
const MAX_ECHO: usize = 256;

fn log_decision(req: &AdmissionRequest, decision: Decision, rules: &[&str], took: Duration) {
    let clip = |s: &str| engine::truncate_chars(s, MAX_ECHO);
    tracing::info!(
        uid = %clip(&req.uid),
        kind = %clip(&req.kind.kind),
        namespace = %clip(req.namespace.as_deref().unwrap_or("")),
        name = %clip(req.name.as_deref().unwrap_or("")),
        operation = req.operation.as_str(),
        user = %clip(&req.user_info.username),
        dry_run = req.dry_run.unwrap_or(false),
        rules = ?rules,
        decision = ?decision,
        micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        "admission decision"
    );
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then
/// drains (see `drain`) and returns. The protocol follows ALPN: HTTP/2 for
/// `h2`, HTTP/1.1 otherwise, so the header read timeout runs from the first
/// byte a client owes (a client that completes the handshake and then sends
/// nothing is closed after `header_read_timeout`).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    serve_on(
        listener,
        Some(TlsAcceptor::from(tls)),
        app,
        limits,
        shutdown,
    )
    .await;
}

/// As `serve`, over plain HTTP/1.1 (the `--metrics-addr` listener), with the
/// same header timeout and drain.
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    serve_on(listener, None, app, limits, shutdown).await;
}

/// The per-connection service: the router, plus `Connection: close` on
/// HTTP/1.1 responses once shutdown has begun, so a busy keep-alive client
/// stops sending on a connection that is about to close.
fn connection_service(
    app: Router,
    draining: watch::Receiver<bool>,
    refuse_admission: bool,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send + 'static,
> + Clone {
    let inner = TowerToHyperService::new(app);
    hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let http1 = req.version() < Version::HTTP_2;
        let admission = matches!(req.uri().path(), "/validate" | "/mutate");
        let refused = refuse_admission && admission;
        let response = inner.call(req);
        let draining = draining.clone();
        async move {
            if refused {
                // The body is never read: close after answering.
                let mut refusal = (
                    StatusCode::FORBIDDEN,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "a client certificate signed by the --client-ca is required for admission requests\n",
                )
                    .into_response();
                if http1 {
                    refusal
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return Ok(refusal);
            }
            let mut response = response.await?;
            if http1 && *draining.borrow() {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        }
    })
}

async fn serve_on(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let (draining_tx, draining) = watch::channel(false);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Per-connection read buffer (hyper's default grows to ~400 KB):
        // bodies are copied out into their reserved buffer anyway.
        .max_buf_size(64 << 10)
        .keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // HTTP/2 (only with --http2): idle connections are pinged and closed
    // when they do not answer, like HTTP/1.1's header read timeout.
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.handshake_timeout)
        .max_header_list_size(64 << 10);
    let (http1, http2) = (Arc::new(http1), Arc::new(http2));
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let last_refusal_warning = Arc::new(AtomicU64::new(0));
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
        // Over --max-connections: closed at once, before the handshake.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            drop(stream);
            refused_connection(&last_refusal_warning, limits.max_connections);
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let (http1, http2) = (http1.clone(), http2.clone());
        let mut draining = draining.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let result = match acceptor {
                None => {
                    // Plain HTTP (--metrics-addr) serves no admission.
                    let service = connection_service(app, draining.clone(), false);
                    watcher
                        .watch(http1.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
                    let tls_stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        // Shutting down: a connection still in its handshake
                        // has no request in flight, drop it.
                        _ = draining.wait_for(|d| *d) => return,
                    };
                    // rustls verified any certificate the client sent.
                    let verified = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|c| !c.is_empty());
                    let service = connection_service(
                        app,
                        draining.clone(),
                        limits.require_client_cert && !verified,
                    );
                    if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        watcher
                            .watch(http2.serve_connection(TokioIo::new(tls_stream), service))
                            .await
                    } else {
                        watcher
                            .watch(http1.serve_connection(TokioIo::new(tls_stream), service))
                            .await
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drain(graceful, &draining_tx).await;
}

/// True for the first call in each wall-clock second (`last` holds the
/// second of the previous one): warnings that anyone can trigger are
/// written at most once a second.
fn first_this_second(last: &AtomicU64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    last.swap(now, Ordering::SeqCst) != now
}

/// Counts a connection closed for `--max-connections`, and says so at WARN
/// at most once a second.
fn refused_connection(last_warning: &AtomicU64, max: usize) {
    crate::metrics::REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    if first_this_second(last_warning) {
        tracing::warn!(
            max_connections = max,
            "too many connections: closing new ones (netpol_guard_refused_connections_total counts them)"
        );
    }
}

/// Shutdown, once the listener is closed. Requests already received are
/// answered. For `IDLE_GRACE`, open connections keep being served and every
/// HTTP/1.1 response says `Connection: close` (the connection closes after
/// it), so a client that keeps sending learns to stop instead of being cut;
/// then connections still idle are closed (HTTP/2 gets GOAWAY) and requests
/// still being judged finish, all within `DRAIN_TIMEOUT` of the signal.
/// (Closing an idle keep-alive connection races with a request the client
/// sends at that very moment, as with any HTTP/1.1 server; the grace period
/// leaves only connections that sat idle through it.) Connections still in
/// their TLS handshake are dropped at once.
async fn drain(graceful: GracefulShutdown, draining: &watch::Sender<bool>) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    draining.send_replace(true);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: not accepting; draining in-flight requests"
    );
    let grace_end = tokio::time::Instant::now() + IDLE_GRACE.min(DRAIN_TIMEOUT);
    while graceful.count() > 0 && tokio::time::Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match tokio::time::timeout_at(deadline, graceful.shutdown()).await {
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

/// Standard error for `serve`'s logs, written in batches by a background
/// thread: a request logs its decision by appending the line to a buffer
/// (no write(2), and no wait on a pipe or disk that is slow to drain). The
/// thread wakes when the first line arrives, lets lines gather for
/// `LOG_LINGER` and writes them in one call, so the log is at most a few
/// milliseconds behind. Lines are never reordered or split.
///
/// - WARN and ERROR lines are written at once, after what is buffered, so
///   a problem shows without delay and in order with what the process
///   prints itself (a start-up error, say).
/// - At exit (return from `main`, `std::process::exit`) what is buffered is
///   written before the process ends (an `atexit` handler).
/// - Lossy only under overload: while `LOG_BUFFER_MAX` bytes are waiting
///   (standard error has not been drained for a while), new lines are
///   dropped instead of blocking requests, counted, and the count is logged
///   at WARN (`log lines dropped`) as soon as there is room again.
#[derive(Clone, Copy)]
pub struct BufferedStderr {
    /// `None` when the writing thread could not be started: then each line
    /// is written directly, as `std::io::stderr` would.
    shared: Option<&'static LogBuffer>,
    /// Write at once (WARN and ERROR).
    urgent: bool,
}

/// How long the writing thread lets lines gather before one write.
const LOG_LINGER: Duration = Duration::from_millis(2);
/// Bytes waiting to be written beyond which new lines are dropped.
const LOG_BUFFER_MAX: usize = 4 << 20;

/// What the logging threads and the writing thread share.
struct LogBuffer {
    pending: std::sync::Mutex<PendingLines>,
    /// Signalled when the first line arrives while the writer sleeps.
    wake: std::sync::Condvar,
    /// Held while writing to standard error, so the exit flush waits for a
    /// batch being written and keeps the order.
    writing: std::sync::Mutex<()>,
    /// Lines dropped since the last report.
    dropped: AtomicU64,
}

#[derive(Default)]
struct PendingLines {
    bytes: Vec<u8>,
    /// The writing thread is waiting for a line (the next writer wakes it).
    idle: bool,
}

static LOG_BUFFER: std::sync::OnceLock<Option<&'static LogBuffer>> = std::sync::OnceLock::new();

fn lock_ignoring_poison<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl BufferedStderr {
    /// The process's buffered standard error; the first call starts the
    /// writing thread and registers the exit flush.
    pub fn get() -> Self {
        let shared = *LOG_BUFFER.get_or_init(|| {
            let buffer: &'static LogBuffer = Box::leak(Box::new(LogBuffer {
                pending: std::sync::Mutex::new(PendingLines::default()),
                wake: std::sync::Condvar::new(),
                writing: std::sync::Mutex::new(()),
                dropped: AtomicU64::new(0),
            }));
            let started = std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || buffer.run())
                .is_ok();
            if !started {
                return None;
            }
            // SAFETY: `atexit` only stores the pointer; the handler is an
            // `extern "C" fn()` as it expects, and cannot unwind into C (it
            // ignores lock poisoning and write errors).
            let _ = unsafe { atexit(flush_logs_at_exit) };
            Some(buffer)
        });
        Self {
            shared,
            urgent: false,
        }
    }
}

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn flush_logs_at_exit() {
    if let Some(Some(buffer)) = LOG_BUFFER.get() {
        buffer.write_pending(&mut Vec::new(), &[]);
    }
}

impl LogBuffer {
    /// Appends one formatted line (tracing writes each event whole).
    fn push(&self, line: &[u8]) {
        let mut pending = lock_ignoring_poison(&self.pending);
        if pending.bytes.len() + line.len() > LOG_BUFFER_MAX {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.bytes.extend_from_slice(line);
        let wake = std::mem::take(&mut pending.idle);
        drop(pending);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The writing thread.
    fn run(&self) {
        let mut batch = Vec::new();
        loop {
            {
                let mut pending = lock_ignoring_poison(&self.pending);
                while pending.bytes.is_empty() {
                    pending.idle = true;
                    pending = self
                        .wake
                        .wait(pending)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            }
            std::thread::sleep(LOG_LINGER);
            self.write_pending(&mut batch, &[]);
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "log lines dropped: standard error was not drained fast enough and {} bytes were waiting",
                    LOG_BUFFER_MAX
                );
            }
        }
    }

    /// Takes what is buffered and writes it, then `line`, `batch` being the
    /// spare buffer (kept between calls, so its capacity is reused).
    fn write_pending(&self, batch: &mut Vec<u8>, line: &[u8]) {
        use std::io::Write as _;
        let _writing = lock_ignoring_poison(&self.writing);
        std::mem::swap(&mut lock_ignoring_poison(&self.pending).bytes, batch);
        batch.extend_from_slice(line);
        if !batch.is_empty() {
            // As tracing's own writer: a failed write loses the lines.
            let _ = std::io::stderr().lock().write_all(batch);
        }
        batch.clear();
        if batch.capacity() > LOG_BUFFER_MAX / 16 {
            *batch = Vec::new();
        }
    }
}

impl std::io::Write for BufferedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.shared {
            Some(buffer) if self.urgent => {
                buffer.write_pending(&mut Vec::new(), buf);
                Ok(buf.len())
            }
            Some(buffer) => {
                buffer.push(buf);
                Ok(buf.len())
            }
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BufferedStderr {
    type Writer = BufferedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        Self {
            urgent: *meta.level() <= tracing::Level::WARN,
            ..*self
        }
    }
}

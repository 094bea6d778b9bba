//! The HTTP routes: admission (`/validate`, `/mutate`) with its body budget
//! and in-flight limit, and health, readiness and metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::admission::{self, AdmissionRequest, AdmissionResponse};
use crate::engine::Verdict;
use crate::generate::mutation;
use crate::metrics::Decision;
use base64::Engine as _;

use super::judge::judge_request;
use super::state::{AppState, BodyReservation, InFlight};
use super::transport::first_this_second;

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

pub(super) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
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

pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
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
pub(super) struct Rejected {
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
pub(super) async fn read_body(
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
pub(super) async fn collect_into(
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
pub(super) async fn discard(mut body: axum::body::Body) -> Result<(), axum::Error> {
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
pub(super) async fn admit<'a>(
    state: &'a AppState,
    endpoint: &'static str,
    req: Request,
    limit: usize,
    started: Instant,
) -> Result<(AdmissionRequest, InFlight<'a>, Instant), Response> {
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
    let read = Instant::now();
    let Some(slot) = state.try_admit() else {
        return Err(shed(state, endpoint));
    };
    let req = admission::parse_review(&body).map_err(|e| {
        rejected(Rejected {
            status: StatusCode::BAD_REQUEST,
            // serde's messages quote the offending value: bounded.
            message: crate::text::truncate_chars(&e.to_string(), MAX_ECHO),
            close: false,
        })
    })?;
    Ok((req, slot, read))
}

/// The answer to a request over `max_in_flight`: 503 with `Retry-After`.
/// The API server treats it as a webhook failure (its failurePolicy decides).
pub(super) fn shed(state: &AppState, endpoint: &'static str) -> Response {
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
pub(super) fn review_json(response: AdmissionResponse) -> Response {
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

pub(super) async fn validate(state: Arc<AppState>, req: Request, limit: usize) -> Response {
    let started = Instant::now();
    let (req, _slot, read) = match admit(&state, "/validate", req, limit, started).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let (response, decision, rules) = match judge_request(&state, &req).await {
        Ok(verdict) => {
            for (f, a) in &verdict.findings {
                state.metrics.finding(f.rule.as_str(), a.as_str());
            }
            let namespace = req.namespace.as_deref().unwrap_or("");
            // One series per rule and namespace the cluster has: a forged
            // request for a made-up namespace counts under `other`.
            let known = state.view().namespace_labels(namespace).is_some();
            let series = if known { namespace } else { "other" };
            for rule in &verdict.audit_would_deny {
                state.metrics.inc(
                    "netpol_guard_audit_would_deny_total",
                    &[("rule", rule.as_str()), ("namespace", series)],
                );
                let clip = |s: &str| crate::text::truncate_chars(s, MAX_ECHO);
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
    state.metrics.observe_judging(read.elapsed());
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

/// The namespace mutation (`autoManage`): allowed, with a JSON Patch adding
/// the managed label when one is due. Never denies: a mutation must not
/// block namespace creation.
pub(super) async fn mutate(state: Arc<AppState>, req: Request, limit: usize) -> Response {
    let started = Instant::now();
    let (req, _slot, read) = match admit(&state, "/mutate", req, limit, started).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let mut response = AdmissionResponse::allow(&req.uid);
    let mut decision = Decision::Allowed;
    if let Some(patch) = mutation::namespace_patch(&req, &state.settings()) {
        match serde_json::to_vec(&patch) {
            Ok(bytes) => {
                tracing::info!(uid = %crate::text::truncate_chars(&req.uid, MAX_ECHO), name = %crate::text::truncate_chars(req.name.as_deref().unwrap_or(""), MAX_ECHO), patch = %crate::text::truncate_chars(&String::from_utf8_lossy(&bytes), 4 * MAX_ECHO), "namespace labelled managed");
                response.patch_type = Some("JSONPatch".into());
                response.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                decision = Decision::Patched;
            }
            Err(e) => {
                tracing::error!(uid = %req.uid, error = %e, "cannot serialise the namespace patch")
            }
        }
    }
    state.metrics.observe_judging(read.elapsed());
    state.metrics.observe(
        "/mutate",
        &req.kind.kind,
        req.operation.as_str(),
        decision,
        started.elapsed(),
    );
    review_json(response)
}

pub(super) fn decision_of(v: &Verdict) -> Decision {
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
pub(super) const MAX_ECHO: usize = 256;

pub(super) fn log_decision(
    req: &AdmissionRequest,
    decision: Decision,
    rules: &[&str],
    took: Duration,
) {
    let clip = |s: &str| crate::text::truncate_chars(s, MAX_ECHO);
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

//! Judging one request against the cluster: the pure engine on the cached
//! view, plus the reads of the live API server it needs first (a namespace
//! the cache does not know) or before a denial (read-after-write).

use std::future::Future;
use std::time::Duration;

use crate::admission::{AdmissionRequest, Operation};
use crate::cluster::ClusterView;
use crate::cluster::live::{LiveReadError, LiveReader};
use crate::engine::{self, Verdict};
use crate::rules::{Action, RuleId};

use super::state::AppState;

/// Why a request could not be judged.
#[derive(Debug, thiserror::Error)]
pub(super) enum JudgeError {
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
pub(super) async fn judge_request(
    state: &AppState,
    req: &AdmissionRequest,
) -> Result<Verdict, JudgeError> {
    let settings = state.settings();
    let view = state.view();
    let Some(reader) = state.live.get() else {
        return Ok(engine::decide(req, &view, &settings)?);
    };
    let ns = req.namespace.as_deref().unwrap_or("");
    note_write(reader, req);
    let cache_miss =
        !ns.is_empty() && !settings.is_excluded(ns) && view.namespace_labels(ns).is_none();
    let timeout = Duration::from_millis(settings.config.live_read_timeout_millis);
    let reuse = Duration::from_millis(settings.config.live_read_reuse_millis);
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
    let snapshot = match live_read(state, ns, timeout, reader.namespace(ns, reuse)).await {
        Ok((s, source)) => {
            state.metrics.inc(
                "netpol_guard_live_reads_total",
                &[("source", source.as_str())],
            );
            s
        }
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

/// Tells the reader about a write that a live read of its namespace would
/// see, so an older read is not reused for the next denial there.
fn note_write(reader: &LiveReader, req: &AdmissionRequest) {
    let subresource = req.sub_resource.as_deref().is_some_and(|s| !s.is_empty());
    if req.operation == Operation::Connect || subresource {
        return;
    }
    let group_kind = (req.kind.group.as_str(), req.kind.kind.as_str());
    let ns = match (group_kind, req.namespace.as_deref(), req.name.as_deref()) {
        (("", "Namespace"), _, Some(name)) => name,
        (
            ("networking.k8s.io", "NetworkPolicy") | ("cilium.io", "CiliumNetworkPolicy"),
            Some(ns),
            _,
        ) => ns,
        _ => return,
    };
    reader.note_write(ns);
}

/// One live read of the API server within `timeout`; a failure is counted
/// and logged, and returned as text for the denial that may carry it.
pub(super) async fn live_read<T>(
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

pub(super) fn denies(verdict: &Verdict, rule: RuleId) -> bool {
    verdict
        .findings
        .iter()
        .any(|(f, a)| f.rule == rule && *a == Action::Deny)
}

/// Before denying a baseline DELETE: reads the Namespace live, and judges
/// again if it is in fact terminating (see `engine::judge_baseline_change`).
/// A failed read leaves the denial in place; the namespace controller retries.
pub(super) async fn terminating_reread(
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

//! Kubernetes Events netpol-guard records (InvalidConfig on its ConfigMap,
//! BaselineCreated, BaselineRestored and BaselineImpact on namespaces).
//!
//! An Event lives in the namespace of the object it is about. A Namespace is
//! cluster-scoped, so its Events land in `default` (the API server accepts
//! only `default` or `kube-system` for them): `kubectl describe namespace X`
//! shows them, and `kubectl get events -A` lists them.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};

use crate::metrics::Metrics;

/// Records one Event. A failure is logged and counted in
/// `netpol_guard_event_failures_total{reason}`: an Event is a report, never a
/// reason to fail the work it reports on.
///
/// A fresh `Recorder` each time on purpose: a long-lived one folds a later
/// Event with the same reason into the first one's series and keeps the
/// first text, while each of ours says something new (callers skip
/// unchanged ones themselves).
pub async fn record(
    client: &Client,
    metrics: &Metrics,
    event: &Event,
    regarding: &ObjectReference,
) -> bool {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "netpol-guard".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    match recorder.publish(event, regarding).await {
        Ok(()) => true,
        Err(e) => {
            metrics.inc(
                "netpol_guard_event_failures_total",
                &[("reason", event.reason.as_str())],
            );
            tracing::warn!(
                reason = %event.reason,
                kind = regarding.kind.as_deref().unwrap_or(""),
                name = regarding.name.as_deref().unwrap_or(""),
                error = %crate::cluster::apierror::describe(&e),
                "cannot record an Event"
            );
            false
        }
    }
}

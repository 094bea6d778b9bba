//! Kubernetes Events netpol-guard records (InvalidConfig on its ConfigMap,
//! BaselineImpact on namespaces).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};

/// Records one Event. A fresh `Recorder` each time on purpose: a long-lived
/// one folds a later Event with the same reason into the first one's series
/// and keeps the first text, while each of ours says something new (callers
/// skip unchanged ones themselves).
pub async fn record(
    client: &Client,
    event: &Event,
    regarding: &ObjectReference,
) -> Result<(), kube::Error> {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "netpol-guard".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
    );
    recorder.publish(event, regarding).await
}

//! Leader election with a coordination.k8s.io/v1 Lease, as client-go does
//! it: the holder renews `renewTime` every `RENEW`; anyone may take a Lease
//! whose `renewTime` is older than its `leaseDurationSeconds`; every write is
//! an update conditioned on the `resourceVersion` read, so two replicas can
//! never both win (the loser gets 409 Conflict). Only the leader runs the
//! baseline generator's writes; every replica keeps serving admission.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// How long a Lease stays valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews, and others retry.
const RENEW: Duration = Duration::from_secs(2);

/// Leadership as seen by this replica.
#[derive(Clone)]
pub struct Leadership {
    leader: Arc<AtomicBool>,
    changes: watch::Receiver<bool>,
}

impl Leadership {
    /// A replica that is always the leader (tests, and single-writer setups).
    pub fn always() -> Self {
        let (_tx, rx) = watch::channel(true);
        Self {
            leader: Arc::new(AtomicBool::new(true)),
            changes: rx,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Notified whenever leadership is gained or lost.
    pub fn changes(&self) -> watch::Receiver<bool> {
        self.changes.clone()
    }
}

/// Runs the election for Lease `namespace/name` as `identity` in the background.
pub fn spawn(client: Client, namespace: &str, name: &str, identity: String) -> Leadership {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let leader = Arc::new(AtomicBool::new(false));
    let (tx, rx) = watch::channel(false);
    let flag = leader.clone();
    let name = name.to_string();
    tokio::spawn(async move {
        let mut last_renewal: Option<Instant> = None;
        loop {
            let held = match try_acquire_or_renew(&api, &name, &identity).await {
                Ok(held) => {
                    last_renewal = held.then(Instant::now);
                    held
                }
                Err(e) => {
                    tracing::warn!(lease = %name, error = %e, "lease update failed");
                    // Keep leading only while the Lease we last renewed is
                    // still valid (minus a renewal period of margin).
                    last_renewal.is_some_and(|t| t.elapsed() + RENEW < LEASE_DURATION)
                }
            };
            if held != flag.swap(held, Ordering::SeqCst) {
                tracing::info!(lease = %name, identity = %identity, leader = held, "leadership changed");
                let _ = tx.send(held);
            }
            tokio::time::sleep(RENEW).await;
        }
    });
    Leadership {
        leader,
        changes: rx,
    }
}

/// One round: true when this identity holds the Lease afterwards.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let duration_secs = i32::try_from(LEASE_DURATION.as_secs()).unwrap_or(15);
    let Some(mut lease) = api.get_opt(name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.to_string()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let valid_for = SignedDuration::from_secs(i64::from(
        spec.lease_duration_seconds.unwrap_or(duration_secs),
    ));
    let expired = spec
        .renew_time
        .as_ref()
        .is_none_or(|t| t.0.checked_add(valid_for).is_ok_and(|end| end < now));
    if holder != identity && !holder.is_empty() && !expired {
        return Ok(false);
    }
    if holder != identity {
        spec.holder_identity = Some(identity.to_string());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(MicroTime(now));
    spec.lease_duration_seconds = Some(duration_secs);
    // `replace` sends the resourceVersion we read: a concurrent writer wins
    // and we get 409.
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

//! Leader election with a coordination.k8s.io/v1 Lease, as client-go does
//! it. Only the leader runs the baseline generator's writes and the
//! background audit; every replica keeps serving admission.
//!
//! Three rules keep two replicas from ever acting as leader at once, even
//! when one is paused (SIGSTOP, a long GC-like stall) or its API calls hang:
//! - **Leadership is a local deadline, not a flag.** A replica leads until
//!   `LEASE_DURATION - MARGIN` after it *sent* its last successful renewal,
//!   measured on its own monotonic clock. When renewals stop succeeding
//!   (hung, refused, or the process was stopped), `is_leader()` turns false
//!   by itself, before any other replica may take over.
//! - **Expiry is judged by observation**, never by comparing another node's
//!   `renewTime` with the local clock: a follower notes when it last saw the
//!   Lease change (its resourceVersion) and takes over only after
//!   `leaseDurationSeconds` of seeing no change. Clock skew cannot shorten it.
//! - **Every write is conditioned on the resourceVersion read**, so of two
//!   replicas racing for an expired Lease one gets 409 Conflict. Every call
//!   has a deadline (`CALL_TIMEOUT`).
//!
//! On shutdown the leader releases the Lease (holder emptied, as client-go's
//! `ReleaseOnCancel`), so another replica leads within one retry period.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::{mpsc, oneshot, watch};

use crate::logging::lock_ignoring_poison;

/// How long a Lease stays valid without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews.
const RENEW: Duration = Duration::from_secs(2);
/// How often a follower looks at the Lease (takeover comes at most this
/// long after the Lease expired).
const RETRY: Duration = Duration::from_secs(1);
/// The longest one Lease call may take; a hung call is abandoned.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// A leader stops acting this long before its Lease could be taken over.
const MARGIN: Duration = Duration::from_secs(2);

/// Leadership as seen by this replica. Cheap to clone; `is_leader()` is
/// exact at the moment it is called.
#[derive(Clone)]
pub struct Leadership {
    /// Leading until this instant (`None`: not leading).
    until: Option<Arc<Mutex<Option<Instant>>>>,
    changes: watch::Receiver<bool>,
}

impl Leadership {
    /// A replica that is always the leader (tests, and single-writer setups).
    pub fn always() -> Self {
        let (_tx, rx) = watch::channel(true);
        Self {
            until: None,
            changes: rx,
        }
    }

    pub fn is_leader(&self) -> bool {
        let Some(until) = &self.until else {
            return true;
        };
        let guard = lock_ignoring_poison(until);
        guard.is_some_and(|t| Instant::now() < t)
    }

    /// Notified whenever leadership is gained or lost (lost also when the
    /// deadline passes without a renewal, within one `CALL_TIMEOUT`).
    pub fn changes(&self) -> watch::Receiver<bool> {
        self.changes.clone()
    }

    /// When leadership ends unless renewed (`None`: not leading, or always).
    fn until(&self) -> Option<Instant> {
        let until = self.until.as_ref()?;
        let guard = lock_ignoring_poison(until);
        *guard
    }

    fn set_until(&self, value: Option<Instant>) {
        if let Some(until) = &self.until {
            let mut guard = lock_ignoring_poison(until);
            *guard = value;
        }
    }
}

/// A running election: its leadership, and the way to give the Lease up.
pub struct Election {
    leadership: Leadership,
    release: mpsc::Sender<oneshot::Sender<()>>,
}

impl Election {
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Stops leading at once and, if this replica holds the Lease, empties
    /// its holder so another replica takes over without waiting for expiry.
    /// Bounded by one `CALL_TIMEOUT`.
    pub async fn release(&self) {
        self.leadership.set_until(None);
        let (tx, rx) = oneshot::channel();
        if self.release.send(tx).await.is_ok() {
            let _ = tokio::time::timeout(CALL_TIMEOUT + RETRY, rx).await;
        }
    }
}

/// What a follower last saw of the Lease, and when (local monotonic time).
struct Observed {
    resource_version: String,
    at: Instant,
}

/// Runs the election for Lease `namespace/name` as `identity` in the background.
pub fn spawn(client: Client, namespace: &str, name: &str, identity: String) -> Election {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let (tx, rx) = watch::channel(false);
    let leadership = Leadership {
        until: Some(Arc::new(Mutex::new(None))),
        changes: rx,
    };
    let (release_tx, mut release_rx) = mpsc::channel::<oneshot::Sender<()>>(1);
    let name = name.to_string();
    let this = leadership.clone();
    tokio::spawn(async move {
        let mut observed: Option<Observed> = None;
        let mut was_leader = false;
        // Announces a change of `is_leader()` (gained, or run out).
        let announce = |this: &Leadership, was_leader: &mut bool| {
            let leader = this.is_leader();
            if leader != *was_leader {
                tracing::info!(lease = %name, identity = %identity, leader, "leadership changed");
                let _ = tx.send(leader);
                *was_leader = leader;
            }
            leader
        };
        loop {
            // The sleep may have ended at the deadline: say so before the
            // next call, which may hang.
            announce(&this, &mut was_leader);
            let sent = Instant::now();
            // A hung call is abandoned at its deadline, or when leadership
            // runs out, whichever comes first, so the loss is announced on time.
            let budget = match this.until() {
                Some(until) if until > sent => CALL_TIMEOUT.min(until - sent),
                _ => CALL_TIMEOUT,
            };
            let round = tokio::time::timeout(
                budget,
                try_acquire_or_renew(&api, &name, &identity, &mut observed),
            )
            .await;
            match round {
                Ok(Ok(true)) => this.set_until(Some(sent + LEASE_DURATION - MARGIN)),
                Ok(Ok(false)) => this.set_until(None),
                // Leadership, if any, runs out by itself at its deadline.
                Ok(Err(e)) => {
                    tracing::warn!(lease = %name, error = %crate::cluster::apierror::describe(&e), "lease update failed")
                }
                Err(_) => {
                    tracing::warn!(lease = %name, timeout_ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX), "lease update timed out")
                }
            }
            let leader = announce(&this, &mut was_leader);
            let now = Instant::now();
            let wait = match this.until() {
                Some(until) if leader => RENEW.min(until.saturating_duration_since(now)),
                _ => RETRY,
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                done = release_rx.recv() => {
                    this.set_until(None);
                    if was_leader {
                        let _ = tx.send(false);
                    }
                    match tokio::time::timeout(CALL_TIMEOUT, release(&api, &name, &identity)).await {
                        Ok(Ok(true)) => tracing::info!(lease = %name, identity = %identity, "lease released"),
                        Ok(Ok(false)) => {}
                        Ok(Err(e)) => tracing::warn!(lease = %name, error = %crate::cluster::apierror::describe(&e), "cannot release the lease; it expires by itself"),
                        Err(_) => tracing::warn!(lease = %name, "lease release timed out; it expires by itself"),
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
    });
    Election {
        leadership,
        release: release_tx,
    }
}

/// One round: true when this identity holds the Lease afterwards.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
    observed: &mut Option<Observed>,
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
    let rv = lease.metadata.resource_version.clone().unwrap_or_default();
    let seen_at = match observed {
        Some(o) if o.resource_version == rv => o.at,
        _ => {
            let at = Instant::now();
            *observed = Some(Observed {
                resource_version: rv,
                at,
            });
            at
        }
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let valid_for = Duration::from_secs(
        u64::try_from(spec.lease_duration_seconds.unwrap_or(duration_secs)).unwrap_or(15),
    );
    if holder != identity && !holder.is_empty() && seen_at.elapsed() < valid_for {
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

/// Empties the Lease's holder if this identity holds it (true when it did).
async fn release(api: &Api<Lease>, name: &str, identity: &str) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(identity) {
        return Ok(false);
    }
    let now = Timestamp::now();
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(now));
    spec.acquire_time = Some(MicroTime(now));
    match api.replace(name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

//! What every request shares: the settings and view stores, the limits on
//! admission work and buffered bodies, the live reader, and the metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::ClusterView;
use crate::cluster::live::LiveReader;
use crate::cluster::store::{ViewStore, ViewWriter};
use crate::config::Settings;
use crate::config::store::SettingsStore;
use crate::logging::lock_ignoring_poison;
use crate::metrics::Metrics;
use crate::webhook::tls::CertStore;

/// Default of `serve --max-in-flight`: admission requests judged at once.
/// Judging takes microseconds against the cache, so this many in flight
/// means requests are piling up behind live re-reads of a slow API server;
/// queueing more would only turn fast answers into webhook timeouts.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

/// Default of `serve --max-body-buffer`: 16 bodies of the 4 MiB
/// `maxBodyBytes`, well inside the Deployment's 256Mi limit.
pub const DEFAULT_MAX_BODY_BUFFER: usize = 64 << 20;

/// State shared by every request. The view and settings are swapped whole
/// (cluster watches, config reload); a request clones the `Arc` it needs and
/// never holds a lock across work.
pub struct AppState {
    pub(super) settings: SettingsStore,
    pub(super) view: ViewStore,
    /// The view's writer until the watches (or `--state` loading) take it.
    pub(super) view_writer: std::sync::Mutex<Option<ViewWriter>>,
    /// Live reads for read-after-write safety (absent with `--state`).
    pub(super) live: std::sync::OnceLock<LiveReader>,
    /// The serving certificate, for its expiry metric.
    pub(super) certs: std::sync::OnceLock<Arc<CertStore>>,
    /// Admission requests being judged now, and the most allowed at once.
    pub(super) in_flight: AtomicUsize,
    pub(super) max_in_flight: AtomicUsize,
    /// How long a request body may take to arrive once its headers have.
    pub(super) body_read_timeout_ms: AtomicU64,
    /// Unix second of the last "shedding" warning (logged once a second).
    pub(super) last_shed_warning: AtomicU64,
    /// Unix second of the last "rejected request body" warning, and the
    /// rejections not logged since (logged once a second).
    pub(super) last_reject_warning: AtomicU64,
    pub(super) unlogged_rejects: AtomicU64,
    /// Request bodies being buffered now, within `--max-body-buffer`.
    pub(super) bodies: BodyBudget,
    pub metrics: Arc<Metrics>,
}

/// The global budget for buffered request bodies. A body reserves room for
/// its announced length before a byte is read. When the budget is full, the
/// reads that have been going on longest (at least `EVICT_AFTER`) are cut to
/// make room for a body of ordinary size (`EVICTING_MAX`): the API server
/// sends a body in one go, so a read that is still waiting for bytes after
/// that long is a slow or malicious client, and it must not keep
/// well-formed requests out.
pub(super) struct BodyBudget {
    pub(super) max: AtomicUsize,
    pub(super) state: std::sync::Mutex<BodyReads>,
    /// Signalled whenever room is given back.
    pub(super) freed: tokio::sync::Notify,
}

#[derive(Default)]
pub(super) struct BodyReads {
    pub(super) used: usize,
    pub(super) next_id: u64,
    /// Bodies of ordinary size (`EVICTING_MAX`) waiting for room. While one
    /// waits, a large body takes no room that is given back: else a crowd of
    /// clients announcing large bodies would take each freed slot before the
    /// well-formed request that had older reads cut for it.
    pub(super) ordinary_waiting: usize,
    /// Reads in progress, oldest first: when each started, its size, and
    /// how to cut it (taken once it was told to stop).
    reads:
        std::collections::BTreeMap<u64, (Instant, usize, Option<tokio::sync::oneshot::Sender<()>>)>,
}

/// A read younger than this is never cut to make room.
pub(super) const EVICT_AFTER: Duration = Duration::from_millis(500);
/// Only a body up to this size may have older reads cut for it. The API
/// server's AdmissionReviews are tens of KB; large bodies waiting for room
/// never cut each other, or a crowd of slow large bodies would take turns
/// holding the budget while a well-formed request waited behind them.
pub(super) const EVICTING_MAX: usize = 1 << 20;
/// How long a request waits for room beyond `EVICT_AFTER` (the reads it
/// cut must end and give their room back).
pub(super) const ROOM_WAIT: Duration = Duration::from_millis(500);

/// Room for one request body in the budget; given back when dropped (after
/// the body is parsed).
pub(super) struct BodyReservation<'a> {
    pub(super) budget: &'a BodyBudget,
    pub(super) id: u64,
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
    pub(super) fn new(max: usize) -> Self {
        Self {
            max: AtomicUsize::new(max),
            state: std::sync::Mutex::new(BodyReads::default()),
            freed: tokio::sync::Notify::new(),
        }
    }

    /// Room for `bytes`, cutting reads older than `EVICT_AFTER` if needed;
    /// `None` when there is none to be had. The receiver fires if this read
    /// is cut later.
    pub(super) async fn reserve(
        &self,
        bytes: usize,
    ) -> Option<(BodyReservation<'_>, tokio::sync::oneshot::Receiver<()>)> {
        let deadline = tokio::time::Instant::now() + EVICT_AFTER + ROOM_WAIT;
        let ordinary = bytes <= EVICTING_MAX;
        let mut waiting = WaitingGuard {
            budget: self,
            counted: false,
        };
        loop {
            let freed = self.freed.notified();
            // When to look again if nothing can be cut yet (`None`: reads
            // were cut, wait for their room).
            let ripe = {
                let mut s = lock_ignoring_poison(&self.state);
                let max = self.max.load(Ordering::SeqCst);
                let yields = !ordinary && s.ordinary_waiting > 0;
                if s.used + bytes <= max && !yields {
                    if waiting.counted {
                        s.ordinary_waiting -= 1;
                        waiting.counted = false;
                    }
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let id = s.next_id;
                    s.next_id += 1;
                    s.used += bytes;
                    s.reads.insert(id, (Instant::now(), bytes, Some(tx)));
                    return Some((BodyReservation { budget: self, id }, rx));
                }
                if bytes > max || yields {
                    return None;
                }
                if ordinary && !waiting.counted {
                    s.ordinary_waiting += 1;
                    waiting.counted = true;
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

/// Counts a body of ordinary size as waiting for room until it gets room
/// or gives up.
struct WaitingGuard<'a> {
    budget: &'a BodyBudget,
    counted: bool,
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        if self.counted {
            lock_ignoring_poison(&self.budget.state).ordinary_waiting -= 1;
        }
    }
}

/// One admission request being judged; frees its slot when dropped.
pub(super) struct InFlight<'a>(pub(super) &'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AppState {
    pub fn new(settings: Settings, view: ClusterView) -> Arc<Self> {
        let (view_writer, view_store) = crate::cluster::store::store(view);
        Arc::new(Self {
            settings: SettingsStore::new(settings),
            view: view_store,
            view_writer: std::sync::Mutex::new(Some(view_writer)),
            live: std::sync::OnceLock::new(),
            certs: std::sync::OnceLock::new(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(DEFAULT_MAX_IN_FLIGHT),
            body_read_timeout_ms: AtomicU64::new(30_000),
            last_shed_warning: AtomicU64::new(0),
            last_reject_warning: AtomicU64::new(0),
            unlogged_rejects: AtomicU64::new(0),
            bodies: BodyBudget::new(DEFAULT_MAX_BODY_BUFFER),
            metrics: Arc::new(Metrics::new()),
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

    pub(super) fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms.load(Ordering::SeqCst))
    }

    /// A slot to judge one request, or `None` when `max_in_flight` are taken.
    pub(super) fn try_admit(&self) -> Option<InFlight<'_>> {
        let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
        let slot = InFlight(&self.in_flight);
        (before < self.max_in_flight.load(Ordering::SeqCst)).then_some(slot)
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.get()
    }

    pub fn view(&self) -> Arc<ClusterView> {
        self.view.view()
    }

    /// The settings, for the config reload, the generator and the reporter.
    pub fn settings_store(&self) -> SettingsStore {
        self.settings.clone()
    }

    /// The view, for the generator's reads.
    pub fn view_store(&self) -> ViewStore {
        self.view.clone()
    }

    /// The view's one writer, for the live watches or `--state` loading;
    /// `None` once taken.
    pub fn take_view_writer(&self) -> Option<ViewWriter> {
        lock_ignoring_poison(&self.view_writer).take()
    }

    /// Replaces the settings; the next request uses them.
    pub fn set_settings(&self, settings: Settings) {
        self.settings.set(settings);
    }

    /// Marks config and cluster view as loaded (offline `--state` mode).
    pub fn set_ready(&self, ready: bool) {
        self.settings.set_ready(ready);
        if ready && let Some(writer) = self.take_view_writer() {
            writer.set_ready();
        }
    }

    pub fn config_ready(&self) -> bool {
        self.settings.ready()
    }

    pub fn view_ready(&self) -> bool {
        self.view.ready()
    }

    /// `/readyz`: config loaded and the cluster view synced.
    pub fn ready(&self) -> bool {
        self.config_ready() && self.view_ready()
    }

    /// The serving certificate, for its expiry metric.
    pub fn set_cert_store(&self, store: Arc<CertStore>) {
        let _ = self.certs.set(store);
    }

    /// Enables live re-reads before require-network-policy denials.
    pub fn set_live_reader(&self, reader: LiveReader) {
        let _ = self.live.set(reader);
    }
}

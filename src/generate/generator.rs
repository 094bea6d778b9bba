//! The baseline reconciler: keeps `baseline::desired` in every managed
//! namespace (server-side apply, field manager `netpol-guard`), restores an
//! edited or deleted baseline policy within seconds (it watches the generated
//! policies, not only namespaces), removes the baseline when a namespace stops
//! being managed (`baseline.onUnmanage`), re-applies everything when the
//! config changes, and resyncs every namespace periodically.
//!
//! Names are fixed (the two built-ins, and `netpol-guard-<name>` for each
//! `baseline.extraPolicies` entry), so restarts never create duplicates, and
//! only the replica holding the Lease (`leader`) writes. An extra policy
//! removed from the config, or renamed, is deleted from every managed
//! namespace (found by the managed-by label, proven by `baseline::is_ours`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::baseline::{self, MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::cluster::KnownWorkload;
use crate::cluster::store::ViewStore;
use crate::config::store::SettingsStore;
use crate::config::{Mode, OnUnmanage};
use crate::generate::generated::Generated;
use crate::generate::leader::Leadership;
use crate::metrics::Metrics;
use crate::rules::coverage;
use crate::workload::WorkloadKind;

/// Every namespace is reconciled again this often, whatever happens.
const RESYNC: Duration = Duration::from_secs(300);
/// How long a reconcile waits for the generated policies' first list.
const SYNC_WAIT: Duration = Duration::from_secs(10);
/// A failed reconcile is retried after this long.
const RETRY: Duration = Duration::from_secs(1);
/// The longest wait between retries of a failing namespace.
const RETRY_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{what}: {}", crate::cluster::apierror::describe(.source))]
    Api { what: String, source: kube::Error },
    #[error("cannot build NetworkPolicy {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error(
        "NetworkPolicy {what} is still not exactly the baseline after it was replaced (another writer?)"
    )]
    NotTakenOver { what: String },
    #[error(
        "the watch of the generated NetworkPolicies has not listed them yet (can netpol-guard list and watch networkpolicies? see manifests/rbac.yaml)"
    )]
    NotSynced,
}

/// What the reconciler reads and reports with: the settings and the view
/// it shares with the webhook, and the metrics.
pub struct Shared {
    pub settings: SettingsStore,
    pub view: ViewStore,
    pub metrics: Arc<Metrics>,
}

struct Ctx {
    client: Client,
    settings: SettingsStore,
    view: ViewStore,
    metrics: Arc<Metrics>,
    leadership: Leadership,
    /// The generated policies, from their watch: what a reconcile reads
    /// instead of asking the API server.
    generated: Arc<Generated>,
    /// The last impact report sent per namespace, so a resync does not
    /// repeat an unchanged Event.
    reported: Mutex<HashMap<String, String>>,
    /// Consecutive failures per namespace, and when it may be tried again
    /// (its own writes trigger watch events; without this gate a failing
    /// reconcile would run again at once, in a hot loop).
    failures: Mutex<HashMap<String, (u32, std::time::Instant)>>,
}

impl Ctx {
    /// Forgets what was reported for a namespace that is going away or no
    /// longer managed: its last impact report and its gauge series.
    fn forget(&self, namespace: &str) {
        if let Ok(mut m) = self.reported.lock() {
            m.remove(namespace);
        }
        self.metrics.forget_uncovered(namespace);
    }

    /// Forgets every namespace the view no longer holds (deleted while
    /// this replica was not looking, e.g. while another one led).
    fn forget_gone(&self) {
        let view = self.view.view();
        let gone: Vec<String> = match self.reported.lock() {
            Ok(m) => m
                .keys()
                .filter(|ns| view.namespace_labels(ns).is_none())
                .cloned()
                .collect(),
            Err(_) => return,
        };
        for ns in gone {
            self.forget(&ns);
        }
    }
}

/// Runs the reconciler until the process ends. It writes only while this
/// replica is the leader; becoming leader reconciles every namespace.
pub fn spawn(client: Client, shared: Shared, leadership: Leadership) {
    let Shared {
        settings,
        view,
        metrics,
    } = shared;
    // Every replica warns at start-up (and on config changes) when RBAC
    // would refuse a configured extra policy's writes.
    crate::generate::access::spawn(client.clone(), settings.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let policies: Api<NetworkPolicy> = Api::all(client.clone());
    let generated =
        watcher::Config::default().labels(&format!("{MANAGED_BY_KEY}={MANAGED_BY_VALUE}"));
    let config_changes = futures::stream::unfold(settings.changes(), |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    let became_leader = futures::stream::unfold(leadership.changes(), |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    });
    let triggers = futures::stream::select(config_changes, became_leader);
    let generated_index = Arc::new(Generated::default());
    let ctx = Arc::new(Ctx {
        client,
        settings,
        view,
        metrics,
        leadership,
        generated: generated_index.clone(),
        reported: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
    });
    // The generated policies' watch feeds the index first, then triggers
    // the namespace's reconcile: the reconcile sees the change.
    let generated_changes = watcher(policies, generated)
        .default_backoff()
        .inspect(move |event| {
            if let Ok(event) = event {
                generated_index.observe(event);
            }
        })
        .touched_objects();
    tokio::spawn(async move {
        // Reconciling on the built-in defaults before the ConfigMap is read
        // could, say, create a default-deny the config puts in audit mode;
        // and the impact report needs the synced cluster view.
        while !(ctx.settings.ready() && ctx.view.ready()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Controller::new(namespaces, watcher::Config::default())
            .with_config(controller::Config::default().concurrency(RECONCILE_CONCURRENCY))
            .watches_stream(generated_changes, |np| {
                np.metadata
                    .namespace
                    .map(|ns| ObjectRef::<Namespace>::new(&ns))
            })
            .reconcile_all_on(triggers)
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {})
            .await;
    });
}

/// Namespaces reconciled at once. Unbounded, a burst of 2,000 newly managed
/// namespaces put thousands of requests in flight at once: the API server
/// queued them with the Lease renewals behind them (same priority level, the
/// same ServiceAccount), renewals timed out and leadership flapped, and
/// every change of leader reconciled everything again.
const RECONCILE_CONCURRENCY: u16 = 16;

/// Consecutive failures after which a namespace's reconcile is reported
/// loudly: a Warning Event, an ERROR line, the failing-namespaces gauge.
const LOUD_AFTER: u32 = 3;

/// Retries a failed namespace with exponential backoff (1 s, 2 s, 4 s, ...
/// up to a minute), reset by its next success. A reconcile that keeps
/// failing is loud: from the third failure in a row it logs at ERROR, counts
/// the namespace in `netpol_guard_reconcile_failing_namespaces`, and records
/// a `BaselineReconcileFailed` Warning Event on the namespace (again every
/// tenth failure), since a namespace without its baseline is open.
fn error_policy(ns: Arc<Namespace>, e: &GenerateError, ctx: Arc<Ctx>) -> Action {
    ctx.metrics
        .inc("netpol_guard_reconcile_total", &[("result", "error")]);
    let name = ns.name_any();
    let (failures, failing, delay) = match ctx.failures.lock() {
        Ok(mut m) => {
            let entry = m
                .entry(name.clone())
                .or_insert((0, std::time::Instant::now()));
            entry.0 += 1;
            let n = entry.0;
            let delay = RETRY
                .saturating_mul(1 << n.saturating_sub(1).min(6))
                .min(RETRY_MAX);
            entry.1 = std::time::Instant::now() + delay;
            (n, m.values().filter(|f| f.0 >= LOUD_AFTER).count(), delay)
        }
        Err(_) => (1, 0, RETRY),
    };
    ctx.metrics.set_reconcile_failing(failing);
    if failures < LOUD_AFTER {
        tracing::warn!(namespace = %name, error = %e, retry_in = ?delay, failures, "baseline reconcile failed");
        return Action::requeue(delay);
    }
    tracing::error!(namespace = %name, error = %e, retry_in = ?delay, failures,
        "baseline reconcile keeps failing: this namespace may be missing its baseline");
    if failures == LOUD_AFTER || failures % 10 == 0 {
        let event = Event {
            type_: EventType::Warning,
            reason: "BaselineReconcileFailed".into(),
            note: Some(crate::text::truncate_chars(
                &format!(
                    "netpol-guard failed {failures} times in a row to keep this namespace's baseline; it may be missing or not as configured. Last error: {e}"
                ),
                1000,
            )),
            action: "Reconcile".into(),
            secondary: None,
        };
        let client = ctx.client.clone();
        let reference = ns.object_ref(&());
        let ctx = ctx.clone();
        tokio::spawn(async move {
            crate::cluster::events::record(&client, &ctx.metrics, &event, &reference).await;
        });
    }
    Action::requeue(delay)
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, GenerateError> {
    let started = std::time::Instant::now();
    // A failing namespace waits out its backoff, whatever triggered this.
    let wait = ctx.failures.lock().ok().and_then(|m| {
        m.get(&ns.name_any())
            .map(|f| f.1.saturating_duration_since(started))
            .filter(|d| !d.is_zero())
    });
    if let Some(wait) = wait {
        return Ok(Action::requeue(wait));
    }
    let result = reconcile_namespace(&ns, &ctx).await;
    if result.is_ok()
        && let Ok(mut m) = ctx.failures.lock()
    {
        m.remove(&ns.name_any());
        let failing = m.values().filter(|f| f.0 >= LOUD_AFTER).count();
        ctx.metrics.set_reconcile_failing(failing);
    }
    ctx.metrics.reconcile_took(started.elapsed());
    result
}

/// What a write of a baseline policy was, for metrics, logs and Events.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    /// It did not exist.
    Created,
    /// Ours, but changed (an edit, or a config change).
    Restored,
    /// An object with the reserved name that netpol-guard did not write (a
    /// squatter, e.g. created while the namespace was unmanaged).
    TakenOver,
}

impl Write {
    fn as_str(self) -> &'static str {
        match self {
            Write::Created => "created",
            Write::Restored => "restored",
            Write::TakenOver => "taken_over",
        }
    }
}

async fn reconcile_namespace(ns: &Namespace, ctx: &Ctx) -> Result<Action, GenerateError> {
    let name = ns.name_any();
    if !ctx.leadership.is_leader() {
        // Another replica reconciles; gaining leadership reconciles all.
        return Ok(Action::requeue(RESYNC));
    }
    if ns.metadata.deletion_timestamp.is_some() {
        ctx.forget(&name);
        return Ok(Action::await_change());
    }
    ctx.forget_gone();
    let settings = ctx.settings.get();
    let labels = ns.labels();
    let managed = settings.manages(&name, labels);
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &name);
    if !ctx.generated.wait_synced(SYNC_WAIT).await {
        return Err(GenerateError::NotSynced);
    }
    if managed {
        let mode = settings.mode_for(Some(labels));
        let desired = baseline::desired(&name, &settings, mode);
        let mut writes = Vec::new();
        let written = write_baseline(ctx, &api, &name, &desired, mode, &mut writes).await;
        // Reported whatever came next: a retry finds these in place and
        // would not report them again.
        report_writes(ctx, ns, &writes).await;
        if !written? {
            return Ok(Action::requeue(RESYNC));
        }
        // What this mode does not want goes: in audit mode, everything
        // (a policy that selects pods would enforce); an extra policy
        // removed from the config, or renamed, in any mode.
        for policy in ours_in(ctx, &name) {
            let wanted = desired.iter().any(|d| {
                d.pointer("/metadata/name").and_then(Value::as_str) == Some(policy.as_str())
            });
            if !wanted {
                delete_ours(ctx, &api, &name, &policy).await?;
            }
        }
        report_impact(ctx, ns, mode).await?;
    } else {
        ctx.forget(&name);
        for policy in ours_in(ctx, &name) {
            match settings.config.baseline.on_unmanage {
                OnUnmanage::Delete => delete_ours(ctx, &api, &name, &policy).await?,
                OnUnmanage::Keep => release_ours(ctx, &api, &name, &policy).await?,
            }
        }
    }
    ctx.metrics
        .inc("netpol_guard_reconcile_total", &[("result", "ok")]);
    Ok(Action::requeue(RESYNC))
}

/// Makes every desired policy of namespace `name` exactly as desired,
/// recording each write in `writes`; false when leadership was lost
/// before a write.
async fn write_baseline<'d>(
    ctx: &Ctx,
    api: &Api<NetworkPolicy>,
    name: &str,
    desired: &'d [Value],
    mode: Mode,
    writes: &mut Vec<(Write, &'d str)>,
) -> Result<bool, GenerateError> {
    for want in desired {
        let policy = want
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let stored = ctx.generated.get(name, policy, Instant::now());
        let write = match &stored {
            None => Write::Created,
            Some(s) if baseline::exactly_as_desired(s, want) => continue,
            // Written by netpol-guard, then edited (another manager now
            // owns part of it): restored. Otherwise: a squatter's.
            Some(s) if baseline::carries_our_marks(s) => Write::Restored,
            Some(_) => Write::TakenOver,
        };
        if !ctx.leadership.is_leader() {
            return Ok(false);
        }
        let (write, written) = match &stored {
            // Not among the labelled policies the watch sees: absent, or an
            // object of someone else's without the label. The apply's
            // answer tells which.
            None => {
                let back = apply(api, name, policy, want).await?;
                if baseline::exactly_as_desired(&back, want) {
                    (write, back)
                } else {
                    (
                        Write::TakenOver,
                        take_over(api, name, policy, &back, want).await?,
                    )
                }
            }
            Some(s) => (write, take_over(api, name, policy, s, want).await?),
        };
        ctx.generated.wrote(name, policy, &written, Instant::now());
        ctx.metrics.inc(
            "netpol_guard_baseline_changes_total",
            &[("action", write.as_str())],
        );
        tracing::info!(namespace = %name, policy, action = write.as_str(), mode = mode.as_str(), "baseline policy written");
        writes.push((write, policy));
    }
    Ok(true)
}

/// Reports a reconcile's writes on the namespace: one Event per kind of
/// write, naming its policies (a new namespace gets one BaselineCreated
/// for its default-deny and DNS allow, not one each).
async fn report_writes(ctx: &Ctx, ns: &Namespace, writes: &[(Write, &str)]) {
    for kind in [Write::Created, Write::Restored, Write::TakenOver] {
        let names: Vec<&str> = writes
            .iter()
            .filter(|(w, _)| *w == kind)
            .map(|(_, p)| *p)
            .collect();
        if names.is_empty() {
            continue;
        }
        let (type_, reason, note) = write_event(kind, &names);
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(crate::text::truncate_chars(&note, 1000)),
            action: "Apply".into(),
            secondary: None,
        };
        crate::cluster::events::record(&ctx.client, &ctx.metrics, &event, &ns.object_ref(&()))
            .await;
    }
}

/// The Event for one kind of write of `names` (at least one).
fn write_event(kind: Write, names: &[&str]) -> (EventType, &'static str, String) {
    let list = names.join(", ");
    let one = names.len() == 1;
    let (policies, was) = if one {
        ("NetworkPolicy", "was")
    } else {
        ("NetworkPolicies", "were")
    };
    match kind {
        Write::Created => (
            EventType::Normal,
            "BaselineCreated",
            format!("netpol-guard created {policies} {list}"),
        ),
        Write::Restored => (
            EventType::Warning,
            "BaselineRestored",
            format!(
                "{policies} {list} {was} changed or removed; netpol-guard restored {}",
                if one {
                    "it (it is managed by netpol-guard)"
                } else {
                    "them (they are managed by netpol-guard)"
                }
            ),
        ),
        Write::TakenOver => (
            EventType::Warning,
            "BaselineTakenOver",
            format!(
                "{policies} {list} existed but netpol-guard had not written {} (the name is reserved for the baseline of a managed namespace); netpol-guard replaced {} with the baseline",
                if one { "it" } else { "them" },
                if one { "it" } else { "them" }
            ),
        ),
    }
}

/// Creates (or keeps) a baseline policy by server-side apply, forced:
/// netpol-guard owns every field it sets. Returns the policy as stored.
async fn apply(
    api: &Api<NetworkPolicy>,
    ns: &str,
    policy: &str,
    want: &Value,
) -> Result<Value, GenerateError> {
    let stored = api
        .patch(
            policy,
            &PatchParams::apply(baseline::FIELD_MANAGER).force(),
            &Patch::Apply(want),
        )
        .await
        .map_err(|source| GenerateError::Api {
            what: with_rbac_hint(format!("apply {ns}/{policy}"), policy, &source),
            source,
        })?;
    serde_json::to_value(stored).map_err(|e| GenerateError::Invalid {
        what: format!("{ns}/{policy}"),
        reason: e.to_string(),
    })
}

/// A refused write of a baseline policy is most often a name missing from
/// the ClusterRole's `resourceNames` (an extra policy added to the config,
/// or removed from it but still in some namespace): say so.
fn with_rbac_hint(what: String, policy: &str, e: &kube::Error) -> String {
    if crate::cluster::apierror::status_code(e) == Some(403) {
        format!(
            "{what} (netpol-guard's ClusterRole must list {policy} in the resourceNames of its update/patch/delete \
             rule, see manifests/rbac.yaml; keep a removed extra policy's name there until it is gone from every namespace)"
        )
    } else {
        what
    }
}

/// Makes `stored` exactly `want`, whoever owned its fields. Server-side
/// apply alone cannot: it keeps fields another manager owns (a squatter's
/// `ingress: [{}]` would survive beside ours). So first an update (PUT)
/// conditioned on the resourceVersion just read, with the whole desired
/// object and netpol-guard as the only field manager, which removes every
/// foreign field and owner; then the forced apply, so netpol-guard owns
/// every field it sets; then a read back to verify, which is returned. The
/// policy is never deleted and re-created: in between, an enforced
/// namespace would have no default-deny.
async fn take_over(
    api: &Api<NetworkPolicy>,
    ns: &str,
    policy: &str,
    stored: &Value,
    want: &Value,
) -> Result<Value, GenerateError> {
    let mut body = want.clone();
    body["metadata"]["resourceVersion"] = stored
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    // managedFields sent with an update replace the stored ones: netpol-guard
    // alone, so no other manager keeps a share of any field. (A reset with
    // `[{}]` would not do: the next apply then records every existing field
    // under a synthetic "before-first-apply" manager.)
    body["metadata"]["managedFields"] = serde_json::json!([{
        "manager": baseline::FIELD_MANAGER,
        "operation": "Apply",
        "apiVersion": "networking.k8s.io/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {}},
    }]);
    let object: NetworkPolicy =
        serde_json::from_value(body).map_err(|e| GenerateError::Invalid {
            what: format!("{ns}/{policy}"),
            reason: e.to_string(),
        })?;
    let params = PostParams {
        field_manager: Some(baseline::FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    api.replace(policy, &params, &object)
        .await
        .map_err(|source| GenerateError::Api {
            what: with_rbac_hint(format!("replace {ns}/{policy}"), policy, &source),
            source,
        })?;
    apply(api, ns, policy, want).await?;
    match get(api, policy).await? {
        Some(back) if baseline::exactly_as_desired(&back, want) => Ok(back),
        _ => Err(GenerateError::NotTakenOver {
            what: format!("{ns}/{policy}"),
        }),
    }
}

/// The names of the policies in the namespace that netpol-guard wrote
/// (`baseline::is_ours`): the built-ins and the extra policies, configured
/// or not any more. Found by the managed-by label (the watch's selector):
/// an extra policy removed from the config has a name no setting
/// remembers.
fn ours_in(ctx: &Ctx, ns: &str) -> Vec<String> {
    let mut names: Vec<String> = ctx
        .generated
        .in_namespace(ns, Instant::now())
        .iter()
        .filter(|p| baseline::is_ours(p))
        .filter_map(|p| {
            p.pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    names.sort();
    names
}

async fn get(api: &Api<NetworkPolicy>, name: &str) -> Result<Option<Value>, GenerateError> {
    let found = api
        .get_opt(name)
        .await
        .map_err(|source| GenerateError::Api {
            what: format!("get {name}"),
            source,
        })?;
    Ok(found.and_then(|p| serde_json::to_value(p).ok()))
}

/// The existing workloads of `namespace` that no policy lets traffic
/// through to (judged like `require-network-policy`, against the live view),
/// e.g. `Deployment ledger`. Workloads judged at their owner (a
/// Deployment's ReplicaSets, a controller's Pods) are skipped: their owner
/// is listed. Read from the view's workload cache once its watches have
/// synced; until then listed from the API server.
async fn uncovered_workloads(
    ctx: &Ctx,
    namespace: &str,
) -> Result<(usize, Vec<String>), GenerateError> {
    let view = ctx.view.view();
    let settings = ctx.settings.get();
    let listed;
    let workloads = match view.workloads(namespace) {
        Some(known) => known,
        None => {
            listed = list_workloads(ctx, namespace).await?;
            listed.as_slice()
        }
    };
    let mut uncovered: Vec<&Arc<KnownWorkload>> = workloads
        .iter()
        .filter(|w| !coverage::is_covered(&coverage::Subject::of(w, namespace), &view, &settings))
        .collect();
    uncovered.sort_by(|a, b| a.report_order().cmp(&b.report_order()));
    Ok((
        workloads.len(),
        uncovered.iter().map(|w| w.label()).collect(),
    ))
}

/// Lists the workloads of `namespace` as the view would keep them. Pods
/// are read by their metadata alone (labels and owners are what this
/// needs; a pod's spec is most of its bytes).
async fn list_workloads(
    ctx: &Ctx,
    namespace: &str,
) -> Result<Vec<Arc<KnownWorkload>>, GenerateError> {
    let settings = ctx.settings.get();
    let mut out = Vec::new();
    for (kind, table) in crate::cluster::kinds::WORKLOAD_KINDS {
        let plural = table.plural;
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), namespace, &table.api_resource());
        let api_version = table.api_version();
        let items = list_pages(&api, kind == WorkloadKind::Pod).await;
        let items = match items {
            Ok(items) => items,
            // An old server, a missing API or an RBAC gap: report the rest.
            Err(e) if matches!(crate::cluster::apierror::status_code(&e), Some(403 | 404)) => {
                ctx.metrics
                    .inc("netpol_guard_list_skipped_total", &[("resource", plural)]);
                tracing::warn!(namespace, resource = plural, error = %crate::cluster::apierror::describe(&e),
                    "cannot list this kind; the impact report leaves it out");
                continue;
            }
            Err(source) => {
                return Err(GenerateError::Api {
                    what: format!("list {plural} in {namespace}"),
                    source,
                });
            }
        };
        for mut value in items {
            if let Some(map) = value.as_object_mut() {
                map.insert("apiVersion".into(), api_version.clone().into());
                map.insert("kind".into(), kind.as_str().into());
                // List items may come without their namespace.
                if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.entry("namespace").or_insert_with(|| namespace.into());
                }
            }
            if let Some((_, w)) =
                crate::cluster::known_workload(kind, &value, &settings.config.controller_kinds)
            {
                out.push(Arc::new(w));
            }
        }
    }
    Ok(out)
}

/// Every object `api` lists, a page of `LIST_PAGE` at a time; Pods by their
/// metadata alone.
async fn list_pages(
    api: &Api<DynamicObject>,
    metadata_only: bool,
) -> Result<Vec<Value>, kube::Error> {
    const LIST_PAGE: u32 = 500;
    let mut params = ListParams::default().limit(LIST_PAGE);
    let mut out = Vec::new();
    loop {
        let next = if metadata_only {
            let page = api.list_metadata(&params).await?;
            out.extend(
                page.items
                    .iter()
                    .filter_map(|p| serde_json::to_value(&p.metadata).ok())
                    .map(|meta| serde_json::json!({"metadata": meta, "spec": {}})),
            );
            page.metadata.continue_
        } else {
            let page = api.list(&params).await?;
            out.extend(
                page.items
                    .iter()
                    .filter_map(|o| serde_json::to_value(o).ok()),
            );
            page.metadata.continue_
        };
        match next.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// Reports which existing workloads default-deny isolates (enforce) or
/// would isolate (audit): an Event on the namespace, a log line and the
/// `netpol_guard_uncovered_workloads` gauge. An unchanged report is not
/// sent again, nor a first one for a namespace without workloads.
async fn report_impact(ctx: &Ctx, ns: &Namespace, mode: Mode) -> Result<(), GenerateError> {
    let name = ns.name_any();
    let (workloads, uncovered) = uncovered_workloads(ctx, &name).await?;
    ctx.metrics.set_uncovered(&name, uncovered.len());
    let note = impact_note(mode, &uncovered);
    let previous = match ctx.reported.lock() {
        Ok(mut m) => m.insert(name.clone(), note.clone()),
        Err(_) => None,
    };
    let changed = previous.as_deref() != Some(note.as_str());
    // A namespace without workloads has nothing isolated to report (its
    // BaselineCreated says default-deny is there), until it has had a
    // report: then "every workload has a policy" is news again. Without
    // this, every new namespace cost one more Event.
    let nothing_to_say = workloads == 0 && previous.is_none();
    if !changed || (uncovered.is_empty() && mode == Mode::Audit) || nothing_to_say {
        return Ok(());
    }
    tracing::info!(namespace = %name, mode = mode.as_str(), uncovered = ?uncovered, "baseline impact");
    let event = Event {
        type_: if uncovered.is_empty() {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: "BaselineImpact".into(),
        note: Some(note),
        // The action is part of the Events API's series key: a distinct one per mode
        // keeps the enforce report from being folded into the audit one.
        action: if mode == Mode::Audit {
            "Audit"
        } else {
            "Isolate"
        }
        .into(),
        secondary: None,
    };
    crate::cluster::events::record(&ctx.client, &ctx.metrics, &event, &ns.object_ref(&())).await;
    Ok(())
}

/// The Event text (at most 1 KiB, as the Events API allows).
fn impact_note(mode: Mode, uncovered: &[String]) -> String {
    let head = match (mode, uncovered.is_empty()) {
        (Mode::Enforce, true) => return "netpol-guard default-deny is in force; every existing workload has a NetworkPolicy".into(),
        (Mode::Enforce, false) => "netpol-guard default-deny now isolates these workloads (no NetworkPolicy lets their traffic through): ",
        (Mode::Audit, _) => "audit mode: once default-deny is enforced, these workloads would be isolated (no NetworkPolicy lets their traffic through): ",
    };
    let mut note = head.to_string();
    for (i, w) in uncovered.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        if note.len() + sep.len() + w.len() > 980 {
            note.push_str(&format!(" and {} more", uncovered.len() - i));
            break;
        }
        note.push_str(sep);
        note.push_str(w);
    }
    note
}

/// Whether policy `name` exists, netpol-guard wrote it, and this replica
/// still leads: the condition for deleting or releasing it.
async fn leader_and_ours(
    ctx: &Ctx,
    api: &Api<NetworkPolicy>,
    name: &str,
) -> Result<bool, GenerateError> {
    let stored = get(api, name).await?;
    Ok(ctx.leadership.is_leader() && stored.as_ref().is_some_and(baseline::is_ours))
}

/// Deletes a baseline policy if it exists and netpol-guard wrote it
/// (`baseline::is_ours`: a user's policy that happens to have the name, or
/// the label, is left alone).
async fn delete_ours(
    ctx: &Ctx,
    api: &Api<NetworkPolicy>,
    ns: &str,
    name: &str,
) -> Result<(), GenerateError> {
    if !leader_and_ours(ctx, api, name).await? {
        return Ok(());
    }
    let deleted = api.delete(name, &DeleteParams::default()).await.map(|_| ());
    if !found(deleted, |e| {
        with_rbac_hint(format!("delete {ns}/{name}"), name, e)
    })? {
        return Ok(());
    }
    ctx.metrics.inc(
        "netpol_guard_baseline_changes_total",
        &[("action", "deleted")],
    );
    tracing::info!(namespace = ns, policy = name, "baseline policy deleted");
    Ok(())
}

/// `onUnmanage: keep`: the kept policy becomes an ordinary one. Its
/// managed-by label and config-hash annotation go, so nothing treats it as
/// netpol-guard's any more (it is deletable, and judged for coverage).
async fn release_ours(
    ctx: &Ctx,
    api: &Api<NetworkPolicy>,
    ns: &str,
    name: &str,
) -> Result<(), GenerateError> {
    if !leader_and_ours(ctx, api, name).await? {
        return Ok(());
    }
    let patch = serde_json::json!({"metadata": {
        "labels": {MANAGED_BY_KEY: null},
        "annotations": {baseline::CONFIG_HASH_ANNOTATION: null}}});
    let params = PatchParams {
        field_manager: Some(baseline::FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    let patched = api
        .patch(name, &params, &Patch::Merge(&patch))
        .await
        .map(|_| ());
    if !found(patched, |e| {
        with_rbac_hint(format!("release {ns}/{name}"), name, e)
    })? {
        return Ok(());
    }
    ctx.metrics.inc(
        "netpol_guard_baseline_changes_total",
        &[("action", "released")],
    );
    tracing::info!(
        namespace = ns,
        policy = name,
        "baseline policy released (onUnmanage: keep): it is an ordinary policy now"
    );
    Ok(())
}

/// The outcome of a write to an object that may have gone meanwhile: true
/// when done, false when it no longer exists (404), the error otherwise.
fn found(
    result: Result<(), kube::Error>,
    what: impl FnOnce(&kube::Error) -> String,
) -> Result<bool, GenerateError> {
    match result {
        Ok(()) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(source) => Err(GenerateError::Api {
            what: what(&source),
            source,
        }),
    }
}

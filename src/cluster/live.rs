//! The live cluster view: watches of the API server (Namespaces' metadata,
//! NetworkPolicies, and the Cilium policy kinds when their CRDs exist) kept
//! in a model indexed per namespace, published to the server as an immutable
//! `ClusterView` after every batch of changes.
//!
//! Also the read-after-write re-read: `kubectl apply -f dir/` lands a policy
//! and its Deployment milliseconds apart, faster than a watch, so before a
//! `require-network-policy` denial the namespace is read live.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use crate::cluster::kinds::{self, ApiKind};
use crate::cluster::meta;
use crate::cluster::store::ViewWriter;
use crate::cluster::{
    ClusterView, CompiledPolicy, KnownWorkload, NamespaceMeta, PolicyKind, ViewError,
};
use crate::config::store::SettingsStore;
use crate::logging::lock_ignoring_poison;
use crate::metrics::Metrics;
use crate::workload::WorkloadKind;

/// The resources the view watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Namespaces,
    Policy(PolicyKind),
    Workloads(WorkloadKind),
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Workloads(kind) => kinds::workload(kind).plural,
            Resource::Namespaces => "namespaces",
            Resource::Policy(PolicyKind::NetworkPolicy) => "networkpolicies",
            Resource::Policy(PolicyKind::CiliumNetworkPolicy) => "ciliumnetworkpolicies",
            Resource::Policy(PolicyKind::CiliumClusterwideNetworkPolicy) => {
                "ciliumclusterwidenetworkpolicies"
            }
        }
    }
}

/// `ApiResource` of a policy kind, for a dynamic `Api`.
fn api_resource(kind: PolicyKind) -> ApiResource {
    kind.api().api_resource()
}

/// A watched object as JSON with `apiVersion` and `kind` set (list items
/// arrive without them), cut down to what judging reads
/// (`cluster::slim_policy`): the model keeps every policy of the cluster.
fn to_json(obj: &DynamicObject, kind: PolicyKind) -> Option<Value> {
    full_json(obj, kind).map(|v| crate::cluster::slim_policy(&v))
}

fn full_json(obj: &DynamicObject, kind: PolicyKind) -> Option<Value> {
    let mut v = serde_json::to_value(obj).ok()?;
    let map = v.as_object_mut()?;
    let api_version = kind.api().api_version();
    map.insert("apiVersion".into(), api_version.into());
    map.insert("kind".into(), kind.as_str().into());
    Some(v)
}

/// An object's key in its namespace: its kind, then its name.
type ObjectKey = (&'static str, String);

/// A policy as a watch hands it to the model. A namespaced one is compiled
/// as it arrives, and the model keeps only that (`CompiledPolicy`); a
/// cluster-wide one is kept whole, cut down (they are few, and compiled
/// together).
enum PolicyItem {
    Namespaced {
        namespace: String,
        name: String,
        /// An error is logged when the policy is applied, and the policy
        /// left out of the view (as `ClusterView::set_namespace` does).
        compiled: Result<CompiledPolicy, ViewError>,
    },
    Clusterwide {
        name: String,
        obj: Value,
    },
}

impl PolicyItem {
    /// `obj` with `apiVersion` and `kind` set; `None` without a name (or a
    /// namespace, for a namespaced kind).
    fn new(kind: PolicyKind, obj: Value) -> Option<Self> {
        let name = name(&obj)?;
        if kind == PolicyKind::CiliumClusterwideNetworkPolicy {
            let obj = crate::cluster::slim_policy(&obj);
            return Some(Self::Clusterwide { name, obj });
        }
        let namespace = namespace(&obj)?;
        let compiled = CompiledPolicy::of_kind(&obj, kind);
        Some(Self::Namespaced {
            namespace,
            name,
            compiled,
        })
    }
}

/// One change from a watch: a complete (re)list, or one object.
enum Change<T> {
    Replace(Vec<T>),
    Apply(T),
    Delete(T),
}

/// What handling a change did to the model: whether the view must be
/// published again, and whether a resource has now been listed.
enum Outcome {
    /// Nothing the view keeps changed (a pod's status, a resourceVersion).
    Unchanged,
    Changed,
    Synced(Resource),
}

/// A watched workload: namespace, name, and what the view keeps of it
/// (`None` when it is judged at its owner, or its pods cannot be read).
type WorkloadItem = (String, String, Option<Arc<KnownWorkload>>);

/// What the watches have seen, and the view built from it.
#[derive(Default)]
struct Model {
    namespaces: HashMap<String, NamespaceMeta>,
    /// Namespaced policies: namespace -> (kind, name) -> compiled policy.
    policies: HashMap<String, BTreeMap<ObjectKey, CompiledPolicy>>,
    clusterwide: BTreeMap<String, Value>,
    /// Existing workloads: namespace -> (kind, name) -> slim workload.
    workloads: HashMap<String, BTreeMap<ObjectKey, Arc<KnownWorkload>>>,
    view: ClusterView,
    synced: HashSet<Resource>,
}

/// Replaces every object of `kind` in a per-namespace map keyed by (kind,
/// name) with `items` (namespace, name, object), after a (re)list; returns
/// the namespaces whose objects changed. Objects deleted while the watch
/// was down go, and namespaces left empty are dropped.
fn replace_kind<V>(
    map: &mut HashMap<String, BTreeMap<ObjectKey, V>>,
    kind: &'static str,
    items: impl IntoIterator<Item = (String, String, V)>,
) -> HashSet<String> {
    let mut dirty = HashSet::new();
    for (ns, objects) in map.iter_mut() {
        let before = objects.len();
        objects.retain(|(k, _), _| *k != kind);
        if objects.len() != before {
            dirty.insert(ns.clone());
        }
    }
    for (ns, name, obj) in items {
        dirty.insert(ns.clone());
        map.entry(ns).or_default().insert((kind, name), obj);
    }
    map.retain(|_, objects| !objects.is_empty());
    dirty
}

impl Model {
    fn rebuild_namespace(&mut self, ns: &str) {
        let meta = self.namespaces.get(ns).cloned();
        let empty = BTreeMap::new();
        let policies = self.policies.get(ns).unwrap_or(&empty);
        self.view
            .set_namespace_compiled(ns, meta, policies.values());
    }

    fn rebuild_clusterwide(&mut self) {
        for e in self.view.set_clusterwide(self.clusterwide.values()) {
            tracing::warn!(error = %e, "policy ignored: it cannot be compiled");
        }
    }

    /// Replaces every object of a policy kind (after a (re)list).
    fn replace_policies(&mut self, kind: PolicyKind, items: Vec<PolicyItem>) {
        if kind == PolicyKind::CiliumClusterwideNetworkPolicy {
            self.clusterwide = items
                .into_iter()
                .filter_map(|item| match item {
                    PolicyItem::Clusterwide { name, obj } => Some((name, obj)),
                    PolicyItem::Namespaced { .. } => None,
                })
                .collect();
            self.rebuild_clusterwide();
            return;
        }
        let compiled = items.into_iter().filter_map(|item| match item {
            PolicyItem::Namespaced {
                namespace,
                name,
                compiled,
            } => Some((
                namespace.clone(),
                name.clone(),
                kept(&namespace, &name, compiled)?,
            )),
            PolicyItem::Clusterwide { .. } => None,
        });
        for ns in replace_kind(&mut self.policies, kind.as_str(), compiled) {
            self.rebuild_namespace(&ns);
        }
    }

    fn apply_policy(&mut self, kind: PolicyKind, item: PolicyItem) {
        match item {
            PolicyItem::Clusterwide { name, obj } => {
                self.clusterwide.insert(name, obj);
                self.rebuild_clusterwide();
            }
            PolicyItem::Namespaced {
                namespace,
                name,
                compiled,
            } => {
                // One that no longer compiles leaves the view, as it would
                // at a rebuild from objects.
                match kept(&namespace, &name, compiled) {
                    Some(c) => {
                        self.policies
                            .entry(namespace.clone())
                            .or_default()
                            .insert((kind.as_str(), name), c);
                    }
                    None => self.remove_policy(kind, &namespace, name),
                }
                self.rebuild_namespace(&namespace);
            }
        }
    }

    fn delete_policy(&mut self, kind: PolicyKind, item: PolicyItem) {
        match item {
            PolicyItem::Clusterwide { name, .. } => {
                self.clusterwide.remove(&name);
                self.rebuild_clusterwide();
            }
            PolicyItem::Namespaced {
                namespace, name, ..
            } => {
                self.remove_policy(kind, &namespace, name);
                self.rebuild_namespace(&namespace);
            }
        }
    }

    fn remove_policy(&mut self, kind: PolicyKind, ns: &str, name: String) {
        if let Some(m) = self.policies.get_mut(ns) {
            m.remove(&(kind.as_str(), name));
            if m.is_empty() {
                self.policies.remove(ns);
            }
        }
    }

    fn rebuild_workloads(&mut self, ns: &str) {
        let list = self
            .workloads
            .get(ns)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        self.view.set_workloads(ns, list);
    }

    /// Replaces every object of a workload kind (after a (re)list).
    fn replace_workloads(&mut self, kind: WorkloadKind, items: Vec<WorkloadItem>) {
        let kept = items
            .into_iter()
            .filter_map(|(ns, name, w)| Some((ns, name, w?)));
        for ns in replace_kind(&mut self.workloads, kind.as_str(), kept) {
            self.rebuild_workloads(&ns);
        }
    }

    /// One workload added, changed or gone; false when the view keeps the
    /// same as before (most pod events are status updates).
    fn set_workload(&mut self, kind: WorkloadKind, item: WorkloadItem) -> bool {
        let (ns, name, w) = item;
        let key = (kind.as_str(), name);
        let map = self.workloads.entry(ns.clone()).or_default();
        let changed = match w {
            Some(w) if map.get(&key) == Some(&w) => false,
            Some(w) => {
                map.insert(key, w);
                true
            }
            None => map.remove(&key).is_some(),
        };
        if map.is_empty() {
            self.workloads.remove(&ns);
        }
        if changed {
            self.rebuild_workloads(&ns);
        }
        changed
    }

    /// A change from the Namespace watch.
    fn namespace_change(&mut self, change: Change<(String, NamespaceMeta)>) -> Outcome {
        match change {
            Change::Replace(all) => {
                self.replace_namespaces(all.into_iter().collect());
                // A complete list: from now on the view knows every
                // namespace (a relist after a watch error replaces it
                // whole, and single changes keep it current).
                self.view.set_namespaces_complete(true);
                Outcome::Synced(Resource::Namespaces)
            }
            Change::Apply((name, meta)) => {
                self.namespaces.insert(name.clone(), meta);
                self.rebuild_namespace(&name);
                Outcome::Changed
            }
            Change::Delete((name, _)) => {
                self.namespaces.remove(&name);
                self.rebuild_namespace(&name);
                Outcome::Changed
            }
        }
    }

    /// A change from the watch of one policy kind; `required` kinds gate
    /// readiness.
    fn policy_change(
        &mut self,
        kind: PolicyKind,
        required: bool,
        change: Change<PolicyItem>,
    ) -> Outcome {
        match change {
            Change::Replace(all) => {
                self.replace_policies(kind, all);
                return if required {
                    Outcome::Synced(Resource::Policy(kind))
                } else {
                    Outcome::Changed
                };
            }
            Change::Apply(v) => self.apply_policy(kind, v),
            Change::Delete(v) => self.delete_policy(kind, v),
        }
        Outcome::Changed
    }

    /// A change from the watch of one workload kind.
    fn workload_change(&mut self, kind: WorkloadKind, change: Change<WorkloadItem>) -> Outcome {
        let changed = match change {
            Change::Replace(all) => {
                self.replace_workloads(kind, all);
                return Outcome::Synced(Resource::Workloads(kind));
            }
            Change::Apply(item) => self.set_workload(kind, item),
            Change::Delete((ns, name, _)) => self.set_workload(kind, (ns, name, None)),
        };
        if changed {
            Outcome::Changed
        } else {
            Outcome::Unchanged
        }
    }

    fn replace_namespaces(&mut self, all: HashMap<String, NamespaceMeta>) {
        let old: HashSet<String> = self.namespaces.keys().cloned().collect();
        self.namespaces = all;
        let dirty: HashSet<String> = old
            .into_iter()
            .chain(self.namespaces.keys().cloned())
            .collect();
        for ns in dirty {
            self.rebuild_namespace(&ns);
        }
    }
}

/// A compiled policy, or `None` after logging why it cannot be.
fn kept(
    namespace: &str,
    name: &str,
    compiled: Result<CompiledPolicy, ViewError>,
) -> Option<CompiledPolicy> {
    compiled
        .inspect_err(|e| {
            tracing::warn!(namespace, name, error = %e, "policy ignored: it cannot be compiled");
        })
        .ok()
}

fn name(o: &Value) -> Option<String> {
    meta::name(o).map(String::from)
}

fn namespace(o: &Value) -> Option<String> {
    meta::namespace(o).map(String::from)
}

/// Publishes the model's view (a clone of it: O(1), see `ClusterView`),
/// after recording that `synced` has been listed; marks the writer ready
/// once the required resources have been.
fn publish(writer: &ViewWriter, model: &mut Model, synced: Option<Resource>) {
    if let Some(r) = synced {
        model.synced.insert(r);
        let all_workloads = kinds::WORKLOAD_KINDS
            .iter()
            .all(|(k, _)| model.synced.contains(&Resource::Workloads(*k)));
        model.view.set_workloads_known(all_workloads);
    }
    writer.publish(Arc::new(model.view.clone()));
    let core = [
        Resource::Namespaces,
        Resource::Policy(PolicyKind::NetworkPolicy),
    ];
    if core.iter().all(|r| model.synced.contains(r)) && !writer.ready() {
        tracing::info!(
            namespaces = model.view.namespace_count(),
            policies = model.view.policy_count(),
            "cluster view synced from the API server"
        );
        writer.set_ready();
    }
}

/// Publishes what a change calls for.
fn settle(writer: &ViewWriter, model: &mut Model, outcome: Outcome) {
    match outcome {
        Outcome::Unchanged => {}
        Outcome::Changed => publish(writer, model, None),
        Outcome::Synced(r) => publish(writer, model, Some(r)),
    }
}

/// The watches' model and its publishing, fed the changes a watch would
/// hand over, without an API server: for `benches/live_view.rs` (the cost
/// of one watch event at 10,000 namespaces) and tests. Each call is one
/// watch event, handled and published exactly as `LiveView` does.
/// Not part of the interface.
#[doc(hidden)]
pub struct ModelDriver {
    model: Model,
    writer: ViewWriter,
}

impl ModelDriver {
    pub fn new(writer: ViewWriter) -> Self {
        Self {
            model: Model::default(),
            writer,
        }
    }

    fn handle(&mut self, f: impl FnOnce(&mut Model) -> Outcome) {
        let outcome = f(&mut self.model);
        settle(&self.writer, &mut self.model, outcome);
    }

    /// The Namespace watch (re)listed `all`.
    pub fn list_namespaces(&mut self, all: Vec<(String, NamespaceMeta)>) {
        self.handle(|m| m.namespace_change(Change::Replace(all)));
    }

    /// The watch of `kind` (re)listed `all` (NetworkPolicies gate
    /// readiness, the Cilium kinds do not, as in `LiveView::spawn`).
    pub fn list_policies(&mut self, kind: PolicyKind, all: Vec<Value>) {
        let required = kind == PolicyKind::NetworkPolicy;
        let items = all
            .into_iter()
            .filter_map(|o| PolicyItem::new(kind, o))
            .collect();
        self.handle(|m| m.policy_change(kind, required, Change::Replace(items)));
    }

    /// One policy added or changed (`obj` with `apiVersion` and `kind`).
    pub fn apply_policy(&mut self, kind: PolicyKind, obj: Value) {
        if let Some(item) = PolicyItem::new(kind, obj) {
            self.handle(|m| m.policy_change(kind, false, Change::Apply(item)));
        }
    }

    /// One policy deleted.
    pub fn delete_policy(&mut self, kind: PolicyKind, obj: Value) {
        if let Some(item) = PolicyItem::new(kind, obj) {
            self.handle(|m| m.policy_change(kind, false, Change::Delete(item)));
        }
    }

    /// The watch of workload `kind` (re)listed `all`: (namespace, name,
    /// what the view keeps, see `cluster::known_workload`).
    pub fn list_workloads(
        &mut self,
        kind: WorkloadKind,
        all: Vec<(String, String, Option<Arc<KnownWorkload>>)>,
    ) {
        self.handle(|m| m.workload_change(kind, Change::Replace(all)));
    }
}

/// Objects per page when a watch (re)lists policies or workloads, and in
/// a live read. A page is held whole, as JSON, before its objects are cut
/// down (`slim_policy`, `known_workload`): kube's default of 500 policies
/// with 250 KB annotations each is 125 MB in one response, and drill 8 saw
/// a fresh replica peak at 440 MiB syncing 800 of them (69 MiB after, peak
/// 121 MiB, with 50). Costs 200 requests to list 10,000 ordinary policies.
const LIST_PAGE: u32 = 50;

/// How often a missing Cilium CRD is looked for again (quietly).
const CRD_RECHECK: Duration = Duration::from_secs(60);

/// Runs the watches, publishing views through its `ViewWriter`, until the
/// process ends.
/// Marks the view ready once every watched resource has been listed.
pub struct LiveView {
    client: Client,
    writer: ViewWriter,
    settings: SettingsStore,
    metrics: Arc<Metrics>,
    model: Arc<Mutex<Model>>,
    /// Whether the CiliumNetworkPolicy CRD was found (for live re-reads).
    cilium: Arc<AtomicBool>,
}

impl LiveView {
    pub fn new(
        client: Client,
        writer: ViewWriter,
        settings: SettingsStore,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            writer,
            settings,
            metrics,
            model: Arc::default(),
            cilium: Arc::default(),
        }
    }

    /// A reader for read-after-write checks, sharing this view's CRD knowledge.
    pub fn reader(&self) -> LiveReader {
        LiveReader::new(self.client.clone(), self.cilium.clone())
    }

    /// Starts every watch as a background task.
    pub fn spawn(self) {
        let this = Arc::new(self);
        tokio::spawn(this.clone().watch_namespaces());
        tokio::spawn(this.clone().watch_policies(PolicyKind::NetworkPolicy, true));
        tokio::spawn(this.clone().watch_cilium(PolicyKind::CiliumNetworkPolicy));
        tokio::spawn(
            this.clone()
                .watch_cilium(PolicyKind::CiliumClusterwideNetworkPolicy),
        );
        for (kind, api) in kinds::WORKLOAD_KINDS {
            if kind == WorkloadKind::Pod {
                tokio::spawn(this.clone().watch_pods());
            } else {
                tokio::spawn(this.clone().watch_workloads(kind, api));
            }
        }
    }

    fn with_model(&self, f: impl FnOnce(&mut Model) -> Outcome) {
        let mut guard = lock_ignoring_poison(&self.model);
        let outcome = f(&mut guard);
        settle(&self.writer, &mut guard, outcome);
    }

    fn watch_error(&self, resource: Resource, e: &watcher::Error) {
        self.metrics.inc(
            "netpol_guard_watch_restarts_total",
            &[("resource", resource.as_str())],
        );
        tracing::warn!(resource = resource.as_str(), error = %crate::cluster::apierror::describe_watch(e), "watch failed; retrying with backoff");
    }

    /// Follows one watch stream: buffers a (re)list between `Init` and
    /// `InitDone` and hands it over whole (so objects deleted while the watch
    /// was down disappear), then hands over each change.
    async fn follow<K: kube::Resource, T>(
        &self,
        resource: Resource,
        mut stream: BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
        convert: impl Fn(K) -> Option<T>,
        mut handle: impl FnMut(&mut Model, Change<T>) -> Outcome,
    ) {
        let mut buffer: Option<Vec<T>> = None;
        while let Some(event) = stream.next().await {
            // The object an Apply event carries, for the DEBUG line below.
            let mut applied = None;
            let change = match event {
                Err(e) => {
                    self.watch_error(resource, &e);
                    continue;
                }
                Ok(watcher::Event::Init) => {
                    buffer = Some(Vec::new());
                    continue;
                }
                Ok(watcher::Event::InitApply(o)) => {
                    if let (Some(b), Some(t)) = (buffer.as_mut(), convert(o)) {
                        b.push(t);
                    }
                    continue;
                }
                Ok(watcher::Event::InitDone) => Change::Replace(buffer.take().unwrap_or_default()),
                Ok(watcher::Event::Apply(o)) => {
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        applied = Some((o.namespace().unwrap_or_default(), o.name_any()));
                    }
                    match convert(o) {
                        Some(t) => Change::Apply(t),
                        None => continue,
                    }
                }
                Ok(watcher::Event::Delete(o)) => match convert(o) {
                    Some(t) => Change::Delete(t),
                    None => continue,
                },
            };
            self.with_model(|m| handle(m, change));
            if let Some((namespace, name)) = applied {
                // The view now holds the object (published): its timestamp
                // minus the write's response is benches/apiserver's
                // event-to-view latency. Off unless this module logs at
                // debug (NETPOL_GUARD_LOG=info,netpol_guard::cluster::live=debug).
                tracing::debug!(
                    resource = resource.as_str(),
                    namespace,
                    name,
                    "watch event applied to the view"
                );
            }
        }
    }

    async fn watch_namespaces(self: Arc<Self>) {
        // Metadata only: labels and deletionTimestamp are all the view needs.
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(self.client.clone());
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let convert = namespace_meta;
        self.follow(Resource::Namespaces, stream, convert, |m, change| {
            m.namespace_change(change)
        })
        .await;
    }

    /// Watches one policy kind. `required` kinds gate readiness.
    async fn watch_policies(self: Arc<Self>, kind: PolicyKind, required: bool) {
        let resource = Resource::Policy(kind);
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &api_resource(kind));
        let stream = watcher(api, watcher::Config::default().page_size(LIST_PAGE))
            .default_backoff()
            .boxed();
        self.follow(
            resource,
            stream,
            |o| PolicyItem::new(kind, full_json(&o, kind)?),
            |m, change| m.policy_change(kind, required, change),
        )
        .await;
    }

    /// Watches one workload kind, keeping only what coverage reads of each
    /// object (`cluster::known_workload`): template labels, ports, service
    /// account, hostNetwork.
    async fn watch_workloads(self: Arc<Self>, kind: WorkloadKind, api: ApiKind) {
        let api_version = api.api_version();
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &api.api_resource());
        let stream = watcher(api, watcher::Config::default().page_size(LIST_PAGE))
            .default_backoff()
            .boxed();
        let settings = self.settings.clone();
        let convert = move |o: DynamicObject| {
            let mut v = serde_json::to_value(&o).ok()?;
            let map = v.as_object_mut()?;
            map.insert("apiVersion".into(), api_version.clone().into());
            map.insert("kind".into(), kind.as_str().into());
            workload_item(kind, &v, &settings)
        };
        self.follow_workloads(kind, stream, convert).await;
    }

    /// Watches Pods' metadata only: a bare Pod is judged by its labels and
    /// owners, and a pod's spec (most of its bytes) never crosses the wire.
    /// Its service account and hostNetwork are not read: the view takes
    /// the default account and the pod network for bare Pods.
    async fn watch_pods(self: Arc<Self>) {
        let api: Api<PartialObjectMeta<Pod>> = Api::all(self.client.clone());
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let settings = self.settings.clone();
        let convert = move |p: PartialObjectMeta<Pod>| {
            let meta = serde_json::to_value(&p.metadata).ok()?;
            let v = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {}});
            workload_item(WorkloadKind::Pod, &v, &settings)
        };
        self.follow_workloads(WorkloadKind::Pod, stream, convert)
            .await;
    }

    async fn follow_workloads<K: kube::Resource>(
        &self,
        kind: WorkloadKind,
        stream: BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
        convert: impl Fn(K) -> Option<WorkloadItem>,
    ) {
        let resource = Resource::Workloads(kind);
        self.follow(resource, stream, convert, |m, change| {
            m.workload_change(kind, change)
        })
        .await;
    }

    /// Watches a Cilium kind once its CRD is found. An absent CRD is logged
    /// once and looked for again every minute, quietly (no hot loop).
    async fn watch_cilium(self: Arc<Self>, kind: PolicyKind) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &api_resource(kind));
        let mut logged = false;
        let mut backoff = Duration::from_millis(500);
        loop {
            match api.list(&ListParams::default().limit(1)).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    if !logged {
                        tracing::info!(
                            kind = kind.as_str(),
                            "CRD not installed: these policies are ignored; looking again every minute"
                        );
                        logged = true;
                    }
                    tokio::time::sleep(CRD_RECHECK).await;
                }
                Err(e) => {
                    tracing::warn!(kind = kind.as_str(), error = %crate::cluster::apierror::describe(&e), "cannot tell whether the CRD exists; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        tracing::info!(kind = kind.as_str(), "CRD found: watching");
        if kind == PolicyKind::CiliumNetworkPolicy {
            self.cilium.store(true, Ordering::SeqCst);
        }
        self.watch_policies(kind, false).await;
    }
}

/// Live reads of one namespace, for read-after-write safety. Every read
/// here is caused by an admission request, and anyone who can reach the
/// webhook port can send those, so reads are bounded four ways:
/// - **coalesced**: at most one read of a namespace is in flight, even when
///   its caller gave up waiting (it finishes in a task of its own); a request
///   that arrives while one runs waits for the next read (one that started
///   after it arrived, so a policy applied just before it is seen), and
///   requests waiting together share it;
/// - **reused**: a read that started less than `liveReadReuseMillis` before
///   a request answers it too, unless a policy or Namespace write of that
///   namespace passed through this replica since the read started
///   (`note_write`). Without this, a flood of denials in one namespace keeps
///   one read running back to back (measured: 30 reads per 100 denials);
///   the price is that a policy change through the *other* replica within
///   that window, and not yet delivered by the watch, can be missed (a new
///   policy: a denial that a retry clears; a deleted one: a workload it
///   covered admitted);
/// - **negative-cached**: a namespace the API server says does not exist is
///   remembered as absent for `ABSENT_FOR`, and nothing is listed for it;
/// - **rate-limited**: at most `READS_PER_SECOND` (burst `READ_BURST`) reads
///   reach the API server; beyond that a read fails, and the caller's
///   fail-closed rules apply.
#[derive(Clone)]
pub struct LiveReader {
    client: Client,
    cilium: Arc<AtomicBool>,
    /// Per namespace: the last read, and the lock that makes reads of it
    /// one at a time.
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    /// Per namespace: when this replica last admitted a write that can
    /// change what a read of it returns (see `note_write`).
    writes: Arc<Mutex<Writes>>,
    bucket: Arc<Mutex<TokenBucket>>,
}

/// The last policy or Namespace write seen per namespace. Bounded: when it
/// grows past `SLOTS_KEPT`, it is emptied and `cleared` remembers when, so
/// every read older than that counts as written over.
#[derive(Default)]
struct Writes {
    at: HashMap<String, std::time::Instant>,
    cleared: Option<std::time::Instant>,
}

impl Writes {
    /// Whether a write noted for `ns` may be missing from a read that
    /// started at `started`: one noted after it, or shortly before it (the
    /// write is noted at admission, and lands in etcd only after the
    /// API server's other admission steps).
    fn since(&self, ns: &str, started: std::time::Instant) -> bool {
        let missed = |w: &std::time::Instant| *w + WRITE_SETTLE >= started;
        self.cleared.as_ref().is_some_and(missed) || self.at.get(ns).is_some_and(missed)
    }
}

/// How long after its admission a write may still be on its way to etcd.
const WRITE_SETTLE: Duration = Duration::from_secs(5);

/// Where a `LiveReader::namespace` answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    /// A read of the API server this call started.
    Read,
    /// A read another caller started after this one arrived.
    Shared,
    /// A recent read, within `liveReadReuseMillis` (or a namespace found
    /// absent less than `ABSENT_FOR` ago).
    Reused,
}

impl ReadSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadSource::Read => "read",
            ReadSource::Shared => "shared",
            ReadSource::Reused => "reused",
        }
    }
}

/// One namespace's last read, behind the lock that orders its reads.
type Slot = Arc<tokio::sync::Mutex<Option<LastRead>>>;

/// How long "this namespace does not exist" is believed without asking.
const ABSENT_FOR: Duration = Duration::from_secs(2);
/// Live reads per second the API server gets from one replica, at most.
const READS_PER_SECOND: f64 = 50.0;
const READ_BURST: f64 = 100.0;
/// Namespaces whose last read is remembered, before idle ones are dropped.
const SLOTS_KEPT: usize = 4096;

/// The result of one read of a namespace, and when that read started.
#[derive(Clone)]
struct LastRead {
    started: std::time::Instant,
    result: Result<Arc<NamespaceSnapshot>, LiveReadError>,
}

/// Why a live read gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LiveReadError {
    /// The API server's error, described (`apierror::describe`).
    #[error("{0}")]
    Api(String),
    #[error(
        "live reads of the API server are rate-limited (more than {READS_PER_SECOND} a second)"
    )]
    RateLimited,
}

impl From<kube::Error> for LiveReadError {
    fn from(e: kube::Error) -> Self {
        LiveReadError::Api(crate::cluster::apierror::describe(&e))
    }
}

/// A token bucket: `READ_BURST` reads at once, refilled at
/// `READS_PER_SECOND`.
struct TokenBucket {
    tokens: f64,
    at: std::time::Instant,
}

impl TokenBucket {
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * READS_PER_SECOND;
        self.tokens = (self.tokens + refill).min(READ_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the API server says about a namespace right now.
#[derive(Debug)]
pub struct NamespaceSnapshot {
    /// `None`: the namespace does not exist.
    pub meta: Option<NamespaceMeta>,
    pub policies: Vec<Value>,
}

/// A watched workload object as the model keeps it. Which Pods are judged
/// at their owner follows `controllerKinds` as configured when the object
/// arrives; a config change applies to objects seen after it (and to all
/// at the next relist).
fn workload_item(
    kind: WorkloadKind,
    obj: &Value,
    settings: &SettingsStore,
) -> Option<WorkloadItem> {
    let ns = namespace(obj)?;
    let name = name(obj)?;
    let settings = settings.get();
    let kept = crate::cluster::known_workload(kind, obj, &settings.config.controller_kinds)
        .map(|(_, w)| Arc::new(w));
    Some((ns, name, kept))
}

/// The name and what the view keeps of a Namespace's metadata.
fn namespace_meta(ns: PartialObjectMeta<Namespace>) -> Option<(String, NamespaceMeta)> {
    let meta = NamespaceMeta {
        labels: ns.metadata.labels.unwrap_or_default(),
        terminating: ns.metadata.deletion_timestamp.is_some(),
    };
    Some((ns.metadata.name?, meta))
}

impl LiveReader {
    fn new(client: Client, cilium: Arc<AtomicBool>) -> Self {
        Self {
            client,
            cilium,
            slots: Arc::default(),
            writes: Arc::default(),
            bucket: Arc::new(Mutex::new(TokenBucket {
                tokens: READ_BURST,
                at: std::time::Instant::now(),
            })),
        }
    }

    /// A token for one API call, or `RateLimited`.
    fn allowed(&self) -> Result<(), LiveReadError> {
        let mut bucket = lock_ignoring_poison(&self.bucket);
        if bucket.take() {
            Ok(())
        } else {
            Err(LiveReadError::RateLimited)
        }
    }

    /// Reads a Namespace's metadata alone (`None`: it does not exist).
    pub async fn namespace_meta(&self, ns: &str) -> Result<Option<NamespaceMeta>, LiveReadError> {
        self.allowed()?;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        Ok(namespaces
            .get_metadata_opt(ns)
            .await?
            .and_then(namespace_meta)
            .map(|(_, meta)| meta))
    }

    /// Records that this replica admitted a write in `ns` that a live read
    /// would see (a policy created, updated or deleted, the Namespace
    /// relabelled): reads that started before it are not reused.
    pub fn note_write(&self, ns: &str) {
        let mut writes = lock_ignoring_poison(&self.writes);
        let now = std::time::Instant::now();
        if writes.at.len() >= SLOTS_KEPT {
            writes.at.clear();
            writes.cleared = Some(now);
        }
        writes.at.insert(ns.to_string(), now);
    }

    /// The namespace's metadata and every policy in it, as of a read that
    /// started after this call (coalesced with concurrent callers), or less
    /// than `reuse` before it with no write noted since, or as remembered
    /// when the namespace was found absent less than `ABSENT_FOR` ago.
    pub async fn namespace(
        &self,
        ns: &str,
        reuse: Duration,
    ) -> Result<(Arc<NamespaceSnapshot>, ReadSource), LiveReadError> {
        let asked = std::time::Instant::now();
        let slot = {
            let mut slots = lock_ignoring_poison(&self.slots);
            if slots.len() > SLOTS_KEPT {
                // Only the ones a caller holds right now are kept.
                slots.retain(|_, s| Arc::strong_count(s) > 1);
            }
            slots.entry(ns.to_string()).or_default().clone()
        };
        let mut last = slot.lock_owned().await;
        if let Some(read) = last.as_ref() {
            if read.started >= asked {
                return read.result.clone().map(|s| (s, ReadSource::Shared));
            }
            let absent = matches!(&read.result, Ok(s) if s.meta.is_none())
                && read.started.elapsed() < ABSENT_FOR;
            let recent = read.result.is_ok()
                && asked.duration_since(read.started) < reuse
                && !self.written_since(ns, read.started);
            if absent || recent {
                return read.result.clone().map(|s| (s, ReadSource::Reused));
            }
        }
        // The read runs to its end in a task of its own, holding the slot:
        // a caller that gives up (liveReadTimeoutMillis) no longer abandons
        // a request the API server is still serving while the next caller
        // starts another, so the API server sees at most one read of a
        // namespace per replica at a time (measured before: 2).
        let this = self.clone();
        let namespace = ns.to_string();
        let read = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = this.read_namespace(&namespace).await.map(Arc::new);
            *last = Some(LastRead {
                started,
                result: result.clone(),
            });
            result
        });
        match read.await {
            Ok(result) => result.map(|s| (s, ReadSource::Read)),
            Err(e) => Err(LiveReadError::Api(format!("the live read failed: {e}"))),
        }
    }

    fn written_since(&self, ns: &str, started: std::time::Instant) -> bool {
        lock_ignoring_poison(&self.writes).since(ns, started)
    }

    async fn read_namespace(&self, ns: &str) -> Result<NamespaceSnapshot, LiveReadError> {
        let meta = self.namespace_meta(ns).await?;
        if meta.is_none() {
            // Nothing to list in a namespace that does not exist.
            return Ok(NamespaceSnapshot {
                meta,
                policies: Vec::new(),
            });
        }
        let mut kinds = vec![PolicyKind::NetworkPolicy];
        if self.cilium.load(Ordering::SeqCst) {
            kinds.push(PolicyKind::CiliumNetworkPolicy);
        }
        let mut policies = Vec::new();
        for kind in kinds {
            self.allowed()?;
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), ns, &api_resource(kind));
            // Paged like the watches' lists: one page at a time in memory.
            let mut params = ListParams::default().limit(LIST_PAGE);
            loop {
                let list = api.list(&params).await?;
                policies.extend(list.items.iter().filter_map(|o| to_json(o, kind)));
                match list.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => {
                        self.allowed()?;
                        params = params.continue_token(&token);
                    }
                    None => break,
                }
            }
        }
        Ok(NamespaceSnapshot { meta, policies })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::store;
    use crate::selector::Labels;
    use serde_json::json;

    fn np(ns: &str, name: &str) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {}, "ingress": [{}]}})
    }

    fn meta(team: &str) -> NamespaceMeta {
        NamespaceMeta {
            labels: [("team".to_string(), team.to_string())].into(),
            terminating: false,
        }
    }

    fn deployment(ns: &str, name: &str) -> (String, String, Option<Arc<KnownWorkload>>) {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        let (ns, w) = crate::cluster::known_workload(WorkloadKind::Deployment, &obj, &[]).unwrap();
        (ns, name.to_string(), Some(Arc::new(w)))
    }

    /// Issue 16: which reads a noted write rules out for reuse. A write
    /// noted up to `WRITE_SETTLE` before a read started may still have been
    /// on its way to etcd; the bound on the map clears it whole and then
    /// rules out every read from before the clearing.
    #[test]
    fn a_noted_write_rules_out_reads_that_may_have_missed_it() {
        use std::time::Instant;
        let t0 = Instant::now();
        let later = |ms: u64| t0 + Duration::from_millis(ms);
        let mut w = Writes::default();
        assert!(!w.since("a", t0), "nothing written");
        w.at.insert("a".into(), later(1_000));
        assert!(w.since("a", t0), "written after the read started");
        assert!(w.since("a", later(1_000) + WRITE_SETTLE), "still settling");
        assert!(
            !w.since("a", later(1_001) + WRITE_SETTLE),
            "settled before the read started"
        );
        assert!(!w.since("b", t0), "another namespace");
        w.cleared = Some(later(2_000));
        assert!(w.since("b", t0), "cleared: any namespace, any older read");
        assert!(!w.since("b", later(2_001) + WRITE_SETTLE));
    }

    /// Issue 14: every event publishes a clone of the model's view; the view
    /// readers already hold must not change under them, and the new one must
    /// carry the event and everything else.
    #[test]
    fn each_event_publishes_a_new_view_and_views_already_read_stay_as_they_were() {
        let (writer, reader) = store::store(ClusterView::new());
        let mut d = ModelDriver::new(writer);
        d.list_namespaces(vec![("a".into(), meta("x")), ("b".into(), meta("y"))]);
        assert!(!reader.ready(), "NetworkPolicies not listed yet");
        d.list_policies(PolicyKind::NetworkPolicy, vec![np("a", "p1")]);
        assert!(reader.ready());
        let listed = reader.view();
        assert!(listed.namespaces_complete());
        assert_eq!(listed.policy_objects("a"), 1);

        d.apply_policy(PolicyKind::NetworkPolicy, np("b", "p2"));
        let applied = reader.view();
        assert_eq!(applied.policy_objects("b"), 1);
        assert_eq!(applied.policy_objects("a"), 1, "other namespaces kept");
        let team: &Labels = &meta("x").labels;
        assert_eq!(applied.namespace_labels("a"), Some(team));
        assert!(applied.namespaces_complete(), "an event keeps completeness");
        assert_eq!(
            listed.policy_objects("b"),
            0,
            "a view read before is unchanged"
        );

        d.delete_policy(PolicyKind::NetworkPolicy, np("a", "p1"));
        let deleted = reader.view();
        assert_eq!(deleted.policy_objects("a"), 0);
        assert_eq!(deleted.policy_count(), 1);
        assert_eq!(applied.policy_objects("a"), 1);
        assert_eq!(
            deleted.focused("b").policy_objects("b"),
            1,
            "a focused view of the published one"
        );
    }

    #[test]
    fn workloads_are_known_once_every_workload_kind_is_listed() {
        let (writer, reader) = store::store(ClusterView::new());
        let mut d = ModelDriver::new(writer);
        for (i, (kind, _)) in kinds::WORKLOAD_KINDS.iter().enumerate() {
            assert!(
                reader.view().workloads("a").is_none(),
                "{i} kinds listed: not known yet"
            );
            let items = if *kind == WorkloadKind::Deployment {
                vec![deployment("a", "api"), deployment("b", "web")]
            } else {
                Vec::new()
            };
            d.list_workloads(*kind, items);
        }
        let view = reader.view();
        let names = |ns: &str| -> Vec<String> {
            view.workloads(ns)
                .unwrap_or_default()
                .iter()
                .map(|w| w.name.clone())
                .collect()
        };
        assert_eq!(names("a"), ["api"]);
        assert_eq!(names("b"), ["web"]);
        assert_eq!(view.workload_count(), 2);
        let focused = view.focused("a");
        assert_eq!(focused.workloads("a").map(<[_]>::len), Some(1));
        assert_eq!(focused.workloads("b").map(<[_]>::len), Some(0));
        // A policy event leaves the workloads published with it.
        d.apply_policy(PolicyKind::NetworkPolicy, np("a", "p"));
        assert_eq!(reader.view().workload_count(), 2);
    }
}

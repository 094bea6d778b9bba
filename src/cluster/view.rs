//! The read-only cluster view the engine judges against: namespaces with their
//! labels, and the policies that can cover pods, compiled and indexed per
//! namespace so a decision never scans the cluster.
//!
//! Built once (from `--state` manifests, or later from watches) and shared
//! behind an `Arc`; a decision only reads it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::config::Directions;
use crate::selector::{Labels, Selector, SelectorError, Selects, UnknownKeys};
use crate::workload::{self, PodShape, WorkloadKind};

pub use super::kinds::PolicyKind;

/// A policy that grants traffic to the pods it selects.
#[derive(Debug, Clone)]
pub struct PolicyEntry {
    pub kind: PolicyKind,
    pub name: String,
    pub selector: Selector,
    pub grants_ingress: bool,
    pub grants_egress: bool,
}

/// Policies of one scope, indexed by one (key, value) requirement of each
/// selector (`Selector::index_key`), so only policies that can match a pod are
/// evaluated. A policy indexed under several values of one key is still found
/// at most once per pod, since a pod has one value per key.
#[derive(Debug, Default, Clone)]
struct PolicyIndex {
    entries: Vec<PolicyEntry>,
    by_label: HashMap<String, HashMap<String, Vec<u32>>>,
    unindexed: Vec<u32>,
}

impl PolicyIndex {
    fn push(&mut self, entry: PolicyEntry) {
        let i = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        match entry.selector.index_key() {
            Some((k, values)) => {
                let by_value = self.by_label.entry(k.to_string()).or_default();
                for v in values {
                    by_value.entry(v.to_string()).or_default().push(i);
                }
            }
            None => self.unindexed.push(i),
        }
        self.entries.push(entry);
    }

    /// Policies that may select `labels` (each at most once): those indexed
    /// under one of the pod's label pairs, plus the unindexed ones.
    fn candidates<'s, 'l>(
        &'s self,
        labels: &'l Labels,
    ) -> impl Iterator<Item = &'s PolicyEntry> + use<'s, 'l> {
        let indexed = labels.iter().flat_map(move |(k, v)| {
            self.by_label
                .get(k)
                .and_then(|m| m.get(v))
                .map(Vec::as_slice)
                .unwrap_or_default()
        });
        indexed
            .chain(self.unindexed.iter())
            .filter_map(move |&i| self.entries.get(i as usize))
    }
}

/// What the view keeps of a Namespace object: its labels, and whether it is
/// being deleted (the namespace controller then removes the baseline too,
/// and `baseline-protected` must let it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NamespaceMeta {
    pub labels: Labels,
    pub terminating: bool,
}

impl NamespaceMeta {
    /// From a Namespace object (or its metadata) as JSON.
    pub fn of(obj: &Value) -> Self {
        Self {
            labels: super::meta::labels(obj),
            terminating: obj
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|t| !t.is_null()),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct NamespaceEntry {
    labels: Option<Labels>,
    terminating: bool,
    kube: PolicyIndex,
    cilium: PolicyIndex,
    /// Policies that select pods but cannot cover them (baseline, no rules).
    isolating: usize,
    /// Policy objects of every kind in this namespace.
    objects: usize,
}

impl NamespaceEntry {
    /// An entry with the namespace's metadata (`None`: the Namespace object
    /// is not known) and no policies yet.
    fn of(meta: Option<NamespaceMeta>) -> Self {
        Self {
            terminating: meta.as_ref().is_some_and(|m| m.terminating),
            labels: meta.map(|m| m.labels),
            ..Self::default()
        }
    }

    fn push(&mut self, policy: CompiledPolicy) {
        self.objects += 1;
        if policy.isolating {
            self.isolating += 1;
        }
        for e in policy.entries {
            match e.kind {
                PolicyKind::NetworkPolicy => self.kube.push(e),
                _ => self.cilium.push(e),
            }
        }
    }
}

/// The policy closest to selecting some pods, and the selector requirements
/// (`kubectl -l` syntax) they do not meet.
#[derive(Debug, Clone)]
pub struct Nearest<'a> {
    pub policy: &'a PolicyEntry,
    pub unmet: Vec<String>,
}

/// What covers a set of pods, per direction.
#[derive(Debug, Default, Clone, Copy)]
pub struct Coverage<'a> {
    pub ingress: Option<&'a PolicyEntry>,
    pub egress: Option<&'a PolicyEntry>,
    /// Per direction, the first policy that would have granted it but for a
    /// label the pods' controller sets (`Selects::Unknown`): it does not
    /// count, and the developer needs to know why (`undecided`).
    pub undecided_ingress: Option<&'a PolicyEntry>,
    pub undecided_egress: Option<&'a PolicyEntry>,
}

impl<'a> Coverage<'a> {
    /// A policy that would have granted a direction `need` still misses,
    /// but for a label the pods' controller sets.
    pub fn undecided(&self, need: Directions) -> Option<&'a PolicyEntry> {
        let ingress = self.undecided_ingress.filter(|_| self.ingress.is_none());
        let egress = self.undecided_egress.filter(|_| self.egress.is_none());
        match need {
            Directions::Any | Directions::Both => ingress.or(egress),
            Directions::Ingress => ingress,
            Directions::Egress => egress,
        }
    }

    pub fn satisfies(&self, need: Directions) -> bool {
        match need {
            Directions::Any => self.ingress.is_some() || self.egress.is_some(),
            Directions::Ingress => self.ingress.is_some(),
            Directions::Egress => self.egress.is_some(),
            Directions::Both => self.ingress.is_some() && self.egress.is_some(),
        }
    }
}

/// A policy object that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{kind} {name}: {source}")]
    Selector {
        kind: &'static str,
        name: String,
        source: SelectorError,
    },
    #[error("{kind} has no metadata.name")]
    NoName { kind: &'static str },
    #[error("{kind} {name} has no metadata.namespace")]
    NoNamespace { kind: &'static str, name: String },
}

/// A workload that exists, cut down to what coverage reads: the view keeps
/// these so a policy change can say which workloads it uncovers
/// (`uncovers-workloads`) without listing anything per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownWorkload {
    pub kind: WorkloadKind,
    pub name: String,
    pub pods: PodShape,
}

impl KnownWorkload {
    /// The order reports list workloads in: owners before what they run
    /// (Deployments first, bare Pods last), then by name.
    pub fn report_order(&self) -> (usize, &str) {
        (super::kinds::workload_rank(self.kind), &self.name)
    }

    /// `Kind name`, as reports and messages name it.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind.as_str(), self.name)
    }
}

/// A map per namespace name, persistent: `imbl`'s hash array mapped trie
/// (32-way, so 3 levels at 10,000 namespaces). Cloning one is O(1) (one
/// reference count), and changing a clone copies only the path to the
/// changed key (O(log32 n) nodes) while the rest stays shared; a lookup is
/// a hash and a walk down that path. Values are behind `Arc`s so a copied
/// node clones pointers, not namespaces.
///
/// Why: the live watches publish a new view after every event (a clone,
/// behind a fresh `Arc`, while readers keep the previous one). With
/// `std::collections::HashMap` each publish copied and then freed every
/// namespace's key and entry pointer, twice (namespaces, workloads): the
/// cost of one event grew with the cluster (~1,000 events/s at 10,000
/// namespaces). Now it does not (docs/benchmarks.md, "Live watch events").
/// Rejected: a two-level map (shards of `Arc<HashMap>`) still copies
/// n / shards entries per event. `rpds` has the same structure, but
/// `imbl` keeps std's map API (`entry`, `get_key_value`, `Default` with
/// `Arc`s), so the code using these maps is unchanged.
type PerNamespace<V> = imbl::HashMap<String, Arc<V>>;

/// The cluster as the engine sees it. Cheap to clone (O(1), see
/// [`PerNamespace`]), and a clone is changed copy-on-write: the live view
/// publishes a clone after every watch event, rebuilding only the
/// namespaces that changed.
#[derive(Debug, Default, Clone)]
pub struct ClusterView {
    namespaces: PerNamespace<NamespaceEntry>,
    clusterwide: Arc<PolicyIndex>,
    clusterwide_objects: usize,
    /// Existing workloads per namespace (those judged themselves, not at
    /// their owner), in no particular order.
    workloads: PerNamespace<Vec<Arc<KnownWorkload>>>,
    /// Whether `workloads` is complete: every workload kind has been read
    /// (from the watches, or from `--state` manifests that hold workloads).
    /// Until then nothing is said about what a policy change uncovers.
    workloads_known: bool,
    /// Whether the view holds every Namespace of the cluster: set by the
    /// live watch once it has listed them, never for a view built from
    /// manifests (which hold the namespaces they happen to mention).
    namespaces_complete: bool,
}

/// A namespaced policy (NetworkPolicy, CiliumNetworkPolicy) as the view
/// keeps it: what it grants and whom it selects, without its object. The
/// live model holds these rather than the objects: 10,000 policies as JSON
/// trees, even cut down by `slim_policy`, were 95 MiB of a 105 MiB heap
/// (heaptrack, docs/benchmarks.md); compiled, a few MiB.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    entries: Vec<PolicyEntry>,
    /// Selects pods but grants nothing (baseline, or no rules).
    isolating: bool,
}

impl CompiledPolicy {
    /// Compiles a policy object (`apiVersion` and `kind` set); `Ok(None)`
    /// for any other kind, cluster-wide ones included.
    pub fn compile(obj: &Value) -> Result<Option<Self>, ViewError> {
        let kind = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .zip(obj.get("kind").and_then(Value::as_str))
            .and_then(|(a, k)| PolicyKind::from_type(a, k));
        match kind {
            Some(kind) if kind != PolicyKind::CiliumClusterwideNetworkPolicy => {
                Self::of_kind(obj, kind).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Compiles a namespaced policy object whose kind the caller knows (a
    /// watch of that kind).
    pub fn of_kind(obj: &Value, kind: PolicyKind) -> Result<Self, ViewError> {
        compile(obj, kind).map(|c| c.policy)
    }
}

/// One policy object, compiled, with its namespace (`None`: cluster-wide).
struct Compiled {
    namespace: Option<String>,
    policy: CompiledPolicy,
}

impl ClusterView {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a Namespace, NetworkPolicy, CiliumNetworkPolicy or
    /// CiliumClusterwideNetworkPolicy; returns false for any other kind.
    pub fn add(&mut self, obj: &Value) -> Result<bool, ViewError> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        if (api_version, kind) == ("v1", "Namespace") {
            let name = name_of(obj, "Namespace")?;
            let meta = NamespaceMeta::of(obj);
            let entry = Arc::make_mut(self.namespaces.entry(name).or_default());
            entry.labels = Some(meta.labels);
            entry.terminating = meta.terminating;
            return Ok(true);
        }
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if let Some(wk) = WorkloadKind::from_group_kind(group, kind) {
            // A workload whose pods cannot be read is reported where it is
            // judged, not here.
            // Offline, without settings: only the built-in controllers.
            if let Some((ns, w)) = known_workload(wk, obj, &[]) {
                let list = Arc::make_mut(self.workloads.entry(ns).or_default());
                list.push(Arc::new(w));
            }
            self.workloads_known = true;
            return Ok(true);
        }
        let Some(kind) = PolicyKind::from_type(api_version, kind) else {
            return Ok(false);
        };
        let compiled = compile(obj, kind)?;
        match compiled.namespace {
            Some(ns) => Arc::make_mut(self.namespaces.entry(ns).or_default()).push(compiled.policy),
            None => {
                self.clusterwide_objects += 1;
                let index = Arc::make_mut(&mut self.clusterwide);
                for e in compiled.policy.entries {
                    index.push(e);
                }
            }
        }
        Ok(true)
    }

    /// Replaces what the view knows of one namespace: its metadata (`None`
    /// when the Namespace object is not known) and all its policies (objects
    /// of the namespaced policy kinds, `apiVersion`/`kind` set). Policies that
    /// cannot be compiled are skipped and returned as errors.
    pub fn set_namespace<'a>(
        &mut self,
        ns: &str,
        meta: Option<NamespaceMeta>,
        policies: impl IntoIterator<Item = &'a Value>,
    ) -> Vec<ViewError> {
        let mut entry = NamespaceEntry::of(meta);
        let mut errors = Vec::new();
        for obj in policies {
            match CompiledPolicy::compile(obj) {
                Ok(Some(c)) => entry.push(c),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        self.set_namespace_entry(ns, entry);
        errors
    }

    /// [`Self::set_namespace`] with policies compiled beforehand: the live
    /// model compiles each policy once, when its watch event arrives, and
    /// rebuilds a namespace from what it kept.
    pub fn set_namespace_compiled<'a>(
        &mut self,
        ns: &str,
        meta: Option<NamespaceMeta>,
        policies: impl IntoIterator<Item = &'a CompiledPolicy>,
    ) {
        let mut entry = NamespaceEntry::of(meta);
        for c in policies {
            entry.push(c.clone());
        }
        self.set_namespace_entry(ns, entry);
    }

    fn set_namespace_entry(&mut self, ns: &str, entry: NamespaceEntry) {
        if entry.labels.is_none() && entry.objects == 0 {
            self.namespaces.remove(ns);
        } else {
            self.namespaces.insert(ns.to_string(), Arc::new(entry));
        }
    }

    /// Replaces every CiliumClusterwideNetworkPolicy.
    pub fn set_clusterwide<'a>(
        &mut self,
        policies: impl IntoIterator<Item = &'a Value>,
    ) -> Vec<ViewError> {
        let mut index = PolicyIndex::default();
        let mut errors = Vec::new();
        let mut objects = 0;
        for obj in policies {
            match compile(obj, PolicyKind::CiliumClusterwideNetworkPolicy) {
                Ok(c) => {
                    objects += 1;
                    for e in c.policy.entries {
                        index.push(e);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        self.clusterwide = Arc::new(index);
        self.clusterwide_objects = objects;
        errors
    }

    /// The part of the view a request in `ns` is judged against: that
    /// namespace and the cluster-wide policies (the engine reads nothing
    /// else). Cheap: a few `Arc` clones, not a copy of every namespace, so
    /// the live re-read before a denial can overlay fresh data on it.
    pub fn focused(&self, ns: &str) -> ClusterView {
        ClusterView {
            namespaces: self
                .namespaces
                .get_key_value(ns)
                .map(|(k, v)| (k.clone(), v.clone()))
                .into_iter()
                .collect(),
            clusterwide: self.clusterwide.clone(),
            clusterwide_objects: self.clusterwide_objects,
            workloads: self
                .workloads
                .get_key_value(ns)
                .map(|(k, v)| (k.clone(), v.clone()))
                .into_iter()
                .collect(),
            workloads_known: self.workloads_known,
            // One namespace is not the cluster's list.
            namespaces_complete: false,
        }
    }

    /// A focused view of `ns` (see [`ClusterView::focused`]) in which the
    /// policy `kind`/`name` is replaced by `new`, or removed when `new` is
    /// `None`: what the namespace would be after an UPDATE or DELETE. Only
    /// coverage is meant to be asked of it (its object counts are not
    /// maintained). A `new` object that cannot be compiled is an error.
    pub fn with_policy_replaced(
        &self,
        ns: &str,
        kind: PolicyKind,
        name: &str,
        new: Option<&Value>,
    ) -> Result<ClusterView, ViewError> {
        let mut out = self.focused(ns);
        let old = self.namespaces.get(ns).cloned().unwrap_or_default();
        let mut entry = NamespaceEntry {
            labels: old.labels.clone(),
            terminating: old.terminating,
            isolating: old.isolating,
            objects: old.objects,
            ..NamespaceEntry::default()
        };
        for e in old.kube.entries.iter().chain(&old.cilium.entries) {
            if !(e.kind == kind && e.name == name) {
                match e.kind {
                    PolicyKind::NetworkPolicy => entry.kube.push(e.clone()),
                    _ => entry.cilium.push(e.clone()),
                }
            }
        }
        if let Some(obj) = new {
            let compiled = compile(obj, kind)?;
            for e in compiled.policy.entries {
                match e.kind {
                    PolicyKind::NetworkPolicy => entry.kube.push(e),
                    _ => entry.cilium.push(e),
                }
            }
        }
        out.namespaces.insert(ns.to_string(), Arc::new(entry));
        Ok(out)
    }

    /// Replaces the known workloads of one namespace (from the watches,
    /// which share each workload with the view).
    pub fn set_workloads(&mut self, ns: &str, workloads: Vec<Arc<KnownWorkload>>) {
        if workloads.is_empty() {
            self.workloads.remove(ns);
        } else {
            self.workloads.insert(ns.to_string(), Arc::new(workloads));
        }
    }

    /// Marks the known workloads complete (or not, after a watch restart).
    pub fn set_workloads_known(&mut self, known: bool) {
        self.workloads_known = known;
    }

    /// The existing workloads of `ns`, when the view knows them all.
    pub fn workloads(&self, ns: &str) -> Option<&[Arc<KnownWorkload>]> {
        self.workloads_known
            .then(|| self.workloads.get(ns).map_or(&[][..], |w| w.as_slice()))
    }

    /// The existing workloads of every namespace, with their namespace,
    /// when the view knows them all (`policy-selects-nothing` judges a
    /// CiliumClusterwideNetworkPolicy by them).
    pub fn all_workloads(&self) -> Option<impl Iterator<Item = (&str, &KnownWorkload)>> {
        self.workloads_known.then(|| {
            self.workloads
                .iter()
                .flat_map(|(ns, list)| list.iter().map(move |w| (ns.as_str(), w.as_ref())))
        })
    }

    /// Number of known workloads, over every namespace.
    pub fn workload_count(&self) -> usize {
        self.workloads.values().map(|w| w.len()).sum()
    }

    /// Replaces only a namespace's metadata, keeping its compiled policies
    /// (a live read of the Namespace alone, overlaid on a focused view).
    pub fn set_namespace_meta(&mut self, ns: &str, meta: Option<NamespaceMeta>) {
        let entry = Arc::make_mut(self.namespaces.entry(ns.to_string()).or_default());
        entry.terminating = meta.as_ref().is_some_and(|m| m.terminating);
        entry.labels = meta.map(|m| m.labels);
        if entry.labels.is_none() && entry.objects == 0 {
            self.namespaces.remove(ns);
        }
    }

    /// Labels of a namespace, if the view knows it.
    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces.get(ns).and_then(|n| n.labels.as_ref())
    }

    /// Whether the view knows `ns` to be terminating (deletionTimestamp set).
    pub fn is_terminating(&self, ns: &str) -> bool {
        self.namespaces.get(ns).is_some_and(|n| n.terminating)
    }

    /// Marks the view as holding every Namespace of the cluster (or not).
    /// Only a source that has listed them all may say so: the live
    /// Namespace watch, once synced. Rules that judge a selector by "every
    /// namespace there is" (`any-namespace-peer`) rely on it.
    pub fn set_namespaces_complete(&mut self, complete: bool) {
        self.namespaces_complete = complete;
    }

    /// Whether the view holds every Namespace of the cluster (see
    /// [`ClusterView::set_namespaces_complete`]).
    pub fn namespaces_complete(&self) -> bool {
        self.namespaces_complete
    }

    /// The namespaces with known labels (a Namespace object was seen), in
    /// no particular order.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &Labels)> {
        self.namespaces
            .iter()
            .filter_map(|(name, n)| Some((name.as_str(), n.labels.as_ref()?)))
    }

    /// Number of namespaces with known labels.
    pub fn namespace_count(&self) -> usize {
        self.namespaces
            .values()
            .filter(|n| n.labels.is_some())
            .count()
    }

    /// Number of policy objects loaded (all kinds, covering or not).
    pub fn policy_count(&self) -> usize {
        self.namespaces.values().map(|n| n.objects).sum::<usize>() + self.clusterwide_objects
    }

    /// Number of policies in `ns` that select pods but grant nothing
    /// (baseline default-deny, or policies with no rules).
    pub fn isolating_policies(&self, ns: &str) -> usize {
        self.namespaces.get(ns).map_or(0, |n| n.isolating)
    }

    /// Number of policy objects (every kind, isolating ones included) in `ns`.
    pub fn policy_objects(&self, ns: &str) -> usize {
        self.namespaces.get(ns).map_or(0, |n| n.objects)
    }

    /// For pods no policy covers: the policy of their namespace that comes
    /// closest to selecting them (fewest unmet selector requirements, then
    /// most requirements met, then name), with what the pods lack. Only
    /// policies that grant traffic count: an isolating one would not cover
    /// them even if it matched. Usually the policy someone meant for them
    /// with a label that drifted.
    pub fn nearest_policy(
        &self,
        ns: &str,
        labels: &Labels,
        unknown: &UnknownKeys,
        pod_sa: Option<&str>,
    ) -> Option<Nearest<'_>> {
        let n = self.namespaces.get(ns)?;
        let kube = n.kube.entries.iter().map(|p| (p, labels.clone()));
        let cl = (!n.cilium.entries.is_empty())
            .then(|| cilium_labels(ns, labels, n.labels.as_ref(), pod_sa));
        let cilium = n
            .cilium
            .entries
            .iter()
            .filter_map(|p| cl.clone().map(|l| (p, l)));
        kube.chain(cilium)
            .filter(|(p, _)| p.grants_ingress || p.grants_egress)
            .map(|(p, l)| Nearest {
                policy: p,
                unmet: p.selector.unmet(&l, unknown),
            })
            .min_by(|a, b| {
                let met = |x: &Nearest<'_>| x.policy.selector.requirement_count() - x.unmet.len();
                a.unmet
                    .len()
                    .cmp(&b.unmet.len())
                    .then(met(b).cmp(&met(a)))
                    .then(a.policy.name.cmp(&b.policy.name))
            })
    }

    /// Which policies grant traffic to pods with `labels` (and the keys in
    /// `unknown`, with values not known in advance: only a policy that
    /// selects them whatever those values are counts) in namespace `ns`,
    /// stopping as soon as `need` is satisfied.
    pub fn coverage(
        &self,
        ns: &str,
        labels: &Labels,
        unknown: &UnknownKeys,
        pod_sa: Option<&str>,
        need: Directions,
    ) -> Coverage<'_> {
        let mut cov = Coverage::default();
        let nsentry = self.namespaces.get(ns);
        if let Some(n) = nsentry
            && scan(n.kube.candidates(labels), labels, unknown, need, &mut cov)
        {
            return cov;
        }
        let has_cilium = nsentry.is_some_and(|n| !n.cilium.entries.is_empty())
            || !self.clusterwide.entries.is_empty();
        if has_cilium {
            let cl = cilium_labels(ns, labels, nsentry.and_then(|n| n.labels.as_ref()), pod_sa);
            if let Some(n) = nsentry
                && scan(n.cilium.candidates(&cl), &cl, unknown, need, &mut cov)
            {
                return cov;
            }
            scan(
                self.clusterwide.candidates(&cl),
                &cl,
                unknown,
                need,
                &mut cov,
            );
        }
        cov
    }
}

/// Records grants from matching candidates; true once `need` is satisfied.
fn scan<'a>(
    candidates: impl Iterator<Item = &'a PolicyEntry>,
    labels: &Labels,
    unknown: &UnknownKeys,
    need: Directions,
    cov: &mut Coverage<'a>,
) -> bool {
    if cov.satisfies(need) {
        return true;
    }
    for p in candidates {
        let wants_ingress = cov.ingress.is_none() && p.grants_ingress;
        let wants_egress = cov.egress.is_none() && p.grants_egress;
        if !(wants_ingress || wants_egress) {
            continue;
        }
        let selects = p.selector.selects(labels, unknown);
        if selects == Selects::Unknown {
            if wants_ingress && cov.undecided_ingress.is_none() {
                cov.undecided_ingress = Some(p);
            }
            if wants_egress && cov.undecided_egress.is_none() {
                cov.undecided_egress = Some(p);
            }
        }
        if selects == Selects::Yes {
            if wants_ingress {
                cov.ingress = Some(p);
            }
            if wants_egress {
                cov.egress = Some(p);
            }
            if cov.satisfies(need) {
                return true;
            }
        }
    }
    false
}

/// The labels Cilium gives an endpoint: the pod's own, plus its namespace,
/// the namespace's labels and its service account, under Cilium's keys.
pub(crate) fn cilium_labels(
    ns: &str,
    labels: &Labels,
    ns_labels: Option<&Labels>,
    sa: Option<&str>,
) -> Labels {
    let mut out = labels.clone();
    out.insert("io.kubernetes.pod.namespace".into(), ns.into());
    out.insert(
        "io.cilium.k8s.policy.serviceaccount".into(),
        sa.unwrap_or("default").into(),
    );
    for (k, v) in ns_labels.into_iter().flatten() {
        out.insert(format!("io.cilium.k8s.namespace.labels.{k}"), v.clone());
    }
    out
}

/// Cilium selectors may prefix keys with a label source; `k8s:` and `any:`
/// both match Kubernetes pod labels. Other sources (`reserved:`, ...) are kept
/// and so never match a pod label.
pub(crate) fn strip_cilium_source(key: &str) -> String {
    key.strip_prefix("k8s:")
        .or_else(|| key.strip_prefix("any:"))
        .unwrap_or(key)
        .to_string()
}

/// Compiles one policy object into the entries that can cover pods.
fn compile(obj: &Value, kind: PolicyKind) -> Result<Compiled, ViewError> {
    let kind_str = kind.as_str();
    let name = name_of(obj, kind_str)?;
    let namespace = match kind {
        PolicyKind::CiliumClusterwideNetworkPolicy => None,
        _ => Some(namespace_of(obj, kind_str, &name)?),
    };
    let selector_err = |source| ViewError::Selector {
        kind: kind_str,
        name: name.clone(),
        source,
    };
    let mut entries = Vec::new();
    if kind == PolicyKind::NetworkPolicy {
        let spec = obj.get("spec");
        let selector =
            Selector::from_value(spec.and_then(|s| s.get("podSelector"))).map_err(selector_err)?;
        let (ingress_type, egress_type) = effective_policy_types(spec);
        // A direction counts when the policy allows something in it, or
        // when it deliberately isolates specific pods in it (a batch job
        // that talks to nobody): a team's decision, not a gap. Isolating
        // the whole namespace (`{}`, or only NotIn / DoesNotExist) is the
        // default-deny's job and decides nothing about any one workload.
        let deliberate = selector.is_specific();
        let grants =
            |typed: bool, k: &str| typed && (deliberate || non_empty(spec.and_then(|s| s.get(k))));
        entries.push(PolicyEntry {
            kind,
            name: name.clone(),
            grants_ingress: grants(ingress_type, "ingress"),
            grants_egress: grants(egress_type, "egress"),
            selector,
        });
    } else {
        // Cilium accepts `spec`, `specs`, or both in one object.
        let specs = obj.get("spec").filter(|s| s.is_object()).into_iter().chain(
            obj.get("specs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        for spec in specs {
            // Node-selecting specs (nodeSelector) protect hosts, not pods.
            let Some(sel) = spec.get("endpointSelector") else {
                continue;
            };
            let selector = Selector::from_value(Some(sel))
                .map_err(selector_err)?
                .map_keys(strip_cilium_source);
            entries.push(PolicyEntry {
                kind,
                name: name.clone(),
                selector,
                grants_ingress: non_empty(spec.get("ingress")),
                grants_egress: non_empty(spec.get("egress")),
            });
        }
    }
    // Policies that only isolate the whole namespace never cover, nor does
    // netpol-guard's own baseline unless it selects specific pods: it is
    // the admin's, written into every namespace, not the workload team's
    // decision. Ownership is proven here, as the object arrives: the view
    // keeps only compiled selectors, not managedFields or annotations.
    let ours_namespace_wide = kind == PolicyKind::NetworkPolicy
        && crate::baseline::is_ours(obj)
        && !entries.iter().any(|e| e.selector.is_specific());
    let isolating = ours_namespace_wide
        || entries
            .iter()
            .all(|e| !(e.grants_ingress || e.grants_egress));
    if isolating {
        entries.clear();
    } else {
        entries.retain(|e| e.grants_ingress || e.grants_egress);
    }
    Ok(Compiled {
        namespace,
        policy: CompiledPolicy { entries, isolating },
    })
}

fn non_empty(v: Option<&Value>) -> bool {
    v.and_then(Value::as_array).is_some_and(|a| !a.is_empty())
}

/// Kubernetes' effective policyTypes: Ingress unless policyTypes is given
/// without it; Egress when listed, or when egress rules exist and policyTypes
/// is absent.
pub fn effective_policy_types(spec: Option<&Value>) -> (bool, bool) {
    match spec
        .and_then(|s| s.get("policyTypes"))
        .and_then(Value::as_array)
    {
        Some(types) if !types.is_empty() => {
            let has = |t: &str| types.iter().any(|x| x.as_str() == Some(t));
            (has("Ingress"), has("Egress"))
        }
        _ => {
            let egress = spec
                .and_then(|s| s.get("egress"))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            (true, egress)
        }
    }
}

fn name_of(obj: &Value, kind: &'static str) -> Result<String, ViewError> {
    super::meta::name(obj)
        .map(String::from)
        .ok_or(ViewError::NoName { kind })
}

fn namespace_of(obj: &Value, kind: &'static str, name: &str) -> Result<String, ViewError> {
    super::meta::namespace(obj)
        .map(String::from)
        .ok_or_else(|| ViewError::NoNamespace {
            kind,
            name: name.to_string(),
        })
}

/// What the view needs of a policy object, cut down as it arrives from a
/// watch: `apiVersion`, `kind`, name, namespace and spec(s). Annotations,
/// managedFields, status and the rest go: an adversarial review filled the
/// cache with 800 policies carrying 250 KB annotations each. Ownership of
/// the baseline (`baseline::is_ours`, which reads managedFields and
/// annotations) is decided here, before they go: the slim copy of netpol-
/// guard's own baseline keeps its managed-by label and nothing else that
/// would need proof; any other policy loses that label, so it can never
/// pass for the baseline afterwards.
pub fn slim_policy(obj: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["apiVersion", "kind", "spec", "specs"] {
        if let Some(v) = obj.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut meta = serde_json::Map::new();
    for key in ["name", "namespace"] {
        if let Some(v) = obj.pointer(&format!("/metadata/{key}")) {
            meta.insert(key.into(), v.clone());
        }
    }
    if crate::baseline::is_ours(obj) {
        meta.insert(
            "labels".into(),
            serde_json::json!({crate::baseline::MANAGED_BY_KEY: crate::baseline::MANAGED_BY_VALUE}),
        );
    }
    out.insert("metadata".into(), Value::Object(meta));
    Value::Object(out)
}

/// A workload object as the view keeps it, with its namespace: `None` for
/// one judged at its owner (a Deployment's ReplicaSets, a workload
/// controller's or a `controllerKinds` kind's Pods), or one whose pods
/// cannot be read.
pub fn known_workload(
    kind: WorkloadKind,
    obj: &Value,
    controller_kinds: &[crate::config::ControllerKind],
) -> Option<(String, KnownWorkload)> {
    if workload::judged_at_owner(kind, obj, controller_kinds) {
        return None;
    }
    let ns = super::meta::namespace(obj)?;
    // A manifest's Job may be named by `generateName` (`migrate-*`).
    let name = match super::meta::name(obj) {
        Some(name) => name.to_string(),
        None => format!(
            "{}*",
            obj.pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .filter(|g| !g.is_empty())?
        ),
    };
    let pods = workload::pod_shape(kind, obj).ok()?;
    Some((ns.to_string(), KnownWorkload { kind, name, pods }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn nearest_policy_is_the_one_with_fewest_unmet_requirements_among_those_that_grant() {
        let mut v = ClusterView::new();
        let ingress = json!([{"from": [{"podSelector": {}}]}]);
        for (name, selector) in [
            (
                "far",
                json!({"matchLabels": {"app": "web", "tier": "front", "env": "prod"}}),
            ),
            (
                "near",
                json!({"matchLabels": {"app": "web", "tier": "back"}}),
            ),
            ("also-near", json!({"matchLabels": {"app": "web"}})),
        ] {
            v.add(&np(
                name,
                json!({"podSelector": selector, "ingress": ingress}),
            ))
            .unwrap();
        }
        // Selects the pods exactly, but only isolates: never the nearest.
        v.add(&np(
            "isolate",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ))
        .unwrap();
        let pods = l(&[("app", "api"), ("tier", "back")]);
        let n = v
            .nearest_policy("ns", &pods, &UnknownKeys::new(), None)
            .unwrap();
        // "near" and "also-near" both miss app=web; "near" meets tier=back.
        assert_eq!(n.policy.name, "near");
        assert_eq!(n.unmet, ["app=web"]);
        assert!(
            v.nearest_policy("elsewhere", &pods, &UnknownKeys::new(), None)
                .is_none()
        );
        assert_eq!(v.policy_objects("ns"), 4);
    }

    #[test]
    fn rule_less_policies_cover_specific_pods_and_only_isolate_the_whole_namespace() {
        let mut v = ClusterView::new();
        let both = ["Ingress", "Egress"];
        v.add(&np(
            "deny-all",
            json!({"podSelector": {}, "policyTypes": both}),
        ))
        .unwrap();
        v.add(&np(
            "not-web",
            json!({"podSelector": {"matchExpressions": [
                {"key": "app", "operator": "NotIn", "values": ["web"]}]}, "policyTypes": both}),
        ))
        .unwrap();
        v.add(&np(
            "quiet",
            json!({"podSelector": {"matchLabels": {"app": "quiet"}}, "policyTypes": ["Egress"]}),
        ))
        .unwrap();
        // The two namespace-wide ones only isolate; "quiet" covers.
        assert_eq!(v.isolating_policies("ns"), 2);
        let cov = |v: &ClusterView, labels: &[(&str, &str)], need| {
            let c = v.coverage("ns", &l(labels), &UnknownKeys::new(), None, need);
            (
                c.ingress.map(|p| p.name.clone()),
                c.egress.map(|p| p.name.clone()),
            )
        };
        assert_eq!(
            cov(&v, &[("app", "quiet")], Directions::Both),
            (None, Some("quiet".to_string()))
        );
        assert_eq!(cov(&v, &[("app", "api")], Directions::Any), (None, None));
        // netpol-guard's own baseline policies are the admin's, in every
        // namespace: namespace-wide ones only isolate even with rules, and
        // only one that selects specific pods counts (an extra policy).
        let ours = |name: &str, spec: Value| {
            let mut p = np(name, spec);
            p["metadata"]["labels"] =
                json!({crate::baseline::MANAGED_BY_KEY: crate::baseline::MANAGED_BY_VALUE});
            p
        };
        let egress_to_all = json!([{"to": [{"podSelector": {}}]}]);
        v.add(&ours(
            crate::baseline::ALLOW_DNS,
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": egress_to_all}),
        ))
        .unwrap();
        assert_eq!(v.isolating_policies("ns"), 3);
        assert_eq!(cov(&v, &[("app", "api")], Directions::Any), (None, None));
        let mut specific = ours(
            crate::baseline::ALLOW_DNS,
            json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"], "egress": egress_to_all}),
        );
        specific["metadata"]["namespace"] = json!("other");
        v.add(&specific).unwrap();
        assert_eq!(v.isolating_policies("other"), 0);
        let c = v.coverage(
            "other",
            &l(&[("app", "api")]),
            &UnknownKeys::new(),
            None,
            Directions::Egress,
        );
        assert_eq!(
            c.egress.map(|p| p.name.as_str()),
            Some(crate::baseline::ALLOW_DNS)
        );
    }

    fn np(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec})
    }

    fn covered_by(view: &ClusterView, labels: &Labels, need: Directions) -> Option<String> {
        let c = view.coverage("ns", labels, &UnknownKeys::new(), None, need);
        let first = match need {
            Directions::Egress => c.egress,
            _ => c.ingress.or(c.egress),
        };
        c.satisfies(need)
            .then(|| first.map(|p| p.name.clone()).unwrap_or_default())
    }

    #[test]
    fn policy_without_rules_or_baseline_does_not_cover() {
        let mut v = ClusterView::new();
        v.add(&np(
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ))
        .unwrap();
        let mut base = np(
            "netpol-guard-allow-dns",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}),
        );
        base["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "netpol-guard"});
        v.add(&base).unwrap();
        assert_eq!(covered_by(&v, &l(&[("app", "x")]), Directions::Any), None);
        assert_eq!(v.isolating_policies("ns"), 2);
        assert_eq!(v.policy_count(), 2);
        // The label alone proves nothing: under another name, or written
        // by someone else (managedFields), it is an ordinary policy.
        let mut impostor = base.clone();
        impostor["metadata"]["name"] = json!("allow-egress");
        let mut squatter = base.clone();
        squatter["metadata"]["annotations"] = json!({"netpol-guard.io/config-hash": "0"});
        squatter["metadata"]["managedFields"] = json!([{"manager": "kubectl-client-side-apply",
            "operation": "Update", "fieldsV1": {"f:spec": {"f:egress": {}}}}]);
        for (what, obj) in [("impostor", impostor), ("squatter", squatter)] {
            let mut v = ClusterView::new();
            v.add(&obj).unwrap();
            assert_eq!(
                covered_by(&v, &l(&[("app", "x")]), Directions::Any).as_deref(),
                obj["metadata"]["name"].as_str(),
                "{what}"
            );
        }
    }

    #[test]
    fn slim_policies_keep_what_judging_reads_and_settle_ownership_on_arrival() {
        let mut ours = np(
            "netpol-guard-default-deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        );
        ours["metadata"]["labels"] =
            json!({"app.kubernetes.io/managed-by": "netpol-guard", "x": "y"});
        ours["metadata"]["annotations"] =
            json!({"netpol-guard.io/config-hash": "h", "big": "a".repeat(250_000)});
        ours["metadata"]["managedFields"] = json!([{"manager": "netpol-guard", "operation": "Apply",
            "fieldsV1": {"f:spec": {"f:podSelector": {}}}}]);
        ours["status"] = json!({});
        let slim = slim_policy(&ours);
        assert_eq!(
            slim,
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "netpol-guard-default-deny", "namespace": "ns",
                    "labels": {"app.kubernetes.io/managed-by": "netpol-guard"}},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})
        );
        assert!(crate::baseline::is_ours(&slim));
        // A squatter's copy loses the label: never a baseline later.
        let mut squatter = ours.clone();
        squatter["metadata"]["managedFields"][0]["manager"] = json!("kubectl");
        let slim = slim_policy(&squatter);
        assert!(slim["metadata"].get("labels").is_none());
        assert!(!crate::baseline::is_ours(&slim));
        assert!(serde_json::to_string(&slim).unwrap().len() < 300);
    }

    #[test]
    fn effective_policy_types_follow_kubernetes() {
        assert_eq!(effective_policy_types(Some(&json!({}))), (true, false));
        assert_eq!(
            effective_policy_types(Some(&json!({"egress": [{}]}))),
            (true, true)
        );
        assert_eq!(
            effective_policy_types(Some(&json!({"policyTypes": ["Egress"], "ingress": [{}]}))),
            (false, true)
        );
        assert_eq!(effective_policy_types(None), (true, false));
    }

    #[test]
    fn ingress_rules_ignored_when_policy_types_exclude_ingress() {
        let mut v = ClusterView::new();
        v.add(&np(
            "p",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}]}),
        ))
        .unwrap();
        assert_eq!(covered_by(&v, &l(&[]), Directions::Any), None);
    }

    #[test]
    fn directions_are_honoured_across_policies() {
        let mut v = ClusterView::new();
        v.add(&np(
            "in",
            json!({"podSelector": {"matchLabels": {"app": "a"}},
            "ingress": [{"from": [{"podSelector": {}}]}]}),
        ))
        .unwrap();
        let a = l(&[("app", "a")]);
        assert_eq!(covered_by(&v, &a, Directions::Any).as_deref(), Some("in"));
        assert_eq!(
            covered_by(&v, &a, Directions::Ingress).as_deref(),
            Some("in")
        );
        assert_eq!(covered_by(&v, &a, Directions::Egress), None);
        assert_eq!(covered_by(&v, &a, Directions::Both), None);
        v.add(&np(
            "out",
            json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}]}),
        ))
        .unwrap();
        assert!(covered_by(&v, &a, Directions::Both).is_some());
        assert_eq!(
            covered_by(&v, &a, Directions::Egress).as_deref(),
            Some("out")
        );
    }

    #[test]
    fn index_finds_policies_by_any_label_and_unindexed_ones() {
        let mut v = ClusterView::new();
        for i in 0..100 {
            v.add(&np(
                &format!("p{i}"),
                json!({"podSelector": {"matchLabels": {"app": format!("a{i}"), "tier": "web"}},
                "ingress": [{}]}),
            ))
            .unwrap();
        }
        v.add(&np("expr", json!({"podSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["t", "u"]}]},
            "ingress": [{}]}))).unwrap();
        assert_eq!(
            covered_by(&v, &l(&[("app", "a42"), ("tier", "web")]), Directions::Any).as_deref(),
            Some("p42")
        );
        assert_eq!(
            covered_by(&v, &l(&[("app", "a42")]), Directions::Any),
            None,
            "matchLabels are ANDed"
        );
        for team in ["t", "u"] {
            let pod = l(&[("app", "a1"), ("team", team)]);
            assert_eq!(
                covered_by(&v, &pod, Directions::Any).as_deref(),
                Some("expr")
            );
        }
        assert_eq!(covered_by(&v, &l(&[("team", "v")]), Directions::Any), None);
        assert_eq!(
            covered_by(&v, &l(&[("app", "zzz"), ("tier", "web")]), Directions::Any),
            None
        );
    }

    #[test]
    fn unindexed_selectors_are_still_evaluated() {
        let mut v = ClusterView::new();
        v.add(&np(
            "notin",
            json!({"podSelector": {"matchExpressions": [
            {"key": "app", "operator": "NotIn", "values": ["a1"]}]}, "ingress": [{}]}),
        ))
        .unwrap();
        assert_eq!(
            covered_by(&v, &l(&[("app", "a2")]), Directions::Any).as_deref(),
            Some("notin")
        );
        assert_eq!(
            covered_by(&v, &l(&[]), Directions::Any).as_deref(),
            Some("notin")
        );
        assert_eq!(covered_by(&v, &l(&[("app", "a1")]), Directions::Any), None);
    }

    #[test]
    fn other_namespaces_never_cover() {
        let mut v = ClusterView::new();
        let mut p = np("p", json!({"podSelector": {}, "ingress": [{}]}));
        p["metadata"]["namespace"] = json!("other");
        v.add(&p).unwrap();
        assert_eq!(covered_by(&v, &l(&[]), Directions::Any), None);
    }

    /// Issue 13: a Cilium policy on a label the pods' controller sets
    /// (`k8s:` prefix and all) counts only through `Exists`, like a
    /// NetworkPolicy, and is reported as the one that would have counted.
    #[test]
    fn a_cilium_policy_on_a_controller_label_counts_only_through_exists() {
        let cnp = |name: &str, op: &str| {
            json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"endpointSelector": {"matchLabels": {"k8s:app": "a"},
                    "matchExpressions": [{"key": "k8s:controller-revision-hash", "operator": op}]},
                    "egress": [{"toEndpoints": [{}]}]}})
        };
        let pods = l(&[("app", "a")]);
        let unknown: UnknownKeys = ["controller-revision-hash".to_string()].into();
        let mut v = ClusterView::new();
        v.add(&cnp("absent", "DoesNotExist")).unwrap();
        let c = v.coverage("ns", &pods, &unknown, None, Directions::Any);
        assert!(!c.satisfies(Directions::Any));
        assert_eq!(
            c.undecided(Directions::Any).map(|p| p.name.as_str()),
            Some("absent")
        );
        assert!(
            c.undecided(Directions::Ingress).is_none(),
            "it grants egress only"
        );
        // Not knowing the label is there, it would have covered them.
        assert!(
            v.coverage("ns", &pods, &UnknownKeys::new(), None, Directions::Any)
                .satisfies(Directions::Any)
        );
        v.add(&cnp("present", "Exists")).unwrap();
        let c = v.coverage("ns", &pods, &unknown, None, Directions::Any);
        assert_eq!(c.egress.map(|p| p.name.as_str()), Some("present"));
    }

    #[test]
    fn cilium_policies_cover_with_prefixes_and_specs() {
        let mut v = ClusterView::new();
        v.add(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns", "labels": {"team": "pay"}}})).unwrap();
        v.add(&json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "cnp", "namespace": "ns"},
            "specs": [{"endpointSelector": {"matchLabels": {"k8s:app": "a"}}, "egress": [{"toEndpoints": [{}]}]}]})).unwrap();
        v.add(&json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "ccnp"},
            "spec": {"endpointSelector": {"matchLabels": {"any:app": "b", "k8s:io.kubernetes.pod.namespace": "ns"}},
                "ingress": [{"fromEntities": ["cluster"]}]}})).unwrap();
        v.add(&json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "by-ns-label"},
            "spec": {"endpointSelector": {"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.team": "pay", "app": "c"}},
                "ingress": [{"fromEntities": ["cluster"]}]}})).unwrap();
        assert_eq!(
            covered_by(&v, &l(&[("app", "a")]), Directions::Any).as_deref(),
            Some("cnp")
        );
        assert_eq!(
            covered_by(&v, &l(&[("app", "b")]), Directions::Any).as_deref(),
            Some("ccnp")
        );
        assert_eq!(
            covered_by(&v, &l(&[("app", "c")]), Directions::Any).as_deref(),
            Some("by-ns-label")
        );
        assert_eq!(covered_by(&v, &l(&[("app", "d")]), Directions::Any), None);
        // The CCNP selects namespace ns only.
        let other = v.coverage(
            "other",
            &l(&[("app", "b")]),
            &UnknownKeys::new(),
            None,
            Directions::Any,
        );
        assert!(!other.satisfies(Directions::Any));
    }

    #[test]
    fn bad_policies_are_errors() {
        let mut v = ClusterView::new();
        assert!(
            v.add(&np(
                "x",
                json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}})
            ))
            .is_err()
        );
        assert!(v.add(&json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"}})).is_err());
        assert!(
            !v.add(&json!({"apiVersion": "v1", "kind": "ConfigMap"}))
                .unwrap()
        );
    }
}

#[cfg(test)]
mod live_update_tests {
    use super::*;
    use serde_json::json;

    fn np(ns: &str, name: &str, app: &str) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"app": app}}, "ingress": [{}]}})
    }

    fn covers(v: &ClusterView, ns: &str, app: &str) -> bool {
        let labels: Labels = [("app".to_string(), app.to_string())].into();
        v.coverage(ns, &labels, &UnknownKeys::new(), None, Directions::Any)
            .satisfies(Directions::Any)
    }

    #[test]
    fn set_namespace_replaces_labels_and_policies_of_that_namespace_only() {
        let mut v = ClusterView::new();
        v.add(&np("a", "p1", "x")).unwrap();
        v.add(&np("b", "p2", "y")).unwrap();
        let before = v.clone();
        let labels: Labels = [("team".to_string(), "t".to_string())].into();
        let new = [np("a", "p3", "z")];
        let meta = NamespaceMeta {
            labels: labels.clone(),
            terminating: true,
        };
        assert!(v.set_namespace("a", Some(meta), new.iter()).is_empty());
        assert!(v.is_terminating("a"));
        assert!(!v.is_terminating("b"));
        assert!(!covers(&v, "a", "x"), "old policy gone");
        assert!(covers(&v, "a", "z"));
        assert!(covers(&v, "b", "y"), "other namespaces untouched");
        assert_eq!(v.namespace_labels("a"), Some(&labels));
        assert_eq!(v.policy_count(), 2);
        // The clone taken before is unaffected (copy on write).
        assert!(covers(&before, "a", "x"));
        // Metadata alone can be replaced, keeping the policies.
        v.set_namespace_meta("a", Some(NamespaceMeta::default()));
        assert!(!v.is_terminating("a"));
        assert!(covers(&v, "a", "z"));
        // A namespace with no labels and no policies disappears.
        v.set_namespace("a", None, std::iter::empty());
        assert_eq!(v.namespace_labels("a"), None);
        assert_eq!(v.policy_count(), 1);
    }

    /// Issue 14: the live view publishes a clone after every event. A clone
    /// shares the maps (O(1), whatever the number of namespaces), and
    /// changing one namespace of it leaves every other namespace's entry
    /// shared with the original, which does not change.
    #[test]
    fn clones_share_the_maps_and_a_change_copies_only_its_namespace() {
        let mut v = ClusterView::new();
        for i in 0..1_000 {
            v.add(&np(&format!("ns-{i}"), "p", "x")).unwrap();
        }
        let (_, w) = known_workload(
            WorkloadKind::Deployment,
            &json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "api", "namespace": "ns-1"},
                "spec": {"template": {"metadata": {"labels": {"app": "api"}}}}}),
            &[],
        )
        .unwrap();
        v.set_workloads("ns-1", vec![Arc::new(w)]);
        let before = v.clone();
        assert!(before.namespaces.ptr_eq(&v.namespaces));
        assert!(before.workloads.ptr_eq(&v.workloads));

        v.set_namespace("ns-0", None, [np("ns-0", "q", "y")].iter());
        v.set_workloads("ns-2", Vec::new());
        assert!(!covers(&v, "ns-0", "x") && covers(&v, "ns-0", "y"));
        assert!(covers(&before, "ns-0", "x") && !covers(&before, "ns-0", "y"));
        for i in 1..1_000 {
            let ns = format!("ns-{i}");
            let (old, new) = (&before.namespaces.get(&ns), &v.namespaces.get(&ns));
            assert!(
                old.zip(*new).is_some_and(|(a, b)| Arc::ptr_eq(a, b)),
                "{ns} is shared"
            );
        }
        assert!(Arc::ptr_eq(&before.workloads["ns-1"], &v.workloads["ns-1"]));
        assert_eq!(v.workloads("ns-1"), None, "workloads not known");
        assert_eq!(v.workload_count(), 1);
    }

    #[test]
    fn completeness_is_only_what_the_source_says_and_focus_drops_it() {
        let mut v = ClusterView::new();
        assert!(!v.namespaces_complete(), "a new view knows nothing");
        v.add(&np("policy-only", "p", "x")).unwrap();
        let labels: Labels = [("env".to_string(), "prod".to_string())].into();
        let meta = NamespaceMeta {
            labels: labels.clone(),
            terminating: false,
        };
        v.set_namespace("a", Some(meta), std::iter::empty());
        v.set_namespaces_complete(true);
        // Rebuilding a namespace (a watch event) keeps it.
        v.set_namespace("b", Some(NamespaceMeta::default()), std::iter::empty());
        assert!(v.namespaces_complete());
        // Only namespaces whose Namespace object was seen are listed.
        let mut names: Vec<(&str, &Labels)> = v.namespaces().collect();
        names.sort();
        assert_eq!(names, [("a", &labels), ("b", &Labels::new())]);
        assert!(
            !v.focused("a").namespaces_complete(),
            "one namespace is not all"
        );
        v.set_namespaces_complete(false);
        assert!(!v.namespaces_complete());
    }

    #[test]
    fn set_namespace_reports_bad_policies_and_keeps_the_rest() {
        let mut v = ClusterView::new();
        let bad = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "bad", "namespace": "a"},
            "spec": {"podSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}});
        let errors = v.set_namespace("a", None, [bad, np("a", "ok", "x")].iter());
        assert_eq!(errors.len(), 1);
        assert!(covers(&v, "a", "x"));
    }

    #[test]
    fn set_clusterwide_replaces_ccnps() {
        let mut v = ClusterView::new();
        let ccnp = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "c"}, "spec": {"endpointSelector": {"matchLabels": {"app": "x"}},
                "ingress": [{"fromEntities": ["cluster"]}]}});
        v.set_clusterwide([ccnp].iter());
        assert!(covers(&v, "any", "x"));
        assert_eq!(v.policy_count(), 1);
        v.set_clusterwide(std::iter::empty());
        assert!(!covers(&v, "any", "x"));
    }
}

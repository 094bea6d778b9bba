//! The read-only cluster view the engine judges against: namespaces with their
//! labels, and the policies that can cover pods, compiled and indexed per
//! namespace so a decision never scans the cluster.
//!
//! Built once (from `--state` manifests, or later from watches) and shared
//! behind an `Arc`; a decision only reads it.

use std::collections::HashMap;

use serde_json::Value;

use crate::config::Directions;
use crate::selector::{Labels, Selector, SelectorError};

/// Label that marks the policies netpol-guard generates itself.
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "netpol-guard";

/// Which API kind a covering policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    NetworkPolicy,
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NetworkPolicy => "NetworkPolicy",
            Self::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            Self::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        }
    }
}

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
#[derive(Debug, Default)]
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

#[derive(Debug, Default)]
struct NamespaceEntry {
    labels: Option<Labels>,
    kube: PolicyIndex,
    cilium: PolicyIndex,
    /// NetworkPolicies that select pods but cannot cover them (baseline, no rules).
    isolating: usize,
}

/// What covers a set of pods, per direction.
#[derive(Debug, Default, Clone, Copy)]
pub struct Coverage<'a> {
    pub ingress: Option<&'a PolicyEntry>,
    pub egress: Option<&'a PolicyEntry>,
}

impl Coverage<'_> {
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

/// The cluster as the engine sees it.
#[derive(Debug, Default)]
pub struct ClusterView {
    namespaces: HashMap<String, NamespaceEntry>,
    clusterwide: PolicyIndex,
    policy_count: usize,
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
        match (api_version, kind) {
            ("v1", "Namespace") => {
                let name = name_of(obj, "Namespace")?;
                let labels = labels_of(obj);
                self.namespaces.entry(name).or_default().labels = Some(labels);
            }
            ("networking.k8s.io/v1", "NetworkPolicy") => self.add_network_policy(obj)?,
            ("cilium.io/v2", "CiliumNetworkPolicy") => {
                self.add_cilium(obj, PolicyKind::CiliumNetworkPolicy)?
            }
            ("cilium.io/v2", "CiliumClusterwideNetworkPolicy") => {
                self.add_cilium(obj, PolicyKind::CiliumClusterwideNetworkPolicy)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn add_network_policy(&mut self, obj: &Value) -> Result<(), ViewError> {
        let kind = "NetworkPolicy";
        let name = name_of(obj, kind)?;
        let ns = namespace_of(obj, kind, &name)?;
        let spec = obj.get("spec");
        let selector =
            Selector::from_value(spec.and_then(|s| s.get("podSelector"))).map_err(|source| {
                ViewError::Selector {
                    kind,
                    name: name.clone(),
                    source,
                }
            })?;
        let (ingress_type, egress_type) = effective_policy_types(spec);
        let has = |k: &str| {
            spec.and_then(|s| s.get(k))
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        };
        let entry = PolicyEntry {
            kind: PolicyKind::NetworkPolicy,
            name,
            selector,
            grants_ingress: ingress_type && has("ingress"),
            grants_egress: egress_type && has("egress"),
        };
        self.policy_count += 1;
        let nsentry = self.namespaces.entry(ns).or_default();
        if is_baseline(obj) || !(entry.grants_ingress || entry.grants_egress) {
            nsentry.isolating += 1;
        } else {
            nsentry.kube.push(entry);
        }
        Ok(())
    }

    fn add_cilium(&mut self, obj: &Value, kind: PolicyKind) -> Result<(), ViewError> {
        let name = name_of(obj, kind.as_str())?;
        // Cilium accepts `spec`, `specs`, or both in one object.
        let specs = obj.get("spec").filter(|s| s.is_object()).into_iter().chain(
            obj.get("specs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
        let ns = match kind {
            PolicyKind::CiliumClusterwideNetworkPolicy => None,
            _ => Some(namespace_of(obj, kind.as_str(), &name)?),
        };
        self.policy_count += 1;
        if is_baseline(obj) {
            return Ok(());
        }
        for spec in specs {
            // Node-selecting specs (nodeSelector) protect hosts, not pods.
            let Some(sel) = spec.get("endpointSelector") else {
                continue;
            };
            let selector = Selector::from_value(Some(sel))
                .map_err(|source| ViewError::Selector {
                    kind: kind.as_str(),
                    name: name.clone(),
                    source,
                })?
                .map_keys(strip_cilium_source);
            let has = |k: &str| {
                spec.get(k)
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            };
            let entry = PolicyEntry {
                kind,
                name: name.clone(),
                selector,
                grants_ingress: has("ingress"),
                grants_egress: has("egress"),
            };
            if !(entry.grants_ingress || entry.grants_egress) {
                continue;
            }
            match &ns {
                Some(ns) => self
                    .namespaces
                    .entry(ns.clone())
                    .or_default()
                    .cilium
                    .push(entry),
                None => self.clusterwide.push(entry),
            }
        }
        Ok(())
    }

    /// Labels of a namespace, if the view knows it.
    pub fn namespace_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces.get(ns).and_then(|n| n.labels.as_ref())
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
        self.policy_count
    }

    /// Number of policies in `ns` that select pods but grant nothing
    /// (baseline default-deny, or policies with no rules).
    pub fn isolating_policies(&self, ns: &str) -> usize {
        self.namespaces.get(ns).map_or(0, |n| n.isolating)
    }

    /// Which policies grant traffic to pods with `labels` in namespace `ns`,
    /// stopping as soon as `need` is satisfied.
    pub fn coverage(
        &self,
        ns: &str,
        labels: &Labels,
        pod_sa: Option<&str>,
        need: Directions,
    ) -> Coverage<'_> {
        let mut cov = Coverage::default();
        let nsentry = self.namespaces.get(ns);
        if let Some(n) = nsentry
            && scan(n.kube.candidates(labels), labels, need, &mut cov)
        {
            return cov;
        }
        let has_cilium = nsentry.is_some_and(|n| !n.cilium.entries.is_empty())
            || !self.clusterwide.entries.is_empty();
        if has_cilium {
            let cl = cilium_labels(ns, labels, nsentry.and_then(|n| n.labels.as_ref()), pod_sa);
            if let Some(n) = nsentry
                && scan(n.cilium.candidates(&cl), &cl, need, &mut cov)
            {
                return cov;
            }
            scan(self.clusterwide.candidates(&cl), &cl, need, &mut cov);
        }
        cov
    }
}

/// Records grants from matching candidates; true once `need` is satisfied.
fn scan<'a>(
    candidates: impl Iterator<Item = &'a PolicyEntry>,
    labels: &Labels,
    need: Directions,
    cov: &mut Coverage<'a>,
) -> bool {
    if cov.satisfies(need) {
        return true;
    }
    for p in candidates {
        let wants_ingress = cov.ingress.is_none() && p.grants_ingress;
        let wants_egress = cov.egress.is_none() && p.grants_egress;
        if (wants_ingress || wants_egress) && p.selector.matches(labels) {
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
fn cilium_labels(
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
fn strip_cilium_source(key: &str) -> String {
    key.strip_prefix("k8s:")
        .or_else(|| key.strip_prefix("any:"))
        .unwrap_or(key)
        .to_string()
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

/// Whether a policy is one netpol-guard generated (its baseline).
pub fn is_baseline(obj: &Value) -> bool {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY_KEY))
        .and_then(Value::as_str)
        == Some(MANAGED_BY_VALUE)
}

fn name_of(obj: &Value, kind: &'static str) -> Result<String, ViewError> {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .ok_or(ViewError::NoName { kind })
}

fn namespace_of(obj: &Value, kind: &'static str, name: &str) -> Result<String, ViewError> {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .ok_or_else(|| ViewError::NoNamespace {
            kind,
            name: name.to_string(),
        })
}

/// String labels of an object (non-string values are ignored).
pub fn labels_of(obj: &Value) -> Labels {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
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

    fn np(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "ns"}, "spec": spec})
    }

    fn covered_by(view: &ClusterView, labels: &Labels, need: Directions) -> Option<String> {
        let c = view.coverage("ns", labels, None, need);
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
            "dns",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}),
        );
        base["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "netpol-guard"});
        v.add(&base).unwrap();
        assert_eq!(covered_by(&v, &l(&[("app", "x")]), Directions::Any), None);
        assert_eq!(v.isolating_policies("ns"), 2);
        assert_eq!(v.policy_count(), 2);
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
        let other = v.coverage("other", &l(&[("app", "b")]), None, Directions::Any);
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

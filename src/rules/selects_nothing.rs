//! `policy-selects-nothing`: a policy whose pod selector matches none of the
//! workloads it could apply to, the silent result of a label typo
//! (`app: ledgr`). The policy exists and enforces nothing: the pods it was
//! written for stay open, or, under a default-deny, stay blocked.
//!
//! Judged by `check` and `audit` only (`engine::decide_existing`): the
//! webhook never raises it, since applying a policy before its workload is
//! the order we recommend. A NetworkPolicy or CiliumNetworkPolicy is judged
//! against the workloads of its namespace, and only when there is at least
//! one; a CiliumClusterwideNetworkPolicy against those of every namespace.
//! An empty selector never raises it, and neither does a selector that may
//! select a workload's pods through a label whose value nobody knows before
//! the pods exist (`Selects::Unknown`: it might match).
//!
//! The matching is [`nearest_miss`], a pure function of a compiled selector
//! and the candidate pods; [`check`] reads the policy and the view.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::cluster::{
    ClusterView, KnownWorkload, PolicyKind, cilium_labels, meta, strip_cilium_source,
};
use crate::rules::netpol::finding;
use crate::rules::{Finding, MAX_WARNING_CHARS, RuleId};
use crate::selector::{
    self, LabelSelector, Labels, Miss, Operator, Selector, Selects, UnknownKeys,
};

/// Cilium's label for the cluster an endpoint runs in (cluster mesh):
/// netpol-guard does not know its value.
const CILIUM_CLUSTER: &str = "io.cilium.k8s.policy.cluster";
/// Cilium's prefix for the labels of an endpoint's namespace.
const CILIUM_NAMESPACE_LABELS: &str = "io.cilium.k8s.namespace.labels.";
/// The label the API server gives every Namespace (its name), whether or
/// not a manifest writes it.
const METADATA_NAME: &str = "kubernetes.io/metadata.name";

/// The pods of one workload as a selector sees them.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub namespace: &'a str,
    pub workload: &'a KnownWorkload,
    /// Their labels: the pod template's and those its controller sets with
    /// known values; for a Cilium selector also their namespace, its labels
    /// and their service account, under Cilium's keys.
    pub labels: Cow<'a, Labels>,
    /// Keys they carry with values not known in advance
    /// (`PodShape::unknown_labels`, and for Cilium the keys netpol-guard
    /// cannot know).
    pub unknown: Cow<'a, UnknownKeys>,
}

impl<'a> Candidate<'a> {
    /// A workload's pods as a NetworkPolicy's podSelector sees them.
    pub fn pods(namespace: &'a str, workload: &'a KnownWorkload) -> Self {
        Self {
            namespace,
            workload,
            labels: Cow::Borrowed(&workload.pods.labels),
            unknown: Cow::Borrowed(&workload.pods.unknown_labels),
        }
    }

    /// A workload's pods as a Cilium endpointSelector (keys without their
    /// `k8s:`/`any:` source) sees them: with their namespace, its labels
    /// (`None`: the namespace's labels are not known, so a selector key on
    /// one other than its name cannot be decided) and their service account.
    pub fn endpoints(
        namespace: &'a str,
        workload: &'a KnownWorkload,
        namespace_labels: Option<&Labels>,
        selector: &Selector,
    ) -> Self {
        let mut ns_labels = namespace_labels.cloned().unwrap_or_default();
        ns_labels
            .entry(METADATA_NAME.to_string())
            .or_insert_with(|| namespace.to_string());
        let labels = cilium_labels(
            namespace,
            &workload.pods.labels,
            Some(&ns_labels),
            workload.pods.service_account.as_deref(),
        );
        let mut unknown = workload.pods.unknown_labels.clone();
        unknown.insert(CILIUM_CLUSTER.to_string());
        if namespace_labels.is_none() {
            let known = format!("{CILIUM_NAMESPACE_LABELS}{METADATA_NAME}");
            unknown.extend(
                selector
                    .keys()
                    .filter(|k| k.starts_with(CILIUM_NAMESPACE_LABELS) && *k != known)
                    .map(String::from),
            );
        }
        // A key is either known or unknown (`Selector::selects`).
        let labels = labels
            .into_iter()
            .filter(|(k, _)| !unknown.contains(k))
            .collect();
        Self {
            namespace,
            workload,
            labels: Cow::Owned(labels),
            unknown: Cow::Owned(unknown),
        }
    }

    /// `namespace/name`, as the message names the workload.
    fn who(&self) -> String {
        format!("{}/{}", self.namespace, self.workload.name)
    }
}

/// The candidate whose pods come nearest to being selected, and what they
/// lack.
#[derive(Debug, Clone)]
pub struct NearestMiss<'c, 's> {
    pub candidate: &'c Candidate<'c>,
    /// Every requirement the pods do not meet (at least one on a known label).
    pub misses: Vec<Miss<'s>>,
    /// The one the message names: one whose key the pods have with a
    /// similar value (a typo) if any, else the first on a known label.
    pub headline: usize,
    /// The value the pods have for the headline's key when it looks like
    /// what was meant (`did you mean app=ledger?`).
    pub suggestion: Option<String>,
    /// Whether the pods of any candidate have the headline's key: when
    /// none does, the nearest is only the first of equals, and the message
    /// says so.
    pub key_anywhere: bool,
}

impl NearestMiss<'_, '_> {
    fn headline(&self) -> Option<&Miss<'_>> {
        self.misses.get(self.headline)
    }
}

/// `None` when the selector selects, or may select, the pods of some
/// candidate (or is empty, or there is no candidate); else the candidate
/// that misses fewest requirements, a likely typo first, then by namespace,
/// kind (owners first) and name.
pub fn nearest_miss<'c, 's>(
    selector: &'s Selector,
    candidates: &'c [Candidate<'c>],
) -> Option<NearestMiss<'c, 's>> {
    if selector.is_empty() || candidates.is_empty() {
        return None;
    }
    let mut best: Option<(NearestMiss<'c, 's>, RankKey<'c>)> = None;
    for c in candidates {
        if selector.selects(&c.labels, &c.unknown) != Selects::No {
            return None;
        }
        let misses = selector.misses(&c.labels, &c.unknown);
        let known = |m: &Miss<'_>| !m.controller_set;
        let typo = misses
            .iter()
            .enumerate()
            .filter(|(_, m)| known(m))
            .filter_map(|(i, m)| similar_value(m, &c.labels).map(|(v, d)| (i, v, d)))
            .min_by_key(|(_, _, d)| *d);
        let (headline, suggestion, distance) = match typo {
            Some((i, v, d)) => (i, Some(v.to_string()), d),
            None => (misses.iter().position(known).unwrap_or(0), None, usize::MAX),
        };
        let key = RankKey {
            misses: misses.len(),
            distance,
            namespace: c.namespace,
            order: c.workload.report_order(),
        };
        let this = NearestMiss {
            candidate: c,
            misses,
            headline,
            suggestion,
            key_anywhere: false,
        };
        if best.as_ref().is_none_or(|(_, k)| key < *k) {
            best = Some((this, key));
        }
    }
    best.map(|(mut n, _)| {
        n.key_anywhere = n.headline().is_some_and(|m| {
            candidates
                .iter()
                .any(|c| c.labels.contains_key(m.key) || c.unknown.contains(m.key))
        });
        n
    })
}

/// How near a candidate is: fewer misses, then a closer typo, then a
/// stable order.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct RankKey<'a> {
    misses: usize,
    distance: usize,
    namespace: &'a str,
    order: (usize, &'a str),
}

/// For an `In` requirement (or `matchLabels` pair) on a key the pods have
/// with another value, that value and its edit distance to the nearest
/// wanted one, when it is near enough to be a typo: at most a third of the
/// wanted value's length (at least 1), or the same but for case.
fn similar_value<'l>(m: &Miss<'_>, labels: &'l Labels) -> Option<(&'l str, usize)> {
    if m.operator != Operator::In {
        return None;
    }
    let have = labels.get(m.key)?;
    m.values
        .iter()
        .filter_map(|want| {
            let d = edit_distance(want, have);
            let limit = (want.chars().count() / 3).max(1);
            (d <= limit || want.eq_ignore_ascii_case(have)).then_some(d)
        })
        .min()
        .map(|d| (have.as_str(), d))
}

/// Edit distance by characters, a swap of two neighbours counting as one
/// edit (optimal string alignment): `crat` is one edit from `cart`.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows of the table: two back, one back, current.
    let mut two: Vec<usize> = vec![0; b.len() + 1];
    let mut one: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (one[j] + 1).min(cur[j - 1] + 1).min(one[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(two[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut two, &mut one);
        std::mem::swap(&mut one, &mut cur);
    }
    one[b.len()]
}

/// `policy-selects-nothing` on one policy object (its CREATE or UPDATE as
/// `check` and `audit` judge it) against the workloads `view` holds: a
/// NetworkPolicy's podSelector or each CiliumNetworkPolicy endpointSelector
/// (of `spec` and of every `specs` entry) against its namespace's
/// workloads, a CiliumClusterwideNetworkPolicy's against every namespace's.
/// Nothing when those workloads are not known or there are none, for an
/// empty selector, a selector that cannot be read (reported elsewhere), a
/// Cilium spec with a nodeSelector instead of an endpointSelector, or one
/// that selects by a label source other than `k8s:`/`any:` (`reserved:`:
/// not pods).
pub fn check(policy: &Value, kind: PolicyKind, view: &ClusterView) -> Vec<Finding> {
    let workloads: Vec<(&str, &KnownWorkload)> = match kind {
        PolicyKind::CiliumClusterwideNetworkPolicy => match view.all_workloads() {
            Some(all) => all.collect(),
            None => return vec![],
        },
        _ => {
            let Some(ns) = meta::namespace(policy) else {
                return vec![];
            };
            match view.workloads(ns) {
                Some(list) => list.iter().map(|w| (ns, w.as_ref())).collect(),
                None => return vec![],
            }
        }
    };
    if workloads.is_empty() {
        return vec![];
    }
    let scope = match kind {
        PolicyKind::CiliumClusterwideNetworkPolicy => "in the cluster".to_string(),
        _ => format!("in {}", workloads[0].0),
    };
    let mut out = Vec::new();
    if kind == PolicyKind::NetworkPolicy {
        let raw = policy.pointer("/spec/podSelector");
        let Some((written, selector)) = read_selector(raw, |k| k.to_string()) else {
            return out;
        };
        let candidates: Vec<Candidate<'_>> = workloads
            .iter()
            .map(|(ns, w)| Candidate::pods(ns, w))
            .collect();
        if let Some(n) = nearest_miss(&selector, &candidates) {
            let at = Place {
                kind,
                field: "podSelector".to_string(),
                scope: &scope,
                workloads: candidates.len(),
            };
            out.push(raise(&at, &written, &n));
        }
        return out;
    }
    let specs = policy
        .get("spec")
        .filter(|s| s.is_object())
        .map(|s| (String::new(), s))
        .into_iter()
        .chain(
            policy
                .get("specs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(k, s)| (format!("specs[{k}] "), s)),
        );
    for (at, spec) in specs {
        let Some((written, selector)) =
            read_selector(spec.get("endpointSelector"), strip_cilium_source)
        else {
            continue;
        };
        if selector.keys().any(|k| k.contains(':')) {
            continue;
        }
        let candidates: Vec<Candidate<'_>> = workloads
            .iter()
            .map(|(ns, w)| Candidate::endpoints(ns, w, view.namespace_labels(ns), &selector))
            .collect();
        if let Some(n) = nearest_miss(&selector, &candidates) {
            let place = Place {
                kind,
                field: format!("{at}endpointSelector"),
                scope: &scope,
                workloads: candidates.len(),
            };
            out.push(raise(&place, &written, &n));
        }
    }
    out
}

/// The selector as written and compiled, keys rewritten by `key`; `None`
/// when absent, empty or unreadable.
fn read_selector(
    raw: Option<&Value>,
    key: impl Fn(&str) -> String,
) -> Option<(LabelSelector, Selector)> {
    let written = LabelSelector::deserialize(raw?).ok()?;
    let selector = Selector::compile(&written).ok()?.map_keys(key);
    (!selector.is_empty()).then_some((written, selector))
}

/// Where the finding is: the policy's kind, its selector field, and the
/// workloads it was judged against.
struct Place<'a> {
    kind: PolicyKind,
    field: String,
    scope: &'a str,
    workloads: usize,
}

fn raise(at: &Place<'_>, written: &LabelSelector, n: &NearestMiss<'_, '_>) -> Finding {
    finding(RuleId::PolicySelectsNothing, message(at, written, n)).with_detail(detail(at, n))
}

/// One line: the selector, how many workloads it matches none of, and the
/// nearest with the requirement it misses (`did you mean` for a typo).
fn message(at: &Place<'_>, written: &LabelSelector, n: &NearestMiss<'_, '_>) -> String {
    let who = n.candidate.who();
    let tail = match n.headline() {
        Some(m) => {
            let want = wanted(m);
            let have = n.candidate.labels.get(m.key);
            let mut t = match (&n.suggestion, have) {
                (Some(v), _) => format!(
                    "did you mean {k}={v}? {who} has {k}={v}, this policy wants {want}",
                    k = m.key
                ),
                (None, Some(v)) => {
                    format!("nearest: {who} has {}={v}, this policy wants {want}", m.key)
                }
                (None, None) if n.key_anywhere => {
                    format!(
                        "nearest: {who} has no {} label, this policy wants {want}",
                        m.key
                    )
                }
                (None, None) => format!(
                    "nearest: {who}; no workload has a {} label, this policy wants {want}",
                    m.key
                ),
            };
            if n.misses.len() > 1 {
                t.push_str(&format!(" (and {} more)", n.misses.len() - 1));
            }
            t
        }
        None => format!("nearest: {who}"),
    };
    let plural = if at.workloads == 1 { "" } else { "s" };
    let line = |sel: &str| {
        format!(
            "policy-selects-nothing: {} {sel}matches no pods of the {} workload{plural} {}; {tail}",
            at.field, at.workloads, at.scope
        )
    };
    let described = selector::describe(written);
    let full = line(&format!("{described} "));
    if full.chars().count() <= MAX_WARNING_CHARS {
        return full;
    }
    let short = line(&format!("{} ", crate::text::truncate_chars(&described, 40)));
    if short.chars().count() <= MAX_WARNING_CHARS {
        return short;
    }
    line("")
}

/// What a requirement wants, in words that fit after "this policy wants".
fn wanted(m: &Miss<'_>) -> String {
    match m.operator {
        Operator::In | Operator::NotIn => m.text.clone(),
        Operator::Exists => format!("a {} label", m.key),
        Operator::DoesNotExist => format!("no {} label", m.key),
    }
}

/// Why it matters, the nearest workload's labels, and a fix.
fn detail(at: &Place<'_>, n: &NearestMiss<'_, '_>) -> String {
    let w = n.candidate.workload;
    let field = at.field.rsplit(' ').next().unwrap_or("podSelector");
    let mut labels = selector::format_labels(&w.pods.labels);
    if !w.pods.unknown_labels.is_empty() {
        let keys: Vec<&str> = w.pods.unknown_labels.iter().map(String::as_str).collect();
        labels.push_str(&format!(
            " (and, set by its controller with values not known in advance: {})",
            keys.join(", ")
        ));
    }
    let unmet: Vec<String> = n
        .misses
        .iter()
        .map(|m| {
            if m.controller_set {
                format!("{} (set by its controller)", m.text)
            } else {
                m.text.clone()
            }
        })
        .collect();
    let who = n.candidate.who();
    let wkind = w.kind.as_str();
    // The nearest workload is the one meant only when a typo says so.
    let fix = match (example(field, n), &n.suggestion) {
        (Some(yaml), Some(_)) => {
            format!("Fix: correct the selector, e.g.\n{yaml}\n(or the labels of the pod template).")
        }
        (Some(yaml), None) => format!(
            "Fix: make the selector match the labels of the pods it is for (or those pods' \
             template match it). If it is meant for {wkind} {who}:\n{yaml}"
        ),
        (None, _) => "Fix: make the selector match the labels of the pods it is for (or those \
                      pods' template match it)."
            .to_string(),
    };
    format!(
        "A {kind} applies only to the pods its {field} selects, and this one selects none of \
         the pods of the {count} workload{plural} {scope}: it enforces nothing. The pods it was \
         written for are not isolated by it (they stay open), and under a default-deny, such as \
         netpol-guard's baseline, the traffic it should allow them stays blocked. The usual \
         cause is a typo or a renamed label.\nThe nearest workload, {wkind} {who}, has pod \
         labels {labels}; they do not meet {unmet}.\n{fix}\nA policy applied before its \
         workload is fine (the webhook does not report it): check and audit report it until \
         the workload is among what they read; policy-selects-nothing: off in the config \
         silences it.",
        kind = at.kind.as_str(),
        count = at.workloads,
        plural = if at.workloads == 1 { "" } else { "s" },
        scope = at.scope,
        unmet = unmet.join(", "),
    )
}

/// A selector that selects the nearest workload's pods: the keys the
/// selector wants present (`matchLabels`, `In`, `Exists`) with the values
/// the pods have, else up to three of the pods' own labels. `None` when
/// the pods have none of them.
fn example(field: &str, n: &NearestMiss<'_, '_>) -> Option<String> {
    let c = n.candidate;
    let wanted_keys: Vec<&str> = n
        .misses
        .iter()
        .filter(|m| matches!(m.operator, Operator::In | Operator::Exists))
        .map(|m| m.key)
        .collect();
    let mut pairs: BTreeMap<&str, &str> = wanted_keys
        .iter()
        .filter_map(|k| c.labels.get(*k).map(|v| (*k, v.as_str())))
        .collect();
    if pairs.is_empty() {
        pairs = c
            .workload
            .pods
            .labels
            .iter()
            .take(3)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
    }
    if pairs.is_empty() {
        return None;
    }
    let mut yaml = format!("{field}:\n  matchLabels:\n");
    for (k, v) in pairs {
        yaml.push_str(&format!("    {k}: {}\n", yaml_scalar(v)));
    }
    yaml.pop();
    Some(yaml)
}

/// A label value as a YAML scalar: quoted when YAML would read it as
/// something other than that string (empty, a number, a boolean, null).
fn yaml_scalar(v: &str) -> String {
    let special = matches!(
        v.to_ascii_lowercase().as_str(),
        "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    ) || v.parse::<f64>().is_ok()
        || v.starts_with(['0', '+', '-', '.']);
    if special {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests;

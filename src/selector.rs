//! Kubernetes label selector semantics, compiled once per policy.
//!
//! Policies are compiled when the cluster view is built, so a decision only
//! runs `matches`: no parsing, no allocation. The semantics are exactly the
//! API server's (`k8s.io/apimachinery/pkg/labels`): `matchLabels` and every
//! `matchExpressions` entry are ANDed; `In`/`NotIn` compare values, `Exists`/
//! `DoesNotExist` only keys; `NotIn` and `DoesNotExist` match a pod that lacks
//! the key; `{}` selects everything. Tools that got this wrong (Checkov ignoring
//! `matchExpressions`, KICS matching `matchLabels` entries one by one) produce
//! false verdicts, which is why every case is unit-tested here.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Pod labels, as they appear in `metadata.labels`.
pub type Labels = BTreeMap<String, String>;

/// Keys of labels a pod will carry with a value nobody knows before it
/// exists: the hash, uid or ordinal its controller adds
/// (`pod-template-hash`, `controller-revision-hash`, ...).
pub type UnknownKeys = BTreeSet<String>;

/// Whether a selector selects pods some of whose label values are unknown
/// (`Selector::selects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selects {
    /// Every requirement is met, whatever the unknown values turn out to be.
    Yes,
    /// A requirement on a known (or absent) label is not met.
    No,
    /// Every requirement on the known labels is met, but one on a label with
    /// an unknown value is not (`DoesNotExist`) or depends on the value
    /// (`In`, `NotIn`, a `matchLabels` entry). Not a selection to count on.
    Unknown,
}

/// A requirement of a selector that some pods do not meet
/// (`Selector::misses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss<'s> {
    pub key: &'s str,
    /// A `matchLabels` pair is `In` with its one value.
    pub operator: Operator,
    /// The values it wants (`In`) or refuses (`NotIn`); none for `Exists`
    /// and `DoesNotExist`.
    pub values: Vec<&'s str>,
    /// The requirement in `kubectl -l` syntax: `app=web`, `tier in (a,b)`,
    /// `env notin (dev)`, `team`, `!canary`.
    pub text: String,
    /// On a label the pods' controller sets, value unknown: the pods may
    /// meet it after all.
    pub controller_set: bool,
}

/// A LabelSelector as written in a manifest (`matchLabels`, `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// Why a selector could not be compiled. The API server rejects these shapes
/// too (`In` with no values, `Exists` with values), so they never select.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("selector is not an object: {0}")]
    Shape(String),
    #[error("matchExpressions key {key:?}: operator {op:?} {problem}")]
    Values {
        key: String,
        op: Operator,
        problem: &'static str,
    },
}

/// A compiled selector: cheap to evaluate against a label map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    labels: Vec<(String, String)>,
    exprs: Vec<Requirement>,
}

impl Selector {
    /// The empty selector, which selects every pod.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Compiles a selector, validating it as the API server would.
    pub fn compile(sel: &LabelSelector) -> Result<Self, SelectorError> {
        for r in &sel.match_expressions {
            let problem = match r.operator {
                Operator::In | Operator::NotIn if r.values.is_empty() => {
                    Some("needs at least one value")
                }
                Operator::Exists | Operator::DoesNotExist if !r.values.is_empty() => {
                    Some("must not have values")
                }
                _ => None,
            };
            if let Some(problem) = problem {
                return Err(SelectorError::Values {
                    key: r.key.clone(),
                    op: r.operator,
                    problem,
                });
            }
        }
        Ok(Self {
            labels: sel
                .match_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            exprs: sel.match_expressions.clone(),
        })
    }

    /// Parses and compiles a selector from JSON (absent or `null` is `{}`).
    pub fn from_value(v: Option<&Value>) -> Result<Self, SelectorError> {
        match v {
            None | Some(Value::Null) => Ok(Self::everything()),
            Some(v) => {
                let sel = LabelSelector::deserialize(v)
                    .map_err(|e| SelectorError::Shape(e.to_string()))?;
                Self::compile(&sel)
            }
        }
    }

    /// True for `{}`: selects every pod.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.exprs.is_empty()
    }

    /// True when the selector picks out specific pods: it has at least one
    /// positive requirement (a `matchLabels` pair, `In` or `Exists`). A
    /// selector of only `NotIn` / `DoesNotExist` selects nearly every pod,
    /// so for coverage it counts like `{}`.
    pub fn is_specific(&self) -> bool {
        !self.labels.is_empty()
            || self
                .exprs
                .iter()
                .any(|r| matches!(r.operator, Operator::In | Operator::Exists))
    }

    /// One key and the values a selected pod must have for it, if the
    /// selector requires one: the first `matchLabels` pair, else the first
    /// `In` expression. Used to index policies so that only those that can
    /// match a pod are evaluated.
    pub fn index_key(&self) -> Option<(&str, Vec<&str>)> {
        if let Some((k, v)) = self.labels.first() {
            return Some((k, vec![v.as_str()]));
        }
        self.exprs
            .iter()
            .find(|r| r.operator == Operator::In)
            .map(|r| {
                (
                    r.key.as_str(),
                    r.values.iter().map(String::as_str).collect(),
                )
            })
    }

    /// Whether the selector selects a pod with these labels.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
            && self.exprs.iter().all(|r| requirement_matches(r, labels))
    }

    /// Whether the selector selects pods that carry `labels` and, with
    /// values unknown, the keys in `unknown` (a key is in one or the other).
    /// `Exists` on an unknown key is met and `DoesNotExist` is not; a value
    /// comparison on one (`In`, `NotIn`, `matchLabels`) cannot be decided.
    /// With no unknown keys this is `matches`.
    pub fn selects(&self, labels: &Labels, unknown: &UnknownKeys) -> Selects {
        let mut undecided = false;
        for (k, v) in &self.labels {
            if unknown.contains(k) {
                undecided = true;
            } else if labels.get(k) != Some(v) {
                return Selects::No;
            }
        }
        for r in &self.exprs {
            if unknown.contains(&r.key) {
                undecided |= r.operator != Operator::Exists;
            } else if !requirement_matches(r, labels) {
                return Selects::No;
            }
        }
        if undecided {
            Selects::Unknown
        } else {
            Selects::Yes
        }
    }

    /// The keys the selector tests, `matchLabels` first.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.labels
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.exprs.iter().map(|r| r.key.as_str()))
    }

    /// Number of requirements (`matchLabels` pairs plus expressions).
    pub fn requirement_count(&self) -> usize {
        self.labels.len() + self.exprs.len()
    }

    /// The requirements pods with `labels` (and the `unknown` keys, see
    /// `selects`) do not meet for sure, in `kubectl -l` syntax (`app=web`,
    /// `tier in (a,b)`, `!canary`): what they lack to be selected. One on a
    /// key with an unknown value says so. Empty when `selects` is `Yes`.
    pub fn unmet(&self, labels: &Labels, unknown: &UnknownKeys) -> Vec<String> {
        self.misses(labels, unknown)
            .into_iter()
            .map(|m| {
                if m.controller_set {
                    format!("{} (their controller sets {})", m.text, m.key)
                } else {
                    m.text
                }
            })
            .collect()
    }

    /// [`Selector::unmet`], one structured [`Miss`] per requirement, in the
    /// same order (`matchLabels` first): for messages that also say what
    /// the pods have instead.
    pub fn misses<'s>(&'s self, labels: &Labels, unknown: &UnknownKeys) -> Vec<Miss<'s>> {
        let mut out: Vec<Miss<'s>> = self
            .labels
            .iter()
            .filter(|(k, v)| unknown.contains(k.as_str()) || labels.get(k.as_str()) != Some(v))
            .map(|(k, v)| Miss {
                key: k,
                operator: Operator::In,
                values: vec![v.as_str()],
                text: format!("{k}={v}"),
                controller_set: unknown.contains(k.as_str()),
            })
            .collect();
        out.extend(
            self.exprs
                .iter()
                .filter(|r| {
                    if unknown.contains(&r.key) {
                        r.operator != Operator::Exists
                    } else {
                        !requirement_matches(r, labels)
                    }
                })
                .map(|r| Miss {
                    key: &r.key,
                    operator: r.operator,
                    values: r.values.iter().map(String::as_str).collect(),
                    text: match r.operator {
                        Operator::In => format!("{} in ({})", r.key, r.values.join(",")),
                        Operator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
                        Operator::Exists => r.key.clone(),
                        Operator::DoesNotExist => format!("!{}", r.key),
                    },
                    controller_set: unknown.contains(&r.key),
                }),
        );
        out
    }

    /// Rewrites every key (Cilium strips `k8s:`/`any:` label-source prefixes).
    pub fn map_keys(mut self, f: impl Fn(&str) -> String) -> Self {
        for (k, _) in &mut self.labels {
            *k = f(k);
        }
        for r in &mut self.exprs {
            r.key = f(&r.key);
        }
        self
    }
}

fn requirement_matches(r: &Requirement, labels: &Labels) -> bool {
    let have = labels.get(&r.key);
    match r.operator {
        Operator::In => have.is_some_and(|v| r.values.iter().any(|x| x == v)),
        Operator::NotIn => have.is_none_or(|v| !r.values.iter().any(|x| x == v)),
        Operator::Exists => have.is_some(),
        Operator::DoesNotExist => have.is_none(),
    }
}

/// Renders a selector as the `kubectl -l` syntax: `a=b,c in (d,e),!f`.
pub fn describe(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for r in &sel.match_expressions {
        parts.push(match r.operator {
            Operator::In => format!("{} in ({})", r.key, r.values.join(",")),
            Operator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
            Operator::Exists => r.key.clone(),
            Operator::DoesNotExist => format!("!{}", r.key),
        });
    }
    if parts.is_empty() {
        "(every namespace)".to_string()
    } else {
        parts.join(",")
    }
}

/// Renders labels as `k=v, k2=v2` for messages (`(none)` when empty).
pub fn format_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return "(none)".to_string();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(v: Value) -> Selector {
        Selector::from_value(Some(&v)).unwrap()
    }

    #[test]
    fn specific_means_at_least_one_positive_requirement() {
        let sel = |v: serde_json::Value| Selector::from_value(Some(&v)).unwrap();
        assert!(sel(json!({"matchLabels": {"app": "a"}})).is_specific());
        assert!(
            sel(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]}))
                .is_specific()
        );
        assert!(
            sel(json!({"matchExpressions": [{"key": "a", "operator": "Exists"}]})).is_specific()
        );
        assert!(!sel(json!({})).is_specific());
        assert!(
            !sel(json!({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}))
                .is_specific()
        );
        assert!(
            !sel(json!({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}))
                .is_specific()
        );
    }

    #[test]
    fn unmet_lists_what_a_pod_lacks_in_kubectl_syntax() {
        let s = sel(json!({"matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "stage"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]}));
        assert_eq!(s.requirement_count(), 4);
        assert_eq!(
            s.unmet(
                &labels(&[("app", "api"), ("tier", "front"), ("canary", "yes")]),
                &UnknownKeys::new()
            ),
            ["app=web", "env in (prod,stage)", "!canary"]
        );
        assert!(
            s.unmet(
                &labels(&[("app", "web"), ("tier", "front"), ("env", "prod")]),
                &UnknownKeys::new()
            )
            .is_empty()
        );
    }

    #[test]
    fn empty_selector_selects_everything_including_unlabelled_pods() {
        assert!(sel(json!({})).matches(&labels(&[])));
        assert!(sel(json!({})).matches(&labels(&[("app", "x")])));
        assert!(Selector::from_value(None).unwrap().matches(&labels(&[])));
        assert!(sel(json!({})).is_empty());
    }

    #[test]
    fn match_labels_entries_are_anded_not_independent() {
        // KICS' trap: a pod with only one of the two labels is NOT selected.
        let s = sel(json!({"matchLabels": {"app": "api", "tier": "web"}}));
        assert!(s.matches(&labels(&[("app", "api"), ("tier", "web"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "api")])));
        assert!(!s.matches(&labels(&[("tier", "web")])));
        assert!(!s.matches(&labels(&[("app", "api"), ("tier", "db")])));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        // Checkov's trap: ignoring matchExpressions would select app=api,env=dev.
        let s = sel(json!({
            "matchLabels": {"app": "api"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]
        }));
        assert!(s.matches(&labels(&[("app", "api"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("app", "api"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("app", "api")])));
    }

    #[test]
    fn operator_in() {
        let s = sel(json!({"matchExpressions": [
            {"key": "app", "operator": "In", "values": ["postgres", "postgres-replica"]}]}));
        assert!(s.matches(&labels(&[("app", "postgres")])));
        assert!(s.matches(&labels(&[("app", "postgres-replica")])));
        assert!(!s.matches(&labels(&[("app", "redis")])));
        assert!(!s.matches(&labels(&[])), "In never matches an absent key");
    }

    #[test]
    fn operator_not_in_matches_absent_key() {
        let s = sel(json!({"matchExpressions": [
            {"key": "env", "operator": "NotIn", "values": ["dev", "test"]}]}));
        assert!(s.matches(&labels(&[("env", "prod")])));
        assert!(!s.matches(&labels(&[("env", "dev")])));
        assert!(!s.matches(&labels(&[("env", "test")])));
        assert!(
            s.matches(&labels(&[])),
            "NotIn matches a pod without the key"
        );
    }

    #[test]
    fn operator_exists_and_does_not_exist() {
        let e = sel(json!({"matchExpressions": [{"key": "team", "operator": "Exists"}]}));
        assert!(e.matches(&labels(&[("team", "")])));
        assert!(!e.matches(&labels(&[("app", "x")])));
        let d = sel(json!({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}));
        assert!(d.matches(&labels(&[("app", "x")])));
        assert!(!d.matches(&labels(&[("team", "a")])));
    }

    #[test]
    fn several_expressions_are_anded() {
        let s = sel(json!({"matchExpressions": [
            {"key": "app", "operator": "Exists"},
            {"key": "canary", "operator": "DoesNotExist"}]}));
        assert!(s.matches(&labels(&[("app", "a")])));
        assert!(!s.matches(&labels(&[("app", "a"), ("canary", "true")])));
    }

    #[test]
    fn value_comparison_is_exact_and_case_sensitive() {
        let s = sel(json!({"matchLabels": {"app": "API"}}));
        assert!(!s.matches(&labels(&[("app", "api")])));
        assert!(!s.matches(&labels(&[("app", "API ")])));
        let empty = sel(json!({"matchLabels": {"flag": ""}}));
        assert!(empty.matches(&labels(&[("flag", "")])));
        assert!(
            !empty.matches(&labels(&[])),
            "an empty value still needs the key"
        );
    }

    #[test]
    fn invalid_selectors_are_errors_not_wildcards() {
        for bad in [
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
            json!({"matchLabels": {"a": 1}}),
            json!("app=x"),
        ] {
            assert!(Selector::from_value(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn index_key_prefers_match_labels_then_in() {
        assert_eq!(
            sel(json!({"matchLabels": {"a": "1"}, "matchExpressions": [
            {"key": "b", "operator": "In", "values": ["x"]}]}))
            .index_key(),
            Some(("a", vec!["1"]))
        );
        assert_eq!(
            sel(
                json!({"matchExpressions": [{"key": "c", "operator": "Exists"},
            {"key": "b", "operator": "In", "values": ["x", "y"]}]})
            )
            .index_key(),
            Some(("b", vec!["x", "y"]))
        );
        assert_eq!(
            sel(json!({"matchExpressions": [{"key": "c", "operator": "NotIn", "values": ["x"]}]}))
                .index_key(),
            None
        );
        assert_eq!(sel(json!({})).index_key(), None);
    }

    #[test]
    fn map_keys_rewrites_labels_and_expressions() {
        let s = sel(json!({"matchLabels": {"k8s:app": "a"},
            "matchExpressions": [{"key": "any:tier", "operator": "Exists"}]}))
        .map_keys(|k| k.split_once(':').map_or(k, |(_, r)| r).to_string());
        assert!(s.matches(&labels(&[("app", "a"), ("tier", "t")])));
    }

    #[test]
    fn describe_uses_kubectl_syntax() {
        let s: LabelSelector = serde_json::from_value(json!({"matchLabels": {"a": "b"},
            "matchExpressions": [{"key": "c", "operator": "In", "values": ["d", "e"]},
                {"key": "f", "operator": "DoesNotExist"}, {"key": "g", "operator": "Exists"},
                {"key": "h", "operator": "NotIn", "values": ["i"]}]}))
        .unwrap();
        assert_eq!(describe(&s), "a=b,c in (d,e),!f,g,h notin (i)");
    }

    /// Issue 13: controllers add labels whose values nobody knows before
    /// the pods exist (`pod-template-hash`, ...). A selector whose outcome
    /// depends on such a value, or that requires the label absent, must not
    /// count as selecting the pods.
    #[test]
    fn labels_with_unknown_values_decide_only_exists() {
        let known = labels(&[("app", "web")]);
        let unknown: UnknownKeys = ["pod-template-hash".to_string()].into();
        let expr = |op: &str, values: &[&str]| {
            let mut r = json!({"key": "pod-template-hash", "operator": op});
            if !values.is_empty() {
                r["values"] = json!(values);
            }
            sel(json!({"matchLabels": {"app": "web"}, "matchExpressions": [r]}))
        };
        assert_eq!(expr("Exists", &[]).selects(&known, &unknown), Selects::Yes);
        for (op, values) in [
            ("DoesNotExist", &[][..]),
            ("In", &["7c9d8f6b5d"][..]),
            ("NotIn", &["7c9d8f6b5d"][..]),
        ] {
            let s = expr(op, values);
            assert_eq!(s.selects(&known, &unknown), Selects::Unknown, "{op}");
            // Without the unknown key, the known labels alone decide.
            assert_eq!(
                s.selects(&known, &UnknownKeys::new()) == Selects::Yes,
                s.matches(&known),
                "{op}"
            );
        }
        assert!(expr("DoesNotExist", &[]).matches(&known));
        let pinned = sel(json!({"matchLabels": {"app": "web", "pod-template-hash": "x"}}));
        assert_eq!(pinned.selects(&known, &unknown), Selects::Unknown);
        assert_eq!(
            pinned.unmet(&known, &unknown),
            ["pod-template-hash=x (their controller sets pod-template-hash)"]
        );
        assert_eq!(
            expr("DoesNotExist", &[]).unmet(&known, &unknown),
            ["!pod-template-hash (their controller sets pod-template-hash)"]
        );
        assert!(expr("Exists", &[]).unmet(&known, &unknown).is_empty());
        // A requirement on a known label that fails decides: No.
        let other = sel(json!({"matchLabels": {"app": "api"},
            "matchExpressions": [{"key": "pod-template-hash", "operator": "In", "values": ["x"]}]}));
        assert_eq!(other.selects(&known, &unknown), Selects::No);
        assert_eq!(sel(json!({})).selects(&known, &unknown), Selects::Yes);
        assert_eq!(
            pinned.keys().collect::<Vec<_>>(),
            ["app", "pod-template-hash"]
        );
    }

    #[test]
    fn format_labels_is_sorted_and_says_none() {
        assert_eq!(
            format_labels(&labels(&[("b", "2"), ("a", "1")])),
            "a=1, b=2"
        );
        assert_eq!(format_labels(&labels(&[])), "(none)");
    }
}

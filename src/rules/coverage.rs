//! Rule `require-network-policy`: in a managed namespace, a workload's pods
//! must be selected by a policy that grants them traffic.
//!
//! The message is written for the developer reading `kubectl apply` output:
//! which workload, which pod labels, why the namespace enforces this, and a
//! ready-to-edit NetworkPolicy that would satisfy the rule.

use std::fmt::Write as _;

use crate::cluster::{ClusterView, Coverage};
use crate::config::{Directions, Settings};
use crate::rules::netpol::one_line;
use crate::rules::{Finding, RuleId};
use crate::selector::{self, Labels};
use crate::workload::{PodShape, WorkloadKind};

/// The workload being judged.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub kind: WorkloadKind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub pods: &'a PodShape,
}

impl<'a> Subject<'a> {
    /// An existing workload the view knows, in `namespace`.
    pub fn of(known: &'a crate::cluster::KnownWorkload, namespace: &'a str) -> Self {
        Self {
            kind: known.kind,
            namespace,
            name: &known.name,
            pods: &known.pods,
        }
    }
}

/// Whether the subject's pods are covered, under the configured directions.
pub fn is_covered(subject: &Subject<'_>, view: &ClusterView, settings: &Settings) -> bool {
    coverage(subject, view, settings).satisfies(settings.config.directions)
}

fn coverage<'v>(subject: &Subject<'_>, view: &'v ClusterView, settings: &Settings) -> Coverage<'v> {
    view.coverage(
        subject.namespace,
        &subject.pods.labels,
        &subject.pods.unknown_labels,
        subject.pods.service_account.as_deref(),
        settings.config.directions,
    )
}

/// The finding for an uncovered workload, or `None` when it is covered.
pub fn check(subject: &Subject<'_>, view: &ClusterView, settings: &Settings) -> Option<Finding> {
    let cov = coverage(subject, view, settings);
    let need = settings.config.directions;
    if cov.satisfies(need) {
        return None;
    }
    let Subject {
        kind,
        namespace,
        name,
        pods,
    } = *subject;
    let kind = kind.as_str();
    let what = match need {
        Directions::Any => "no NetworkPolicy selects its pods".to_string(),
        Directions::Ingress => "no NetworkPolicy grants ingress to its pods".to_string(),
        Directions::Egress => "no NetworkPolicy grants egress to its pods".to_string(),
        Directions::Both => match (cov.ingress, cov.egress) {
            (Some(p), None) => format!(
                "{} {} covers its pods' ingress but no policy covers their egress",
                p.kind.as_str(),
                p.name
            ),
            (None, Some(p)) => format!(
                "{} {} covers its pods' egress but no policy covers their ingress",
                p.kind.as_str(),
                p.name
            ),
            _ => "no NetworkPolicy grants its pods ingress and egress".to_string(),
        },
    };
    let labels = selector::format_labels(&pods.labels);
    // A policy that would have counted but for a label the controller sets
    // (issue 13): say which, or the developer sees their policy ignored.
    let undecided = cov.undecided(need).map(|p| {
        let keys: Vec<&str> = p
            .selector
            .keys()
            .filter(|k| pods.unknown_labels.contains(*k))
            .collect();
        (p, keys.join(", "))
    });
    // The reason to act on: the policy that does not count, or the fix.
    let (tail, short_tail) = match &undecided {
        None => (
            "Apply a NetworkPolicy for them first.".to_string(),
            "Apply a NetworkPolicy that selects its pods first.".to_string(),
        ),
        Some((p, keys)) => {
            let note = format!(
                "{} {} does not count: it selects on {keys}, which their controller sets. Select the template's labels.",
                p.kind.as_str(),
                p.name
            );
            (note.clone(), note)
        }
    };
    let mut message = format!(
        "require-network-policy: {kind} {namespace}/{name}: {what} (pod labels: {labels}). {tail}"
    );
    if message.chars().count() > crate::rules::MAX_WARNING_CHARS {
        message =
            format!("require-network-policy: {kind} {namespace}/{name}: {what}. {short_tail}");
    }
    let mut detail = String::new();
    let selector = selector::describe(&settings.config.managed_namespaces.selector);
    let _ = write!(
        detail,
        "Why: namespace {namespace} is managed by netpol-guard (its labels match {selector}), so every workload there \
         must be selected by a NetworkPolicy that allows its traffic; an unselected pod can reach and be reached by \
         anything, which is how one compromised pod spreads."
    );
    if let Some((p, keys)) = &undecided {
        let _ = write!(
            detail,
            " {} {} tests {keys}, which the {kind}'s controller adds to every pod with a value not known before \
             the pod exists (a hash, a uid, an ordinal): a selector that requires it absent selects none of the real \
             pods, and one that requires a value of it may select only some or none, so neither counts. Only Exists \
             on such a label counts (controller-set labels here: {}).",
            p.kind.as_str(),
            p.name,
            pods.unknown_labels
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let isolating = view.isolating_policies(namespace);
    if isolating > 0 {
        let _ = write!(
            detail,
            " The {isolating} polic{} here that only isolate the whole namespace (such as netpol-guard's default-deny and DNS \
             baseline, or a rule-less policy with podSelector {{}}) do not count; a rule-less policy that selects these \
             pods by label would (it says they talk to nobody in its directions).",
            if isolating == 1 { "y" } else { "ies" }
        );
    }
    if need != Directions::Any {
        let _ = write!(
            detail,
            " This cluster requires {} (config directions: {}).",
            directions_text(need),
            directions_key(need)
        );
    }
    let _ = write!(
        detail,
        "\nFix: apply a NetworkPolicy like this one BEFORE the {kind} (kubectl apply -f policy.yaml, then the {kind}; \
         in one kubectl apply -f DIR/, put the policy in a file that sorts first), narrowing the peers to the real callers:\n"
    );
    detail.push_str(&suggested_policy(namespace, name, pods, need));
    // Names and labels come from the request: keep the warning one line and
    // within the limit whatever they hold.
    Some(Finding::new(RuleId::RequireNetworkPolicy, one_line(&message)).with_detail(detail))
}

/// The warning for an UPDATE to a workload that was already uncovered.
pub fn existing_violation(subject: &Subject<'_>) -> Finding {
    let Subject {
        kind,
        namespace,
        name,
        ..
    } = *subject;
    Finding::new(
        RuleId::RequireNetworkPolicy,
        one_line(&format!(
            "require-network-policy: {} {namespace}/{name} has no NetworkPolicy; this update is allowed because it \
             already had none, but new workloads like it are denied. Add a NetworkPolicy for its pods.",
            kind.as_str()
        )),
    )
    .milder()
}

/// The finding for a policy UPDATE or DELETE after which `lost` (existing
/// workloads, `Kind name`, sorted) are no longer covered. `verb` is
/// `deleting` or `this change to`; `policy` is `Kind namespace/name`.
pub fn coverage_loss(verb: &str, policy: &str, namespace: &str, lost: &[String]) -> Finding {
    let head = format!("uncovers-workloads: {verb} {policy} leaves ");
    let tail = if lost.len() == 1 {
        " without a policy that grants its pods traffic. Cover it first."
    } else {
        " without a policy that grants their pods traffic. Cover them first."
    };
    // As many names as fit in one warning line, then a count of the rest.
    let listed = |shown: &[String]| {
        let hidden = lost.len() - shown.len();
        match (shown.is_empty(), hidden) {
            (_, 0) => shown.join(", "),
            (true, n) => format!("{n} workloads"),
            (false, n) => format!("{} and {n} more", shown.join(", ")),
        }
    };
    let mut shown: Vec<String> = Vec::new();
    for w in lost {
        let mut next = shown.clone();
        next.push(w.clone());
        let text = format!("{head}{}{tail}", listed(&next));
        if text.chars().count() > crate::rules::MAX_WARNING_CHARS {
            break;
        }
        shown = next;
    }
    let list = listed(&shown);
    const LISTED: usize = 50;
    let mut named = lost
        .iter()
        .take(LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if lost.len() > LISTED {
        named.push_str(&format!(" and {} more", lost.len() - LISTED));
    }
    Finding::new(
        RuleId::UncoversWorkloads,
        one_line(&format!("{head}{list}{tail}")),
    )
    .with_detail(format!(
        "Why: in namespace {namespace}, {named} ha{} no other policy that grants {} pods traffic. Under the namespace's \
         default-deny they are cut off, and require-network-policy would deny them if they were created now.\nFix: apply \
         the policy that should cover them first (or keep this one), then change or remove this one.",
        if lost.len() == 1 { "s" } else { "ve" },
        if lost.len() == 1 { "its" } else { "their" },
    ))
}

fn directions_text(d: Directions) -> &'static str {
    match d {
        Directions::Any => "ingress or egress",
        Directions::Ingress => "a policy granting ingress",
        Directions::Egress => "a policy granting egress",
        Directions::Both => "policies granting both ingress and egress",
    }
}

fn directions_key(d: Directions) -> &'static str {
    match d {
        Directions::Any => "any",
        Directions::Ingress => "ingress",
        Directions::Egress => "egress",
        Directions::Both => "both",
    }
}

/// A NetworkPolicy YAML that selects exactly these pods and allows traffic
/// from (and, when required, to) pods of the same namespace on the
/// containers' ports. It passes netpol-guard's own policy rules.
pub fn suggested_policy(namespace: &str, name: &str, pods: &PodShape, need: Directions) -> String {
    let policy_name = format!("allow-{}", name.trim_end_matches(['*', '-']));
    let mut y = String::new();
    let _ = writeln!(y, "apiVersion: networking.k8s.io/v1");
    let _ = writeln!(y, "kind: NetworkPolicy");
    let _ = writeln!(y, "metadata:");
    let _ = writeln!(y, "  name: {}", quote(&policy_name));
    let _ = writeln!(y, "  namespace: {}", quote(namespace));
    let _ = writeln!(y, "spec:");
    write_pod_selector(&mut y, &pods.labels);
    let ingress = need != Directions::Egress;
    let egress = matches!(need, Directions::Egress | Directions::Both);
    let types: Vec<&str> = [(ingress, "Ingress"), (egress, "Egress")]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, t)| *t)
        .collect();
    let _ = writeln!(y, "  policyTypes: [{}]", types.join(", "));
    if ingress {
        let _ = writeln!(y, "  ingress:");
        let _ = writeln!(y, "  - from:");
        let _ = writeln!(
            y,
            "    - podSelector: {{}}   # pods of this namespace; narrow to the callers"
        );
        if pods.ports.is_empty() {
            let _ = writeln!(y, "    # ports: add the ports your pods listen on");
        } else {
            let _ = writeln!(y, "    ports:");
            let mut seen = std::collections::BTreeSet::new();
            // The same port under two names (two containers) is one entry.
            for p in pods
                .ports
                .iter()
                .filter(|p| seen.insert((p.port, &p.protocol)))
            {
                let _ = writeln!(y, "    - protocol: {}", quote(&p.protocol));
                let _ = writeln!(y, "      port: {}", p.port);
            }
        }
    }
    if egress {
        let _ = writeln!(y, "  egress:");
        let _ = writeln!(y, "  - to:");
        let _ = writeln!(
            y,
            "    - podSelector: {{}}   # pods of this namespace; narrow to what it calls"
        );
    }
    y
}

fn write_pod_selector(y: &mut String, labels: &Labels) {
    if labels.is_empty() {
        let _ = writeln!(
            y,
            "  podSelector: {{}}   # its pods have no labels: add one (e.g. app: NAME) to the pod template and select it here"
        );
        return;
    }
    let _ = writeln!(y, "  podSelector:");
    let _ = writeln!(y, "    matchLabels:");
    for (k, v) in labels {
        let _ = writeln!(y, "      {}: {}", yaml_key(k), quote(v));
    }
}

/// A label key as a YAML mapping key: bare when it reads back as itself in
/// any YAML parser (kubectl's included), quoted otherwise (leading spaces,
/// `: `, `#`, or words such as `yes` that YAML 1.1 reads as booleans).
fn yaml_key(k: &str) -> String {
    let plain = k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain { k.to_string() } else { quote(k) }
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML, once the
/// characters JSON leaves raw but YAML does not allow raw, DEL and the C1
/// controls, are escaped too).
fn quote(s: &str) -> String {
    let json = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_control() || matches!(c, '\u{fffe}' | '\u{ffff}') {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::ContainerPort;
    use serde_json::json;

    fn view() -> ClusterView {
        let mut v = ClusterView::new();
        v.add(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "pay", "labels": {"platform.io/managed": "true"}}}))
            .unwrap();
        v.add(
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "netpol-guard-default-deny", "namespace": "pay",
                "labels": {"app.kubernetes.io/managed-by": "netpol-guard"}},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
        )
        .unwrap();
        v
    }

    fn shape(labels: &[(&str, &str)]) -> PodShape {
        PodShape {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ports: vec![ContainerPort {
                port: 8080,
                protocol: "TCP".into(),
                name: None,
            }],
            unknown_labels: Default::default(),
            service_account: None,
            host_network: false,
        }
    }

    #[test]
    fn message_names_workload_labels_namespace_rule_and_fix() {
        let pods = shape(&[("app", "ledger")]);
        let s = Subject {
            kind: WorkloadKind::Deployment,
            namespace: "pay",
            name: "ledger",
            pods: &pods,
        };
        let f = check(&s, &view(), &Settings::default()).unwrap();
        assert_eq!(f.rule, RuleId::RequireNetworkPolicy);
        assert_eq!(
            f.message,
            "require-network-policy: Deployment pay/ledger: no NetworkPolicy selects its pods (pod labels: app=ledger). Apply a NetworkPolicy for them first."
        );
        let d = f.detail.unwrap();
        assert!(d.contains("namespace pay is managed by netpol-guard (its labels match platform.io/managed=true)"), "{d}");
        assert!(
            d.contains("The 1 policy here that only isolate the whole namespace (such as netpol-guard's default-deny"),
            "{d}"
        );
        assert!(d.contains("BEFORE the Deployment"), "{d}");
        assert!(d.ends_with(
            "spec:\n  podSelector:\n    matchLabels:\n      app: \"ledger\"\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - podSelector: {}   # pods of this namespace; narrow to the callers\n    ports:\n    - protocol: \"TCP\"\n      port: 8080\n"
        ), "{d}");
    }

    #[test]
    fn suggested_policy_parses_and_covers_the_workload() {
        for need in [
            Directions::Any,
            Directions::Ingress,
            Directions::Egress,
            Directions::Both,
        ] {
            let pods = shape(&[("app", "ledger"), ("tier", "true")]);
            let yaml = suggested_policy("pay", "ledger", &pods, need);
            let obj: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
            assert_eq!(obj["metadata"]["name"], "allow-ledger");
            assert_eq!(
                obj["spec"]["podSelector"]["matchLabels"]["tier"], "true",
                "values stay strings"
            );
            let mut v = view();
            v.add(&obj).unwrap();
            let settings = Settings {
                config: crate::config::Config {
                    directions: need,
                    ..Default::default()
                },
                ..Default::default()
            };
            let s = Subject {
                kind: WorkloadKind::Deployment,
                namespace: "pay",
                name: "ledger",
                pods: &pods,
            };
            assert!(check(&s, &v, &settings).is_none(), "{need:?}: {yaml}");
        }
    }

    /// Found by `cargo fuzz run admission`: a pod label key with leading
    /// spaces (or `: `, `#`, ...) was written bare, so the suggested policy
    /// selected other labels or was not YAML at all.
    #[test]
    fn suggested_policy_quotes_label_keys_that_need_it() {
        let pods = shape(&[
            ("    app", "x"),
            ("a: b", "x"),
            ("#c", "x"),
            ("yes", "x"),
            ("Off", "x"),
            ("9lives", "x"),
            ("app.kubernetes.io/name", "x"),
        ]);
        let yaml = suggested_policy("pay", "odd", &pods, Directions::Any);
        assert!(
            yaml.contains("\n      app.kubernetes.io/name: \"x\"\n"),
            "plain keys stay bare: {yaml}"
        );
        assert!(yaml.contains("\n      \"yes\": \"x\"\n"), "{yaml}");
        let obj: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        let selected =
            crate::selector::Selector::from_value(obj.pointer("/spec/podSelector")).unwrap();
        assert!(selected.matches(&pods.labels), "{yaml}");
        assert_eq!(
            obj.pointer("/spec/podSelector/matchLabels")
                .and_then(|m| m.as_object())
                .map(|m| m.len()),
            Some(pods.labels.len()),
            "{yaml}"
        );
    }

    /// Found by `cargo fuzz run admission`: a DEL in a label value was
    /// written raw inside the quotes, which is not YAML.
    #[test]
    fn suggested_policy_escapes_what_yaml_does_not_allow_raw() {
        let value = "a\u{7f}b\u{85}c\u{9f}d\0e\nf\u{fffe}g\u{ffff}h\"i\\j";
        let pods = shape(&[("app", value)]);
        let yaml = suggested_policy("pay", "odd", &pods, Directions::Any);
        let obj: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(
            obj["spec"]["podSelector"]["matchLabels"]["app"], value,
            "{yaml}"
        );
    }

    #[test]
    fn unlabelled_pods_get_a_hint() {
        let pods = shape(&[]);
        let y = suggested_policy("pay", "debug", &pods, Directions::Any);
        assert!(y.contains("its pods have no labels: add one"), "{y}");
    }

    #[test]
    fn both_directions_names_the_missing_one() {
        let mut v = view();
        v.add(
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "in", "namespace": "pay"},
            "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}}),
        )
        .unwrap();
        let settings = Settings {
            config: crate::config::Config {
                directions: Directions::Both,
                ..Default::default()
            },
            ..Default::default()
        };
        let pods = shape(&[("app", "a")]);
        let s = Subject {
            kind: WorkloadKind::Pod,
            namespace: "pay",
            name: "a",
            pods: &pods,
        };
        let f = check(&s, &v, &settings).unwrap();
        assert!(
            f.message.contains(
                "NetworkPolicy in covers its pods' ingress but no policy covers their egress"
            ),
            "{}",
            f.message
        );
        assert!(f.detail.unwrap().contains("config directions: both"));
    }

    /// Issue 13: a policy that would cover the pods but for a label their
    /// controller sets is named, with the label, when it would have granted
    /// a direction that is still missing, and only then.
    #[test]
    fn a_policy_on_controller_labels_is_named_only_for_a_missing_direction() {
        let mut v = view();
        let np = |name: &str, spec: serde_json::Value| {
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": "pay"}, "spec": spec})
        };
        let no_hash = json!({"matchLabels": {"app": "a"},
            "matchExpressions": [{"key": "pod-template-hash", "operator": "DoesNotExist"}]});
        v.add(&np(
            "in-no-hash",
            json!({"podSelector": no_hash, "ingress": [{"from": [{"podSelector": {}}]}]}),
        ))
        .unwrap();
        v.add(&np(
            "in",
            json!({"podSelector": {"matchLabels": {"app": "a"}}, "ingress": [{"from": [{"podSelector": {}}]}]}),
        ))
        .unwrap();
        let mut pods = shape(&[("app", "a")]);
        pods.unknown_labels.insert("pod-template-hash".into());
        let s = Subject {
            kind: WorkloadKind::Deployment,
            namespace: "pay",
            name: "a",
            pods: &pods,
        };
        let both = Settings {
            config: crate::config::Config {
                directions: Directions::Both,
                ..Default::default()
            },
            ..Default::default()
        };
        // Ingress is covered by `in`: the ingress-only policy is not the reason.
        let f = check(&s, &v, &both).unwrap();
        assert!(!f.message.contains("in-no-hash"), "{}", f.message);
        v.add(&np(
            "out-no-hash",
            json!({"podSelector": no_hash, "policyTypes": ["Egress"], "egress": [{"to": [{"podSelector": {}}]}]}),
        ))
        .unwrap();
        let f = check(&s, &v, &both).unwrap();
        assert!(
            f.message.ends_with(
                "NetworkPolicy out-no-hash does not count: it selects on pod-template-hash, which their controller sets. Select the template's labels."
            ),
            "{}",
            f.message
        );
        let d = f.detail.unwrap();
        assert!(
            d.contains("(controller-set labels here: pod-template-hash)"),
            "{d}"
        );
        crate::rules::assert_well_formed(&[check(&s, &v, &both).unwrap()]);
    }

    #[test]
    fn warning_lines_fit_the_api_server_limit() {
        let long = "x".repeat(200);
        let pods = shape(&[("app", &long)]);
        let s = Subject {
            kind: WorkloadKind::StatefulSet,
            namespace: "pay",
            name: "db",
            pods: &pods,
        };
        let f = check(&s, &view(), &Settings::default()).unwrap();
        assert!(
            f.message.chars().count() <= crate::rules::MAX_WARNING_CHARS,
            "{}",
            f.message
        );
        assert!(existing_violation(&s).message.chars().count() <= crate::rules::MAX_WARNING_CHARS);
    }

    /// Found by `cargo fuzz run admission`: a newline in a pod label (or a
    /// long name) went into the one-line warning, which kube-apiserver drops
    /// (control character) or truncates.
    #[test]
    fn warnings_stay_one_line_within_the_limit_whatever_the_names() {
        let long = "n".repeat(253);
        let pods = shape(&[("ru\nn", "debug\r\t")]);
        for name in ["debug\nx", long.as_str()] {
            let s = Subject {
                kind: WorkloadKind::ReplicationController,
                namespace: "pay",
                name,
                pods: &pods,
            };
            for f in [
                check(&s, &view(), &Settings::default()).unwrap(),
                existing_violation(&s),
            ] {
                assert!(
                    f.message.chars().count() <= crate::rules::MAX_WARNING_CHARS,
                    "{}",
                    f.message
                );
                assert!(!f.message.chars().any(char::is_control), "{:?}", f.message);
                assert!(f.message.starts_with("require-network-policy: "));
            }
        }
    }
}

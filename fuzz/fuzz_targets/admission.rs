//! `admission`: arbitrary bytes as an AdmissionReview body, through the same
//! pure path the webhook's `/validate` and `/mutate` handlers take (minus
//! HTTP, metrics, logs and the live API-server re-read): `parse_review`, then
//! `engine::decide` against a fixed cluster view under two configurations,
//! the response built and serialised as it is sent, and the namespace
//! mutation. Nothing may panic, the answer keeps the invariants the API
//! server relies on (`check_verdict`), and the policy a denial suggests does
//! what it says (`check_suggested_policy`).

#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use netpol_guard::admission::{self, AdmissionRequest, AdmissionResponse, ReviewError};
use netpol_guard::cluster::ClusterView;
use netpol_guard::config::Settings;
use netpol_guard::engine::{self, Verdict};
use netpol_guard::rules::{self, Action, MAX_WARNING_CHARS, RuleId, coverage};
use netpol_guard::workload::{self, WorkloadKind};
use netpol_guard::generate::mutation;
use netpol_guard::{manifests, webhook};
use serde::Deserialize;
use serde_json::Value;

/// The cluster every input is judged against (namespaces managed, unmanaged,
/// excluded and in audit mode; NetworkPolicies, CNPs and CCNPs).
const CLUSTER_YAML: &str = include_str!("../cluster.yaml");

/// A second configuration: every rule on `warn` (so every finding goes
/// through the warning path and its length / one-line limits), both
/// directions required, exemptions, CIDR allowances and autoManage.
const STRICT_YAML: &str = r#"
directions: both
managedNamespaces:
  selector:
    matchExpressions:
    - {key: platform.io/managed, operator: In, values: ["true", "yes"]}
  exclude: [kube-system, netpol-guard]
rules:
  require-network-policy: warn
  allow-all-peers: warn
  any-namespace-peer: warn
  world-cidr: warn
  or-selector-slip: warn
  implicit-ingress-isolation: warn
  dns-single-protocol: warn
  baseline-protected: warn
  world-entity: warn
  fqdn-wildcard: warn
  any-endpoint-peer: warn
  default-deny-disabled: warn
  namespace-labels-ignored: warn
allowedCidrs: [203.0.113.0/24, "2001:db8::/32"]
cidrLimits: {ipv4MinPrefix: 16, ipv6MinPrefix: 48}
exemptions:
  namespaces: [monitoring]
  users: [deploy-bot]
  groups: [system:masters]
  workloadLabels:
  - matchLabels: {netpol-guard.io/exempt: "true"}
autoManage: true
autoManageMode: audit
"#;

static VIEW: LazyLock<ClusterView> = LazyLock::new(|| {
    let objects = manifests::parse_text(CLUSTER_YAML, Path::new("fuzz/cluster.yaml"))
        .expect("fuzz/cluster.yaml parses");
    let mut view = ClusterView::new();
    for o in &objects {
        let known = view.add(&o.object).expect("fuzz/cluster.yaml compiles");
        assert!(known, "fuzz/cluster.yaml line {}: unknown kind", o.line);
    }
    view
});

static SETTINGS: LazyLock<[Settings; 2]> = LazyLock::new(|| {
    [
        Settings::default(),
        Settings::from_yaml(STRICT_YAML).expect("STRICT_YAML is a valid config"),
    ]
});

fuzz_target!(|data: &[u8]| {
    let parsed = admission::parse_review(data);
    check_same_as_two_step_parse(data, &parsed);
    let req = match parsed {
        Ok(req) => req,
        Err(e) => {
            // The webhook answers 400 with this text.
            let _ = e.to_string();
            return;
        }
    };
    for settings in SETTINGS.iter() {
        validate(&req, settings);
        mutate(&req, settings);
    }
});

/// The review as the previous `parse_review` read it: the body into a JSON
/// `Value` first, then the `Value` into the typed review.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TwoStepReview {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<AdmissionRequest>,
}

/// `parse_review` parses in one pass (no `Value` round trip); it must give
/// the same request, and the same kind of error, as the two-step parse.
fn check_same_as_two_step_parse(data: &[u8], parsed: &Result<AdmissionRequest, ReviewError>) {
    let two_step = match serde_json::from_slice::<Value>(data) {
        // The one difference, on purpose: the one-pass parse skips fields it
        // does not read iteratively, without serde_json's recursion limit
        // (no stack at risk), so only the two-step parse refuses nesting
        // deeper than 128 there. Nesting in fields it reads is refused by
        // both (tests/it/drills.rs drill 4).
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => return,
        Err(_) => Err("not JSON"),
        Ok(value) => match TwoStepReview::deserialize(value) {
            Err(_) => Err("wrong shape"),
            Ok(r)
                if r.api_version.as_deref() != Some(admission::API_VERSION)
                    || r.kind.as_deref() != Some("AdmissionReview") =>
            {
                Err("wrong version")
            }
            Ok(r) => r.request.ok_or("no request"),
        },
    };
    // The other intended difference: a key given twice. A `Value` silently
    // keeps the last one; the typed parse reads the first and refuses the
    // body (a bad first value, or "duplicate field"). The API server never
    // sends duplicate keys, and refusing an ambiguous body is the safer
    // reading (found by this target in CI).
    if has_duplicate_keys(data) {
        // Still JSON, whatever else is wrong with it.
        assert!(
            !matches!(parsed, Err(ReviewError::Json(_))),
            "a body with a duplicate key is JSON: {parsed:?}"
        );
        return;
    }
    let one_pass = match parsed {
        Ok(r) => Ok(r),
        Err(ReviewError::Json(_)) => Err("not JSON"),
        Err(ReviewError::Shape(_)) => Err("wrong shape"),
        Err(ReviewError::Version { .. }) => Err("wrong version"),
        Err(ReviewError::NoRequest) => Err("no request"),
    };
    assert_eq!(
        one_pass,
        two_step.as_ref().map_err(|e| *e),
        "one-pass and two-step parses disagree on {:?}",
        String::from_utf8_lossy(data)
    );
}

/// Whether any JSON object in `data` has the same key twice (false when
/// `data` is not JSON, or nests deeper than serde_json's limit).
fn has_duplicate_keys(data: &[u8]) -> bool {
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use std::cell::Cell;
    use std::collections::HashSet;

    #[derive(Clone, Copy)]
    struct Walk<'a>(&'a Cell<bool>);
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(self)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key) {
                    self.0.set(true);
                }
                map.next_value_seed(self)?;
            }
            Ok(())
        }
    }
    let found = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(data);
    Walk(&found).deserialize(&mut de).is_ok() && de.end().is_ok() && found.get()
}

/// `/validate` without the I/O: decide, build the response, serialise it.
fn validate(req: &AdmissionRequest, settings: &Settings) {
    let response = match engine::decide(req, &VIEW, settings) {
        Ok(verdict) => {
            check_verdict(&verdict);
            check_suggested_policy(req, &verdict, settings);
            let _ = verdict.rule_ids();
            let response = webhook::to_response(&req.uid, &verdict);
            assert_eq!(response.allowed, verdict.allowed());
            response
        }
        // What the webhook does with an object it cannot judge: fail closed.
        Err(e) => AdmissionResponse::deny(
            &req.uid,
            format!("netpol-guard could not judge this object: {e}"),
        ),
    };
    if !response.allowed {
        let status = response.status.as_ref().expect("a denial has a status");
        assert_eq!(status.code, 403);
        assert!(!status.message.is_empty(), "a denial says why");
    }
    let body = serde_json::to_vec(&response.into_review()).expect("the response serialises");
    let back: Value = serde_json::from_slice(&body).expect("the response is JSON");
    assert_eq!(back["response"]["uid"].as_str(), Some(req.uid.as_str()));
}

/// The invariants of a verdict: no `off` finding is reported, a denial
/// message exactly when something denies, and every warning fits an HTTP
/// `Warning` header as the API server sends it: one line (no control
/// characters, which kube-apiserver drops the warning for) of at most
/// `MAX_WARNING_CHARS` characters, starting with its rule id.
fn check_verdict(verdict: &Verdict) {
    for (f, action) in &verdict.findings {
        assert_ne!(*action, Action::Off, "an off finding is reported: {f:?}");
    }
    let denial = verdict.denial_message();
    assert_eq!(denial.is_some(), !verdict.allowed());
    if let Some(m) = denial {
        assert!(m.starts_with("netpol-guard: "), "{m}");
    }
    let warnings = verdict.warnings();
    let warned = verdict.findings.iter().filter(|(_, a)| *a == Action::Warn);
    assert_eq!(warnings.len(), warned.clone().count());
    for (w, (f, _)) in warnings.iter().zip(warned) {
        assert!(
            w.chars().count() <= MAX_WARNING_CHARS,
            "warning of {} chars: {w:?}",
            w.chars().count()
        );
        assert!(
            !w.chars().any(char::is_control),
            "warning with a control character: {w:?}"
        );
        let rule = f.rule.as_str();
        assert!(
            w.starts_with(&format!("{rule}: "))
                || w.starts_with(&format!("audit mode, would deny: {rule}: ")),
            "warning does not start with its rule id {rule}: {w:?}"
        );
    }
}

/// The NetworkPolicy a `require-network-policy` denial suggests is valid
/// YAML, passes netpol-guard's own policy rules, and once applied covers the
/// workload (what the denial promises the developer).
fn check_suggested_policy(req: &AdmissionRequest, verdict: &Verdict, settings: &Settings) {
    for (f, _) in &verdict.findings {
        let Some(detail) = f.detail.as_deref() else {
            continue;
        };
        if f.rule != RuleId::RequireNetworkPolicy {
            continue;
        }
        let at = detail
            .find("\napiVersion: networking.k8s.io/v1\n")
            .expect("a require-network-policy denial carries a suggested policy");
        let yaml = &detail[at + 1..];
        let policy: Value = serde_yaml::from_str(yaml)
            .unwrap_or_else(|e| panic!("the suggested policy is not YAML: {e}\n{yaml}"));
        for p in rules::netpol::check(&policy, settings) {
            assert_ne!(
                p.effective(settings.action(p.rule)),
                Action::Deny,
                "the suggested policy is denied: {}\n{yaml}",
                p.message
            );
        }
        let namespace = req.namespace.as_deref().unwrap_or("");
        assert_eq!(
            policy["metadata"]["namespace"].as_str(),
            Some(namespace),
            "{yaml}"
        );
        let kind = WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind)
            .expect("require-network-policy is only about workloads");
        let object = req
            .object
            .as_ref()
            .expect("a judged workload has an object");
        let pods = workload::pod_shape(kind, object).expect("a judged workload has pods");
        let name = workload::display_name(object, req.name.as_deref());
        let mut view = VIEW.clone();
        view.add(&policy)
            .unwrap_or_else(|e| panic!("the suggested policy does not compile: {e}\n{yaml}"));
        let subject = coverage::Subject {
            kind,
            namespace,
            name: &name,
            pods: &pods,
        };
        assert!(
            coverage::check(&subject, &view, settings).is_none(),
            "the suggested policy does not cover the workload:\n{yaml}"
        );
    }
}

/// `/mutate` without the I/O: the namespace patch, serialised as it is sent,
/// must apply to the object it was computed from. (Only checked for objects
/// with a `metadata` map, as every Namespace the API server sends has: the
/// patch adds under `/metadata`.)
fn mutate(req: &AdmissionRequest, settings: &Settings) {
    let Some(patch) = mutation::namespace_patch(req, settings) else {
        return;
    };
    let bytes = serde_json::to_vec(&patch).expect("the patch serialises");
    let mut object = req
        .object
        .clone()
        .expect("a patch is only made for an object");
    if !object.get("metadata").is_some_and(Value::is_object) {
        return;
    }
    json_patch::patch(&mut object, &patch).unwrap_or_else(|e| {
        panic!(
            "the patch {} does not apply to the namespace: {e}",
            String::from_utf8_lossy(&bytes)
        )
    });
}

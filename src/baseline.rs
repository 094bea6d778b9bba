//! The baseline netpol-guard generates in every managed namespace:
//! `netpol-guard-default-deny` (isolates every pod),
//! `netpol-guard-allow-dns` (lets every pod reach the cluster DNS, so
//! default-deny does not break name resolution), and the policies cluster
//! admins add in `baseline.extraPolicies` (`netpol-guard-<name>`, see
//! [`compile_extra_policies`]). Pure: what the policies must look like for a
//! namespace, given the settings and the namespace's mode.

mod extra;

use serde_json::{Value, json};

use crate::config::{Baseline, Mode, Settings};

pub use extra::{ExtraBaseline, compile_extra_policies};

pub const DEFAULT_DENY: &str = "netpol-guard-default-deny";
pub const ALLOW_DNS: &str = "netpol-guard-allow-dns";
/// Every policy netpol-guard generates is named with this prefix: the two
/// built-ins, and `netpol-guard-<name>` for each `baseline.extraPolicies`
/// entry.
pub const NAME_PREFIX: &str = "netpol-guard-";
/// Annotation with the hash of the baseline settings that produced a policy.
pub const CONFIG_HASH_ANNOTATION: &str = "netpol-guard.io/config-hash";
/// Label that marks the policies netpol-guard generates itself. It proves
/// nothing by itself (anyone who may write a policy may set it): see
/// [`is_ours`].
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "netpol-guard";
/// Field manager of every write netpol-guard makes.
pub const FIELD_MANAGER: &str = "netpol-guard";

/// The built-in baseline policy names, whatever the config.
pub const NAMES: [&str; 2] = [DEFAULT_DENY, ALLOW_DNS];

/// The names reserved for netpol-guard's baseline in every managed
/// namespace, in audit mode too: the two built-ins and the configured
/// `baseline.extraPolicies`, the one list the webhook
/// (`baseline-protected`) and the generator use.
pub fn reserved_names(settings: &Settings) -> Vec<&str> {
    NAMES
        .into_iter()
        .chain(settings.extra_baseline.iter().map(|e| e.name.as_str()))
        .collect()
}

/// Whether `name` is one of [`reserved_names`].
pub fn is_reserved(name: &str, settings: &Settings) -> bool {
    NAMES.contains(&name) || settings.extra_baseline.iter().any(|e| e.name == name)
}

/// Whether `obj` is a baseline policy netpol-guard wrote: a name of
/// netpol-guard's ([`NAME_PREFIX`]: a built-in, or an extra policy, still
/// configured or not), the managed-by label, and proof. An object from the
/// API server always carries `metadata.managedFields`; there the
/// config-hash annotation must be present, and every field manager that
/// owns part of the spec must be netpol-guard. A developer's policy with the
/// name and label (created while the namespace was unmanaged, or by copying
/// the label) is not ours: it is deletable and judged for coverage like any
/// other. Offline manifests without managedFields are their author's word:
/// name and label suffice.
///
/// It needs no settings on purpose: an extra policy removed from the config
/// (or renamed) must still be provably netpol-guard's, so the generator
/// can delete it from every namespace, and the cluster view (which knows no
/// settings) judges it the same way meanwhile.
pub fn is_ours(obj: &Value) -> bool {
    let meta = obj.get("metadata");
    let name_ok = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .is_some_and(|n| n.len() > NAME_PREFIX.len() && n.starts_with(NAME_PREFIX));
    if !(name_ok && has_managed_by_label(obj)) {
        return false;
    }
    let Some(managed) = meta
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
    else {
        return true;
    };
    let hashed = has_config_hash(obj);
    let spec_owners: Vec<&str> = managed
        .iter()
        .filter(|e| e.pointer("/fieldsV1/f:spec").is_some())
        .map(|e| e.get("manager").and_then(Value::as_str).unwrap_or(""))
        .collect();
    hashed && !spec_owners.is_empty() && spec_owners.iter().all(|m| *m == FIELD_MANAGER)
}

/// The baseline policies a managed namespace must have: in `enforce` mode
/// default-deny, the DNS allow, then the extra policies in config order. In
/// `audit` mode none: any policy that selects a pod isolates it in that
/// policy's directions on a CNI that enforces NetworkPolicy (the first
/// policy that selects a pod turns everything it does not allow into a
/// denial). Even the DNS allow alone, `podSelector: {}` with
/// `policyTypes: [Egress]`, would cut every pod's egress to DNS only.
/// Audit mode reports the impact instead (`BaselineImpact`), and switching
/// the namespace to enforce creates them all together. Every policy
/// carries the hash of the whole `baseline` config, so a change to any of
/// it (an extra policy's spec too) rewrites them.
pub fn desired(namespace: &str, settings: &Settings, mode: Mode) -> Vec<Value> {
    let b = &settings.config.baseline;
    let hash = config_hash(b);
    let meta = |name: &str| {
        json!({"name": name, "namespace": namespace,
            "labels": {MANAGED_BY_KEY: MANAGED_BY_VALUE},
            "annotations": {CONFIG_HASH_ANNOTATION: hash}})
    };
    let ports: Vec<Value> = b
        .dns_ports
        .iter()
        .map(|p| json!({"protocol": p.protocol, "port": p.port}))
        .collect();
    let mut peers = vec![json!({
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": b.dns_namespace}},
        "podSelector": {"matchLabels": b.dns_pod_labels},
    })];
    if let Some(cidr) = &b.node_local_dns_cidr {
        peers.push(json!({"ipBlock": {"cidr": cidr}}));
    }
    let dns = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta(ALLOW_DNS),
        "spec": {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": peers, "ports": ports}]}});
    let deny = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": meta(DEFAULT_DENY),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}});
    match mode {
        Mode::Enforce => [deny, dns]
            .into_iter()
            .chain(settings.extra_baseline.iter().map(|e| {
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": meta(&e.name), "spec": e.spec})
            }))
            .collect(),
        Mode::Audit => vec![],
    }
}

/// A stable hash (FNV-1a 64) of the baseline settings, so an operator can
/// see which config produced a policy; stable across builds and platforms.
pub fn config_hash(b: &Baseline) -> String {
    let bytes = serde_json::to_vec(b).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Whether a policy carries netpol-guard's label and config-hash annotation
/// (it was written by netpol-guard, and may have been edited since). Proves
/// nothing (see [`is_ours`]); it only tells an edit from a squat in reports.
pub fn carries_our_marks(obj: &Value) -> bool {
    has_managed_by_label(obj) && has_config_hash(obj)
}

/// Whether an object carries `app.kubernetes.io/managed-by: netpol-guard`.
pub fn has_managed_by_label(obj: &Value) -> bool {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(MANAGED_BY_KEY))
        .and_then(Value::as_str)
        == Some(MANAGED_BY_VALUE)
}

/// Whether an object carries the config-hash annotation.
fn has_config_hash(obj: &Value) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
        .is_some_and(Value::is_string)
}

/// Whether a stored policy is exactly what the generator would write: the
/// same spec, the same labels and annotations (no more, no fewer), and
/// written by netpol-guard ([`is_ours`]). Anything else is taken over whole:
/// an edit that only adds fields (an `ingress: [{}]` next to ours), a
/// squatter's object with the right name, or a config change.
pub fn exactly_as_desired(stored: &Value, desired: &Value) -> bool {
    let map = |v: &Value, p: &str| v.pointer(p).cloned().unwrap_or_else(|| json!({}));
    stored.get("spec") == desired.get("spec")
        && map(stored, "/metadata/labels") == map(desired, "/metadata/labels")
        && map(stored, "/metadata/annotations") == map(desired, "/metadata/annotations")
        && is_ours(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforce_gets_both_with_the_exact_specs() {
        let p = desired("payments", &Settings::default(), Mode::Enforce);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0]["metadata"]["name"], DEFAULT_DENY);
        assert_eq!(
            p[0]["spec"],
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
        );
        assert_eq!(p[1]["metadata"]["name"], ALLOW_DNS);
        assert_eq!(
            p[1]["spec"],
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})
        );
        for x in &p {
            assert_eq!(x["metadata"]["namespace"], "payments");
            assert_eq!(
                x["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "netpol-guard"
            );
            assert_eq!(
                x["metadata"]["annotations"][CONFIG_HASH_ANNOTATION],
                config_hash(&Settings::default().config.baseline)
            );
        }
    }

    /// Audit mode must change no pod's connectivity. A pod is isolated in a
    /// direction as soon as one policy with that policyType selects it, so
    /// no generated policy may select any pod: not one without labels, not
    /// one with the most common labels, not one with the DNS pods' labels.
    #[test]
    fn audit_mode_generates_nothing_that_selects_a_pod() {
        let settings =
            Settings::from_yaml("baseline:\n  nodeLocalDnsCidr: 169.254.20.10/32\n").unwrap();
        let pods: [&[(&str, &str)]; 3] = [
            &[],
            &[("app", "ledger"), ("tier", "backend")],
            &[("k8s-app", "kube-dns")],
        ];
        for p in desired("payments", &settings, Mode::Audit) {
            let sel =
                crate::selector::Selector::from_value(p.pointer("/spec/podSelector")).unwrap();
            for labels in pods {
                let labels: crate::selector::Labels = labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                assert!(
                    !sel.matches(&labels),
                    "audit mode generated {} selecting pods {labels:?}",
                    p["metadata"]["name"]
                );
            }
        }
        assert!(desired("payments", &settings, Mode::Audit).is_empty());
        // Enforce creates both together.
        let names: Vec<_> = desired("payments", &settings, Mode::Enforce)
            .iter()
            .map(|x| x["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, NAMES);
    }

    #[test]
    fn dns_settings_and_node_local_cache_are_honoured_and_change_the_hash() {
        let s = Settings::from_yaml(
            "baseline:\n  dnsNamespace: dns\n  dnsPodLabels: {app: coredns}\n  dnsPorts: [{protocol: UDP, port: 5353}, {protocol: TCP, port: 5353}]\n  nodeLocalDnsCidr: 169.254.20.10/32\n",
        )
        .unwrap();
        let p = desired("a", &s, Mode::Enforce);
        let egress = &p[1]["spec"]["egress"][0];
        assert_eq!(
            egress["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "dns"
        );
        assert_eq!(
            egress["to"][0]["podSelector"]["matchLabels"],
            json!({"app": "coredns"})
        );
        assert_eq!(
            egress["to"][1],
            json!({"ipBlock": {"cidr": "169.254.20.10/32"}})
        );
        assert_eq!(egress["ports"][0]["port"], 5353);
        assert_ne!(
            config_hash(&s.config.baseline),
            config_hash(&Settings::default().config.baseline)
        );
        assert_eq!(
            config_hash(&s.config.baseline),
            config_hash(&s.config.baseline)
        );
    }

    const SCRAPE: &str = "baseline:\n  extraPolicies:\n  - name: allow-prometheus-scrape\n    spec:\n      podSelector: {}\n      policyTypes: [Ingress]\n      ingress:\n      - from:\n        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n          podSelector: {matchLabels: {app: prometheus}}\n        ports: [{port: 9090}]\n";

    #[test]
    fn enforce_adds_the_extra_policies_labelled_and_hashed_and_audit_none() {
        let s = Settings::from_yaml(SCRAPE).unwrap();
        let p = desired("payments", &s, Mode::Enforce);
        let names: Vec<_> = p.iter().map(|x| x["metadata"]["name"].clone()).collect();
        assert_eq!(
            names,
            [
                DEFAULT_DENY,
                ALLOW_DNS,
                "netpol-guard-allow-prometheus-scrape"
            ]
        );
        let extra = &p[2];
        assert_eq!(
            extra["metadata"],
            json!({"name": "netpol-guard-allow-prometheus-scrape", "namespace": "payments",
                "labels": {MANAGED_BY_KEY: MANAGED_BY_VALUE},
                "annotations": {CONFIG_HASH_ANNOTATION: config_hash(&s.config.baseline)}})
        );
        assert_eq!(extra["spec"], s.extra_baseline[0].spec);
        assert_eq!(extra["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        // Written by netpol-guard: its own.
        assert!(is_ours(extra));
        // Audit mode: nothing, the extra policy included.
        assert!(desired("payments", &s, Mode::Audit).is_empty());
        // Its name is reserved like the built-ins'.
        assert_eq!(
            reserved_names(&s),
            [
                DEFAULT_DENY,
                ALLOW_DNS,
                "netpol-guard-allow-prometheus-scrape"
            ]
        );
        assert!(is_reserved("netpol-guard-allow-prometheus-scrape", &s));
        assert!(!is_reserved(
            "netpol-guard-allow-prometheus-scrape",
            &Settings::default()
        ));
        assert!(!is_reserved("allow-prometheus-scrape", &s));
    }

    /// An edit of an extra policy's spec in the config must reach every
    /// namespace: the hash every generated policy carries changes with it.
    #[test]
    fn an_extra_policys_spec_changes_the_hash() {
        let a = Settings::from_yaml(SCRAPE).unwrap();
        let b = Settings::from_yaml(&SCRAPE.replace("9090", "9091")).unwrap();
        let none = Settings::default();
        let hashes = [&a, &b, &none].map(|s| config_hash(&s.config.baseline));
        assert_ne!(hashes[0], hashes[1]);
        assert_ne!(hashes[0], hashes[2]);
        assert_eq!(
            hashes[0],
            config_hash(&Settings::from_yaml(SCRAPE).unwrap().config.baseline)
        );
        let want_a = &desired("a", &a, Mode::Enforce)[2];
        let want_b = &desired("a", &b, Mode::Enforce)[2];
        assert!(!exactly_as_desired(want_a, want_b));
    }

    #[test]
    fn the_generated_policies_pass_netpol_guards_own_rules() {
        let with_cache =
            Settings::from_yaml("baseline:\n  nodeLocalDnsCidr: 169.254.20.10/32\n").unwrap();
        for s in [
            Settings::default(),
            with_cache,
            Settings::from_yaml(SCRAPE).unwrap(),
        ] {
            for p in desired("a", &s, Mode::Enforce) {
                let findings = crate::rules::netpol::check(&p, &s);
                assert!(
                    findings.is_empty(),
                    "{}: {findings:?}",
                    p["metadata"]["name"]
                );
            }
        }
    }

    /// managedFields as the API server writes them after netpol-guard's
    /// server-side apply, plus any other managers' entries.
    fn managed_by(obj: &mut Value, managers: &[(&str, Value)]) {
        obj["metadata"]["managedFields"] = managers
            .iter()
            .map(|(m, fields)| {
                json!({"manager": m, "operation": "Apply",
                "apiVersion": "networking.k8s.io/v1", "fieldsType": "FieldsV1", "fieldsV1": fields})
            })
            .collect();
    }

    fn ours_fields() -> Value {
        json!({"f:metadata": {"f:labels": {}}, "f:spec": {"f:podSelector": {}, "f:policyTypes": {}}})
    }

    #[test]
    fn exact_means_same_spec_labels_annotations_and_written_by_netpol_guard() {
        let d = &desired("a", &Settings::default(), Mode::Enforce)[1];
        let mut stored = d.clone();
        stored["metadata"]["resourceVersion"] = json!("7");
        stored["metadata"]["uid"] = json!("u");
        managed_by(&mut stored, &[(FIELD_MANAGER, ours_fields())]);
        assert!(
            exactly_as_desired(&stored, d),
            "server-set fields are not drift"
        );
        // An edit that only adds a field.
        let mut added = stored.clone();
        added["spec"]["ingress"] = json!([{}]);
        assert!(!exactly_as_desired(&added, d));
        let mut edited = stored.clone();
        edited["spec"]["egress"][0]["ports"] = json!([{"protocol": "UDP", "port": 53}]);
        assert!(!exactly_as_desired(&edited, d));
        let mut relabelled = stored.clone();
        relabelled["metadata"]["labels"]["team"] = json!("x");
        assert!(!exactly_as_desired(&relabelled, d));
        let mut unhashed = stored.clone();
        unhashed["metadata"]["annotations"] = json!({});
        assert!(!exactly_as_desired(&unhashed, d));
        // The same content, but another manager owns part of the spec.
        let mut shared = stored.clone();
        managed_by(
            &mut shared,
            &[
                (FIELD_MANAGER, ours_fields()),
                (
                    "kubectl-client-side-apply",
                    json!({"f:spec": {"f:podSelector": {}}}),
                ),
            ],
        );
        assert!(!exactly_as_desired(&shared, d));
    }

    #[test]
    fn the_label_alone_proves_nothing() {
        let d = &desired("a", &Settings::default(), Mode::Enforce)[0];
        let mut ours = d.clone();
        managed_by(&mut ours, &[(FIELD_MANAGER, ours_fields())]);
        assert!(is_ours(&ours));
        // Offline manifests (no managedFields): name and label.
        assert!(is_ours(d));
        // A squatter: the name and the label, written by kubectl.
        let mut squatter = d.clone();
        managed_by(
            &mut squatter,
            &[("kubectl-client-side-apply", ours_fields())],
        );
        assert!(!is_ours(&squatter));
        // Another name with the label: never a baseline.
        let mut impostor = ours.clone();
        impostor["metadata"]["name"] = json!("allow-everything");
        assert!(!is_ours(&impostor));
        impostor["metadata"]["name"] = json!("netpol-guard-");
        assert!(!is_ours(&impostor));
        // An extra policy's name, configured or no longer: netpol-guard's
        // when it carries the proof, so a removed entry can be deleted.
        let mut extra = ours.clone();
        extra["metadata"]["name"] = json!("netpol-guard-allow-prometheus-scrape");
        assert!(is_ours(&extra));
        managed_by(&mut extra, &[("kubectl-client-side-apply", ours_fields())]);
        assert!(!is_ours(&extra));
        // Released (label removed): an ordinary policy.
        let mut released = ours.clone();
        released["metadata"]["labels"] = json!({});
        assert!(!is_ours(&released));
    }
}

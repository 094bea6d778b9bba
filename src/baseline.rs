//! The baseline netpol-guard generates in every managed namespace:
//! `netpol-guard-default-deny` (isolates every pod) and
//! `netpol-guard-allow-dns` (lets every pod reach the cluster DNS, so
//! default-deny does not break name resolution). Pure: what the policies must
//! look like for a namespace, given the settings and the namespace's mode.

use serde_json::{Value, json};

use crate::cluster::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::config::{Baseline, Mode, Settings};

pub const DEFAULT_DENY: &str = "netpol-guard-default-deny";
pub const ALLOW_DNS: &str = "netpol-guard-allow-dns";
/// Annotation with the hash of the baseline settings that produced a policy.
pub const CONFIG_HASH_ANNOTATION: &str = "netpol-guard.io/config-hash";

/// Every baseline policy name, whatever the mode: what the generator removes
/// when a namespace needs none of them.
pub const NAMES: [&str; 2] = [DEFAULT_DENY, ALLOW_DNS];

/// The baseline policies a managed namespace must have. In `audit` mode none:
/// any policy that selects a pod isolates it in that policy's directions on a
/// CNI that enforces NetworkPolicy (seed 003: the first policy that selects a
/// pod flips it to deny-all). Even the DNS allow alone, `podSelector: {}`
/// with `policyTypes: [Egress]`, would cut every pod's egress to DNS only.
/// Audit mode reports the impact instead (`BaselineImpact`), and switching
/// the namespace to enforce creates both policies together.
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
        Mode::Enforce => vec![deny, dns],
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

/// Whether a stored policy's spec differs from the desired one (someone
/// edited it, or the config changed).
pub fn drifted(stored: &Value, desired: &Value) -> bool {
    stored.get("spec") != desired.get("spec")
        || stored
            .pointer("/metadata/labels")
            .and_then(|l| l.get(MANAGED_BY_KEY))
            != desired
                .pointer("/metadata/labels")
                .and_then(|l| l.get(MANAGED_BY_KEY))
        || stored
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
            != desired
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(CONFIG_HASH_ANNOTATION))
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

    #[test]
    fn the_generated_policies_pass_netpol_guards_own_rules() {
        let with_cache =
            Settings::from_yaml("baseline:\n  nodeLocalDnsCidr: 169.254.20.10/32\n").unwrap();
        for s in [Settings::default(), with_cache] {
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

    #[test]
    fn drift_is_an_edited_spec_label_or_hash() {
        let d = &desired("a", &Settings::default(), Mode::Enforce)[1];
        let mut stored = d.clone();
        stored["metadata"]["resourceVersion"] = json!("7");
        assert!(!drifted(&stored, d), "server-set fields are not drift");
        stored["spec"]["egress"][0]["ports"] = json!([{"protocol": "UDP", "port": 53}]);
        assert!(drifted(&stored, d));
        let mut relabelled = d.clone();
        relabelled["metadata"]["labels"] = json!({});
        assert!(drifted(&relabelled, d));
    }
}

//! `baseline.extraPolicies` as the config loads it (`Settings::from_yaml`).

use serde_json::json;

use crate::config::Settings;

/// A config with one extra policy `name` whose spec is `spec` (YAML flow).
fn with_extra(name: &str, spec: &str) -> String {
    format!("baseline:\n  extraPolicies:\n  - name: {name}\n    spec: {spec}\n")
}

const SCRAPE: &str = "{podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}, podSelector: {matchLabels: {app: prometheus}}}], ports: [{port: 9090}]}]}";

fn error(yaml: &str) -> String {
    Settings::from_yaml(yaml).unwrap_err().to_string()
}

#[test]
fn a_valid_entry_gets_its_prefixed_name_and_the_stored_form() {
    let s = Settings::from_yaml(&with_extra("allow-prometheus-scrape", SCRAPE)).unwrap();
    assert_eq!(s.extra_baseline.len(), 1);
    let e = &s.extra_baseline[0];
    assert_eq!(e.name, "netpol-guard-allow-prometheus-scrape");
    assert_eq!(e.configured, "allow-prometheus-scrape");
    // The API server's defaults (protocol TCP) are filled in.
    assert_eq!(
        e.spec,
        json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                      "podSelector": {"matchLabels": {"app": "prometheus"}}}],
            "ports": [{"protocol": "TCP", "port": 9090}]}]})
    );
    assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    assert!(s.warnings().is_empty());
}

/// What Kubernetes stores: policyTypes inferred, podSelector present, empty
/// lists and empty matchLabels omitted. Compared as stored, or the
/// generator would rewrite the policy on every reconcile.
#[test]
fn the_spec_is_brought_into_the_form_the_api_server_stores() {
    let s = Settings::from_yaml(&with_extra(
        "a",
        "{ingress: [{from: [], ports: [{port: metrics}]}], egress: [{to: [{ipBlock: {cidr: 10.1.0.0/16, except: []}}], ports: [{protocol: UDP, port: 53}]}], podSelector: {matchLabels: {}}}",
    ))
    .unwrap();
    assert_eq!(
        s.extra_baseline[0].spec,
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": "metrics"}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}],
                        "ports": [{"protocol": "UDP", "port": 53}]}]})
    );
    // Without podSelector or rules: an empty podSelector, Ingress.
    let s = Settings::from_yaml(&with_extra("b", "{policyTypes: []}")).unwrap();
    assert_eq!(
        s.extra_baseline[0].spec,
        json!({"podSelector": {}, "policyTypes": ["Ingress"]})
    );
}

#[test]
fn an_unknown_or_misspelled_key_names_the_policy_and_the_path() {
    let e = error(&with_extra(
        "scrape",
        "{podSelectr: {matchLabels: {app: x}}, policyTypes: [Ingress]}",
    ));
    assert!(
        e == "invalid config: baseline.extraPolicies[0] (scrape): unknown field `spec.podSelectr` (a NetworkPolicy spec has podSelector, policyTypes, ingress and egress)",
        "{e}"
    );
    let e = error(&with_extra(
        "scrape",
        "{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabel: {a: b}}}]}]}",
    ));
    assert!(
        e.ends_with(
            "unknown field `spec.ingress[0].from[0].namespaceSelector.matchLabel` (see kubectl explain networkpolicy.spec.ingress.from.namespaceSelector)"
        ),
        "{e}"
    );
    // The entry itself is strict too.
    let e = error("baseline:\n  extraPolicies:\n  - name: a\n    spec: {}\n    labels: {}\n");
    assert!(e.contains("unknown field `labels`"), "{e}");
    let e = error("baseline:\n  extraPolicies:\n  - name: a\n");
    assert!(e.contains("missing field `spec`"), "{e}");
    let e = error(&with_extra("a", "{podSelector: {}, ingress: {}}"));
    assert!(
        e.starts_with("invalid config: baseline.extraPolicies[0] (a): spec: invalid type"),
        "{e}"
    );
}

#[test]
fn a_built_in_name_or_a_duplicate_is_an_error() {
    for builtin in ["default-deny", "allow-dns"] {
        let e = error(&with_extra(builtin, SCRAPE));
        assert_eq!(
            e,
            format!(
                "invalid config: baseline.extraPolicies[0] ({builtin}): netpol-guard-{builtin} is a built-in baseline policy; give this one another name"
            )
        );
    }
    let e = error(&format!(
        "baseline:\n  extraPolicies:\n  - name: scrape\n    spec: {SCRAPE}\n  - name: other\n    spec: {SCRAPE}\n  - name: scrape\n    spec: {SCRAPE}\n"
    ));
    assert_eq!(
        e,
        "invalid config: baseline.extraPolicies[2] (scrape): duplicate name: baseline.extraPolicies[0] is netpol-guard-scrape too"
    );
}

#[test]
fn an_invalid_name_is_an_error() {
    for (name, want) in [
        ("''", "name must not be empty"),
        (
            "Scrape",
            "\"netpol-guard-Scrape\" is not a NetworkPolicy name",
        ),
        (
            "scrape-",
            "\"netpol-guard-scrape-\" is not a NetworkPolicy name",
        ),
        ("a..b", "\"netpol-guard-a..b\" is not a NetworkPolicy name"),
        ("a_b", "\"netpol-guard-a_b\" is not a NetworkPolicy name"),
        (
            "netpol-guard-scrape",
            "write the name without the netpol-guard- prefix",
        ),
    ] {
        let e = error(&with_extra(name, SCRAPE));
        assert!(
            e.starts_with("invalid config: baseline.extraPolicies[0] ("),
            "{e}"
        );
        assert!(e.contains(want), "{name}: {e}");
    }
    let long = "a".repeat(240);
    assert!(Settings::from_yaml(&with_extra(&long, SCRAPE)).is_ok());
    let e = error(&with_extra(&format!("{long}a"), SCRAPE));
    assert!(
        e.contains("is longer than a NetworkPolicy name may be (253 characters)"),
        "{e}"
    );
    // Dots are allowed, as in any object name.
    assert!(Settings::from_yaml(&with_extra("scrape.v2", SCRAPE)).is_ok());
}

/// The example: a namespace-wide allow from every namespace,
/// without ports, is what the catalog denies a developer; in the baseline
/// of every namespace it is a config error naming the policy and the rule.
#[test]
fn what_the_rule_catalog_denies_is_a_config_error_naming_the_rule() {
    let open =
        "{podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {}}]}]}";
    let e = error(&with_extra("allow-everyone", open));
    assert!(
        e.starts_with(
            "invalid config: baseline.extraPolicies[0] (allow-everyone): any-namespace-peer: ingress rule 0"
        ),
        "{e}"
    );
    let e = error(&with_extra(
        "world",
        "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}",
    ));
    assert!(
        e.starts_with("invalid config: baseline.extraPolicies[0] (world): world-cidr: "),
        "{e}"
    );
    // The config's own rule actions apply: with the rule at warn, it loads
    // and the finding is a load-time warning.
    let s = Settings::from_yaml(&format!(
        "rules:\n  any-namespace-peer: warn\n{}",
        with_extra("allow-everyone", open)
    ))
    .unwrap();
    let w = s.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("baseline.extraPolicies[0] (allow-everyone): any-namespace-peer: "),
        "{w:?}"
    );
    // Limited to ports, the catalog itself only warns.
    let s = Settings::from_yaml(&with_extra(
        "metrics-from-anywhere",
        "{podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 9090}]}]}",
    ))
    .unwrap();
    assert!(
        s.warnings()[0]
            .starts_with("baseline.extraPolicies[0] (metrics-from-anywhere): any-namespace-peer: "),
        "{:?}",
        s.warnings()
    );
}

#[test]
fn what_the_api_server_would_refuse_is_a_config_error() {
    for (spec, want) in [
        (
            "{podSelector: {matchExpressions: [{key: app, operator: In}]}}",
            "spec.podSelector: matchExpressions key \"app\": operator In needs at least one value",
        ),
        (
            "{policyTypes: [Ingres]}",
            "spec.policyTypes: [\"Ingres\"]: use [Ingress], [Egress] or [Ingress, Egress]",
        ),
        (
            "{ingress: [{from: [{}]}]}",
            "spec.ingress[0].from[0]: a peer needs podSelector, namespaceSelector or ipBlock",
        ),
        (
            "{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}], policyTypes: [Egress]}",
            "spec.egress[0].to[0]: ipBlock cannot be combined",
        ),
        (
            "{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/33}}]}], policyTypes: [Egress]}",
            "spec.egress[0].to[0].ipBlock.cidr: ",
        ),
        (
            "{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}], policyTypes: [Egress]}",
            "spec.egress[0].to[0].ipBlock.except: 10.1.0.0/24 is not strictly inside 10.0.0.0/16",
        ),
        (
            "{ingress: [{ports: [{protocol: ICMP, port: 1}]}]}",
            "spec.ingress[0].ports[0].protocol: \"ICMP\": use TCP, UDP or SCTP",
        ),
        (
            "{ingress: [{ports: [{port: 0}]}]}",
            "spec.ingress[0].ports[0].port: 0 is not a port",
        ),
        (
            "{ingress: [{ports: [{port: '8080'}]}]}",
            "spec.ingress[0].ports[0].port: \"8080\" is neither a number nor a port name",
        ),
        (
            "{ingress: [{ports: [{port: 9000, endPort: 8000}]}]}",
            "spec.ingress[0].ports[0].endPort: 8000 must be between port (9000) and 65535",
        ),
        (
            "{ingress: [{ports: [{port: metrics, endPort: 8000}]}]}",
            "spec.ingress[0].ports[0].endPort: needs a numeric port",
        ),
        ("[]", "spec must be a NetworkPolicy spec"),
    ] {
        let e = error(&with_extra("bad", spec));
        assert!(
            e.starts_with("invalid config: baseline.extraPolicies[0] (bad): "),
            "{spec}: {e}"
        );
        assert!(e.contains(want), "{spec}: {e}");
    }
}

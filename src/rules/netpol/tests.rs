use super::*;
use crate::rules::Action;
use serde_json::json;

/// Runs the rules and checks the invariants every finding must keep.
fn run_with(policy: &Value, settings: &Settings) -> Vec<Finding> {
    let out = check(policy, settings);
    crate::rules::assert_well_formed(&out);
    out
}

fn run(policy: &Value) -> Vec<Finding> {
    run_with(policy, &Settings::default())
}

fn np(spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "p", "namespace": "payments"}, "spec": spec})
}

fn rules(fs: &[Finding]) -> Vec<RuleId> {
    fs.iter().map(|f| f.rule).collect()
}

fn settings_yaml(y: &str) -> Settings {
    Settings::from_yaml(y).unwrap()
}

/// Settings whose only cluster CIDR is IPv6, for tests of other rules
/// with wide IPv4 blocks: cluster-cidr-peer then has nothing to say
/// about them (without clusterCidrs it warns about private ranges).
fn v6_cluster(extra: &str) -> Settings {
    settings_yaml(&format!("clusterCidrs: ['fd00:10:244::/56']\n{extra}"))
}

// ----- canonical safe shapes ------------------------------------------

#[test]
fn default_deny_is_clean() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}));
    assert_eq!(run(&p), vec![]);
}

#[test]
fn dns_allow_is_clean() {
    let p = np(json!({
        "podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{
            "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
        }]
    }));
    assert_eq!(run(&p), vec![]);
}

#[test]
fn api_policy_is_clean() {
    let p = np(json!({
        "podSelector": {"matchLabels": {"app": "api"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}],
                     "ports": [{"protocol": "TCP", "port": 8080}]}],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "postgres"}}}],
                    "ports": [{"protocol": "TCP", "port": 5432}]}]
    }));
    assert_eq!(run(&p), vec![]);
}

// ----- allow-all-peers -------------------------------------------------

#[test]
fn allow_all_ingress_rule_is_denied() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::AllowAllPeers]);
    assert_eq!(f[0].severity, Action::Deny);
    assert!(f[0].message.contains("ingress rule 0"), "{}", f[0].message);
    assert!(f[0].message.contains("every source"), "{}", f[0].message);
    assert!(f[0].message.contains("Fix:"), "{}", f[0].message);
}

#[test]
fn empty_from_and_null_rule_are_allow_all() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
                      "ingress": [{"from": []}, null]}));
    let f = run(&p);
    assert_eq!(
        rules(&f),
        vec![RuleId::AllowAllPeers, RuleId::AllowAllPeers]
    );
    assert!(f[0].message.contains("an empty from"), "{}", f[0].message);
    assert!(f[1].message.contains("ingress rule 1"), "{}", f[1].message);
    assert!(f.iter().all(|f| f.severity == Action::Deny));
}

#[test]
fn allow_all_with_ports_is_milder() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::AllowAllPeers]);
    assert_eq!(f[0].severity, Action::Warn);
    assert!(f[0].message.contains("egress rule 0"), "{}", f[0].message);
    assert!(f[0].message.contains("UDP 53, TCP 53"), "{}", f[0].message);
    assert!(
        f[0].message.contains("every destination"),
        "{}",
        f[0].message
    );
}

#[test]
fn full_port_range_or_protocol_only_is_no_port_limit() {
    for ports in [
        json!([{"protocol": "TCP", "port": 1, "endPort": 65535}]),
        json!([{"protocol": "UDP"}]),
        json!([{}]),
        json!([]),
    ] {
        let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
                          "egress": [{"ports": ports}]}));
        let f = run(&p);
        assert_eq!(rules(&f), vec![RuleId::AllowAllPeers], "{ports}");
        assert_eq!(f[0].severity, Action::Deny, "{ports}");
    }
    // A narrower range, or a named port, is a restriction.
    for ports in [
        json!([{"protocol": "TCP", "port": 1024, "endPort": 65535}]),
        json!([{"port": "https"}]),
        json!([{"port": "443"}]),
    ] {
        let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
                          "egress": [{"ports": ports}]}));
        let f = run(&p);
        assert_eq!(rules(&f), vec![RuleId::AllowAllPeers], "{ports}");
        assert_eq!(f[0].severity, Action::Warn, "{ports}");
    }
}

#[test]
fn rule_with_peers_is_not_allow_all() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {}}]}]}));
    assert_eq!(run(&p), vec![]);
}

// ----- any-namespace-peer ---------------------------------------------

#[test]
fn empty_namespace_selector_is_denied() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}},
                              {"namespaceSelector": {}}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::AnyNamespacePeer]);
    assert_eq!(f[0].severity, Action::Deny);
    assert!(
        f[0].message.contains("ingress rule 0, peer 1"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("every pod in every namespace"),
        "{}",
        f[0].message
    );
}

#[test]
fn empty_namespace_and_pod_selector_is_denied_and_milder_with_ports() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
    "egress": [
        {"to": [{"namespaceSelector": {"matchLabels": {}}, "podSelector": {}}]},
        {"to": [{"namespaceSelector": {}}], "ports": [{"port": 9090}]}
    ]}));
    let f = run(&p);
    assert_eq!(
        rules(&f),
        vec![RuleId::AnyNamespacePeer, RuleId::AnyNamespacePeer]
    );
    assert_eq!(f[0].severity, Action::Deny);
    assert!(f[0].message.contains("podSelector: {}"), "{}", f[0].message);
    assert_eq!(f[1].severity, Action::Warn);
    assert!(
        f[1].message.contains("egress rule 1, peer 0"),
        "{}",
        f[1].message
    );
    assert!(f[1].message.contains("TCP 9090"), "{}", f[1].message);
}

#[test]
fn empty_namespace_selector_with_pod_selector_is_not_any_namespace() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {},
                               "podSelector": {"matchLabels": {"app": "prometheus"}}}]}]}));
    assert_eq!(run(&p), vec![]);
}

// ----- world-cidr --------------------------------------------------------

#[test]
fn zero_cidr_is_denied_even_with_ports_and_except() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                    "ports": [{"protocol": "TCP", "port": 443}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert_eq!(f[0].severity, Action::Deny);
    let m = &f[0].message;
    assert!(
        m.contains("egress rule 0, peer 0: ipBlock 0.0.0.0/0"),
        "{m}"
    );
    assert!(m.contains("every IPv4 address"), "{m}");
    assert!(m.contains("except"), "{m}");
    assert!(m.contains("allowedCidrs"), "{m}");
}

#[test]
fn ipv6_zero_cidr_is_denied() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "::/0"}}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert!(
        f[0].message.contains("every IPv6 address (limit /32)"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("admits traffic from"),
        "{}",
        f[0].message
    );
}

#[test]
fn wide_but_not_zero_cidr_names_the_limit() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "16.0.0.0/4"}}, {"ipBlock": {"cidr": "2001:db8::/16"}}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr, RuleId::WorldCidr]);
    assert!(
        f[0].message
            .contains("16.0.0.0/4 is wider than the /8 limit"),
        "{}",
        f[0].message
    );
    assert!(f[1].message.contains("peer 1"), "{}", f[1].message);
    assert!(f[1].message.contains("/32 limit"), "{}", f[1].message);
}

#[test]
fn specific_cidr_passes() {
    let p = np(
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "52.94.0.0/16"}}],
                    "ports": [{"protocol": "TCP", "port": 443}]},
                   {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"ipBlock": {"cidr": "fd00::/32"}}]}]}),
    );
    // A /8 is within world-cidr's limit; without clusterCidrs, a block
    // over a private range warns under cluster-cidr-peer.
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert_eq!(f[0].severity, Action::Warn);
    // With the cluster's CIDRs known, and elsewhere, it passes.
    let s = settings_yaml("clusterCidrs: [172.20.0.0/16, 'fd01::/48']\n");
    assert_eq!(run_with(&p, &s), vec![]);
}

#[test]
fn allowed_cidrs_pass() {
    let s = v6_cluster("allowedCidrs: [0.0.0.0/0, '2000::/3']\n");
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "2000::/4"}}],
                    "ports": [{"port": 443}]}]}));
    assert_eq!(run_with(&p, &s), vec![]);
    // Inside an allowed range passes; wider than it does not.
    let s = v6_cluster("allowedCidrs: [100.64.0.0/10]\n");
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "100.64.0.0/10"}}, {"ipBlock": {"cidr": "100.0.0.0/6"}}],
                    "ports": [{"port": 443}]}]}));
    let s2 = v6_cluster("cidrLimits: {ipv4MinPrefix: 16}\nallowedCidrs: [100.64.0.0/10]\n");
    assert_eq!(run_with(&p, &s).len(), 1);
    let f = run_with(&p, &s2);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert!(f[0].message.contains("peer 1"), "{}", f[0].message);
}

#[test]
fn custom_limits_apply() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "52.94.0.0/16"}}], "ports": [{"port": 443}]}]}));
    let strict = settings_yaml("cidrLimits: {ipv4MinPrefix: 24}\n");
    let f = run_with(&p, &strict);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert!(f[0].message.contains("/24 limit"), "{}", f[0].message);
    let lax = settings_yaml("cidrLimits: {ipv4MinPrefix: 0, ipv6MinPrefix: 0}\n");
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}],
                    "ports": [{"port": 443}]}]}));
    // world-cidr accepts both; 0.0.0.0/0 still spans the private ranges.
    let f = run_with(&p, &lax);
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert!(
        f[0].message.contains("peer 0: ipBlock 0.0.0.0/0"),
        "{}",
        f[0].message
    );
}

#[test]
fn union_covering_the_whole_space_is_denied() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}}]}]}));
    // Each /1 is itself wider than /8: two per-peer findings, no extra union one.
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr, RuleId::WorldCidr]);
    // With a lax limit each half passes but the union still covers everything.
    let lax = v6_cluster("cidrLimits: {ipv4MinPrefix: 1}\n");
    let f = run_with(&p, &lax);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert_eq!(f[0].severity, Action::Deny);
    let m = &f[0].message;
    assert!(
        m.starts_with("world-cidr: egress rule 0: CIDRs 0.0.0.0/1, 128.0.0.0/1"),
        "{m}"
    );
    assert!(m.contains("together cover every IPv4 address"), "{m}");
    // Allowed halves also pass one by one, but not together.
    let allowed = v6_cluster("allowedCidrs: [0.0.0.0/1, 128.0.0.0/1]\n");
    assert_eq!(rules(&run_with(&p, &allowed)), vec![RuleId::WorldCidr]);
    // A gap means no union finding.
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "192.0.0.0/2"}}]}]}));
    assert_eq!(run_with(&p, &lax), vec![]);
    // Blocks in different rules add up too (issue 13; they did not).
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/1"}}]},
                   {"to": [{"ipBlock": {"cidr": "128.0.0.0/1"}}]}]}));
    assert_eq!(rules(&run_with(&p, &lax)), vec![RuleId::WorldCidr]);
    // Ingress and egress blocks do not.
    let p = np(
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/1"}}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "128.0.0.0/1"}}]}]}),
    );
    assert_eq!(run_with(&p, &lax), vec![]);
}

#[test]
fn ipv6_union_and_many_blocks() {
    let lax = settings_yaml("cidrLimits: {ipv6MinPrefix: 1}\nclusterCidrs: [10.244.0.0/16]\n");
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "::/1"}}, {"ipBlock": {"cidr": "8000::/1"}}]}]}));
    let f = run_with(&p, &lax);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert!(
        f[0].message.contains("every IPv6 address"),
        "{}",
        f[0].message
    );
    // 256 /8 blocks: the union message stays short.
    let peers: Vec<Value> = (0..256)
        .map(|i| json!({"ipBlock": {"cidr": format!("{i}.0.0.0/8")}}))
        .collect();
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": peers}]}));
    let f = run_with(&p, &v6_cluster(""));
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert!(f[0].message.contains("and 248 more"), "{}", f[0].message);
}

/// Issue 13: ipBlocks add up over the whole policy, not per rule; and a
/// port range that leaves a port or two out is no restriction.
#[test]
fn cidrs_add_up_across_rules_and_near_full_port_ranges_do_not_restrict() {
    let half = |i: u32| -> Vec<Value> {
        (i * 128..(i + 1) * 128)
            .map(|n| json!({"ipBlock": {"cidr": format!("{n}.0.0.0/8")}}))
            .collect()
    };
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": half(0)}, {"to": half(1)}]}));
    let f = run_with(&p, &v6_cluster(""));
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert!(
        f[0].message
            .starts_with("world-cidr: egress rules: CIDRs 0.0.0.0/8, "),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("together cover every IPv4 address"),
        "{}",
        f[0].message
    );
    // One rule that already covers it is reported once, not twice.
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}));
    assert_eq!(
        rules(&run_with(&p, &v6_cluster(""))),
        vec![RuleId::WorldCidr]
    );
    // `port: 1, endPort: 65534`: no restriction, so a denial, not the
    // milder warning of a port-limited rule.
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"protocol": "TCP", "port": 1, "endPort": 65534}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::AllowAllPeers]);
    assert_eq!(f[0].severity, Action::Deny);
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"ports": [{"protocol": "TCP", "port": 1024, "endPort": 65535}]}]}));
    assert_eq!(
        run(&p)[0].severity,
        Action::Warn,
        "every unprivileged port is still a limit"
    );
}

/// Issue 13: a namespaceSelector that matches every namespace without
/// being `{}` slipped past any-namespace-peer (confirmed on a real API
/// server as the edit role).
#[test]
fn selectors_that_match_every_namespace_count_as_empty() {
    for (sel, every) in [
        (
            json!({"matchExpressions": [{"key": "no-such-label", "operator": "DoesNotExist"}]}),
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["nope"]}]}),
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]}),
            true,
        ),
        (
            json!({"matchLabels": {}, "matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]},
            {"key": "c", "operator": "DoesNotExist"}]}),
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "team", "operator": "Exists"}]}),
            false,
        ),
        (
            json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]}),
            false,
        ),
        (
            json!({"matchLabels": {"team": "a"}, "matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}),
            false,
        ),
    ] {
        let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": sel.clone()}]}]}));
        let f = run(&p);
        if every {
            assert_eq!(rules(&f), vec![RuleId::AnyNamespacePeer], "{sel}");
            assert_eq!(f[0].severity, Action::Deny, "{sel}");
            assert!(
                f[0].message
                    .starts_with("any-namespace-peer: ingress rule 0, peer 0: namespaceSelector {"),
                "{}",
                f[0].message
            );
            assert!(
                f[0].message
                    .contains("(it matches every namespace, like {})"),
                "{}",
                f[0].message
            );
        } else {
            assert!(
                !rules(&f).contains(&RuleId::AnyNamespacePeer),
                "{sel}: {f:?}"
            );
        }
    }
    // With ports, as with `{}`: a warning.
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}}],
            "ports": [{"port": 9090}]}]}));
    assert_eq!(run(&p)[0].severity, Action::Warn);
}

/// Issue 13: a CIDR that did not parse was skipped, so `000.0.0.0/0`
/// (which the API server accepts) gave no finding. It is now read as the
/// API server reads it, and what still cannot be read is denied.
#[test]
fn unreadable_cidrs_are_denied_never_skipped() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "everything"}}, {"ipBlock": {"cidr": 0}},
                           {"ipBlock": {"cidr": "0.0.0.0"}}, {"ipBlock": "0.0.0.0/0"}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr, RuleId::WorldCidr]);
    assert_eq!(
        f[0].message,
        "world-cidr: egress rule 0, peer 0: ipBlock \"everything\" is not a CIDR netpol-guard can read (missing /prefix), so what it allows cannot be judged. Fix: write it as e.g. 10.0.0.0/8."
    );
    assert!(
        f[1].message.contains("peer 2: ipBlock \"0.0.0.0\""),
        "{}",
        f[1].message
    );
    for cidr in ["000.0.0.0/0", "::ffff:0.0.0.0/96"] {
        let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": cidr}}]}]}));
        let f = run(&p);
        assert_eq!(rules(&f), vec![RuleId::WorldCidr], "{cidr}");
        assert!(
            f[0].message.contains("every IPv4 address"),
            "{cidr}: {}",
            f[0].message
        );
    }
}

// ----- cluster-cidr-peer -------------------------------------------------

/// A policy whose egress rule 0 goes to `blocks` (ipBlock objects).
fn egress_to(blocks: Value) -> Value {
    let peers: Vec<Value> = blocks
        .as_array()
        .unwrap()
        .iter()
        .map(|b| json!({"ipBlock": b}))
        .collect();
    np(
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"],
        "egress": [{"to": peers, "ports": [{"protocol": "TCP", "port": 443}]}]}),
    )
}

fn pod_cidr() -> Settings {
    settings_yaml("clusterCidrs: [10.244.0.0/16]\n")
}

#[test]
fn block_containing_the_cluster_cidr_is_denied() {
    let f = run_with(&egress_to(json!([{"cidr": "10.0.0.0/8"}])), &pod_cidr());
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert_eq!(f[0].severity, Action::Deny, "ports do not soften it");
    assert_eq!(
        f[0].message,
        "cluster-cidr-peer: egress rule 0, peer 0: ipBlock 10.0.0.0/8 contains cluster CIDR 10.244.0.0/16, \
         so its pods pass by IP whatever the selectors say. Fix: add 10.244.0.0/16 to its except; select pods \
         by label."
    );
    // The detail's YAML carves the cluster CIDR out and selects by label.
    let d = f[0].detail.as_deref().unwrap();
    assert!(d.contains("can be reached by the selected pods"), "{d}");
    let parsed: Value = serde_yaml::from_str(&d[d.find("to:\n").unwrap()..]).unwrap();
    assert_eq!(
        parsed,
        json!({"to": [
            {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
             "podSelector": {"matchLabels": {"app": "prometheus"}}}]})
    );
    // The same block as the cluster CIDR: no except to add.
    let f = run_with(&egress_to(json!([{"cidr": "10.244.0.0/16"}])), &pod_cidr());
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert!(
        f[0].message
            .contains("Fix: keep the block outside 10.244.0.0/16;"),
        "{}",
        f[0].message
    );
}

#[test]
fn half_a_cluster_cidr_is_denied_a_quarter_is_not() {
    for half in ["10.244.0.0/17", "10.244.128.0/17"] {
        let f = run_with(&egress_to(json!([{"cidr": half}])), &pod_cidr());
        assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer], "{half}");
        assert_eq!(f[0].severity, Action::Deny);
        assert!(
            f[0].message.contains(&format!(
                "ipBlock {half} covers 50% of cluster CIDR 10.244.0.0/16, so"
            )),
            "{}",
            f[0].message
        );
    }
    for small in [
        "10.244.0.0/18",
        "10.244.64.0/18",
        "10.244.1.0/24",
        "10.244.0.7/32",
    ] {
        let f = run_with(&egress_to(json!([{"cidr": small}])), &pod_cidr());
        assert_eq!(f, vec![], "{small}");
    }
    // Ingress says the same.
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}},
                              {"ipBlock": {"cidr": "10.244.0.0/17"}}]}]}));
    let f = run_with(&p, &pod_cidr());
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert!(
        f[0].message.starts_with(
            "cluster-cidr-peer: ingress rule 0, peer 1: ipBlock 10.244.0.0/17 covers 50%"
        ),
        "{}",
        f[0].message
    );
    assert!(
        f[0].detail
            .as_deref()
            .unwrap()
            .contains("can connect to the selected pods"),
        "{:?}",
        f[0].detail
    );
}

#[test]
fn except_that_carves_the_cluster_cidr_out_passes() {
    let s = pod_cidr();
    for except in [
        json!(["10.244.0.0/16"]),
        json!(["10.244.0.0/17", "10.244.128.0/17"]),
        json!(["10.128.0.0/9"]),
        json!(["nope", "10.244.0.0/16"]),
        json!(["10.244.0.0/15"]),
    ] {
        let p = egress_to(json!([{"cidr": "10.0.0.0/8", "except": except}]));
        assert_eq!(run_with(&p, &s), vec![], "{except}");
    }
    // What is left of the cluster CIDR still counts.
    for (except, covers) in [
        (json!(["10.244.0.0/17"]), "covers 50% of"),
        (json!(["10.244.0.0/18"]), "covers 75% of"),
        (json!(["10.244.0.0/24"]), "covers 99% of"),
        (json!(["10.0.0.0/9"]), "contains"),
        (json!(["nope"]), "contains"),
        (json!(["fd00::/8"]), "contains"),
    ] {
        let p = egress_to(json!([{"cidr": "10.0.0.0/8", "except": except}]));
        let f = run_with(&p, &s);
        assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer], "{except}");
        assert!(
            f[0].message
                .contains(&format!("10.0.0.0/8 {covers} cluster CIDR 10.244.0.0/16")),
            "{except}: {}",
            f[0].message
        );
    }
    let p = egress_to(json!([{"cidr": "10.0.0.0/8", "except": ["10.244.0.0/18"]}]));
    assert_eq!(run_with(&p, &s)[0].severity, Action::Deny);
    // Less than half left: passes.
    let p = egress_to(json!([{"cidr": "10.0.0.0/8",
        "except": ["10.244.0.0/17", "10.244.128.0/18"]}]));
    assert_eq!(run_with(&p, &s), vec![]);
}

#[test]
fn without_cluster_cidrs_private_ranges_warn() {
    for (cidr, range, n) in [
        ("10.0.0.0/16", "10.0.0.0/8", "65536"),
        ("100.64.0.0/10", "100.64.0.0/10", "4194304"),
        ("192.168.0.0/16", "192.168.0.0/16", "65536"),
        ("172.16.0.0/13", "172.16.0.0/12", "524288"),
        ("100.0.0.0/8", "100.64.0.0/10", "4194304"),
    ] {
        let f = run(&egress_to(json!([{"cidr": cidr}])));
        assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer], "{cidr}");
        assert_eq!(f[0].severity, Action::Warn, "{cidr}");
        assert_eq!(
            f[0].effective(Settings::default().action(RuleId::ClusterCidrPeer)),
            Action::Warn
        );
        assert_eq!(
            f[0].message,
            format!(
                "cluster-cidr-peer: egress rule 0, peer 0: ipBlock {cidr} overlaps {n} addresses of private \
                 range {range}, where pods may live. Fix: narrow the block and select pods by label (set \
                 clusterCidrs for an exact check)."
            )
        );
        assert!(
            f[0].detail.as_deref().unwrap().contains("This only warns"),
            "{:?}",
            f[0].detail
        );
    }
    for quiet in [
        "10.0.0.0/17",
        "192.168.1.0/24",
        "172.16.0.0/17",
        "100.64.0.0/17",
        "52.0.0.0/8",
        "fd00::/32",
        "11.0.0.0/8",
    ] {
        assert_eq!(run(&egress_to(json!([{"cidr": quiet}]))), vec![], "{quiet}");
    }
    // The except list counts here too.
    let p = egress_to(json!([{"cidr": "10.0.0.0/16", "except": ["10.0.0.0/24"]}]));
    assert_eq!(run(&p), vec![]);
    // Once clusterCidrs are set, only they are checked.
    let p = egress_to(json!([{"cidr": "192.168.0.0/16"}, {"cidr": "100.64.0.0/10"}]));
    assert_eq!(rules(&run(&p)), vec![RuleId::ClusterCidrPeer; 2]);
    assert_eq!(run_with(&p, &pod_cidr()), vec![]);
}

#[test]
fn ipv6_and_mapped_cluster_cidrs() {
    let s =
        settings_yaml("clusterCidrs: ['fd00:10:244::/56', 10.244.0.0/16, 'fd00:10:96::/112']\n");
    for (cidr, covers) in [
        ("fd00:10:244::/48", "contains cluster CIDR fd00:10:244::/56"),
        (
            "fd00:10:244::/57",
            "covers 50% of cluster CIDR fd00:10:244::/56",
        ),
        (
            "fd00:10:244:80::/57",
            "covers 50% of cluster CIDR fd00:10:244::/56",
        ),
        (
            "fd00:0010:0096:0000::/64",
            "contains cluster CIDR fd00:10:96::/112",
        ),
        ("::ffff:10.0.0.0/104", "contains cluster CIDR 10.244.0.0/16"),
        ("010.244.000.000/16", "contains cluster CIDR 10.244.0.0/16"),
    ] {
        let f = run_with(&egress_to(json!([{"cidr": cidr}])), &s);
        assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer], "{cidr}");
        assert_eq!(f[0].severity, Action::Deny, "{cidr}");
        assert!(
            f[0].message
                .contains(&format!("ipBlock {cidr} {covers}, so")),
            "{}",
            f[0].message
        );
    }
    for quiet in ["fd00:10:244::/58", "fd00:10:245::/48", "fd00:10:96::/114"] {
        assert_eq!(
            run_with(&egress_to(json!([{"cidr": quiet}])), &s),
            vec![],
            "{quiet}"
        );
    }
    let p = egress_to(
        json!([{"cidr": "fd00:10::/32", "except": ["fd00:10:244::/56", "fd00:10:96::/112"]}]),
    );
    assert_eq!(run_with(&p, &s), vec![]);
    // One block over two cluster CIDRs names the first.
    let f = run_with(&egress_to(json!([{"cidr": "fd00:10::/32"}])), &s);
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert!(
        f[0].message
            .contains("fd00:10::/32 contains cluster CIDR fd00:10:244::/56 (and 1 more), so"),
        "{}",
        f[0].message
    );
}

/// One denial per block: `0.0.0.0/0` is world-cidr's, unless world-cidr
/// does not deny it (allowedCidrs, a wider limit, or warn/off).
#[test]
fn a_block_world_cidr_denies_is_not_denied_twice() {
    let p = egress_to(json!([{"cidr": "0.0.0.0/0"}]));
    assert_eq!(rules(&run_with(&p, &pod_cidr())), vec![RuleId::WorldCidr]);
    assert_eq!(rules(&run(&p)), vec![RuleId::WorldCidr]);
    let softer = settings_yaml("clusterCidrs: [10.244.0.0/16]\nrules: {world-cidr: warn}\n");
    assert_eq!(
        rules(&run_with(&p, &softer)),
        vec![RuleId::WorldCidr, RuleId::ClusterCidrPeer]
    );
    let s =
        settings_yaml("clusterCidrs: [10.244.0.0/16, 10.96.0.0/12]\nallowedCidrs: [0.0.0.0/0]\n");
    let f = run_with(&p, &s);
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert_eq!(f[0].severity, Action::Deny);
    assert_eq!(
        f[0].message,
        "cluster-cidr-peer: egress rule 0, peer 0: ipBlock 0.0.0.0/0 contains cluster CIDR 10.244.0.0/16 (and 1 \
         more), so its pods pass by IP whatever the selectors say. Fix: add 10.244.0.0/16 to its except; select \
         pods by label."
    );
    // Internet egress with the cluster carved out is what it asks for.
    let p = egress_to(json!([{"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16", "10.96.0.0/12"]}]));
    assert_eq!(run_with(&p, &s), vec![]);
}

#[test]
fn blocks_that_cover_a_cluster_cidr_together_are_denied() {
    let s = pod_cidr();
    let p = egress_to(json!([{"cidr": "10.244.0.0/18"}, {"cidr": "10.244.64.0/18"}]));
    let f = run_with(&p, &s);
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert_eq!(f[0].severity, Action::Deny);
    assert_eq!(
        f[0].message,
        "cluster-cidr-peer: egress rule 0: ipBlocks 10.244.0.0/18, 10.244.64.0/18 together cover 50% of \
         cluster CIDR 10.244.0.0/16, so its pods pass by IP whatever the selectors say. Fix: keep the blocks \
         outside 10.244.0.0/16; select pods by label."
    );
    // Split over rules, and completely.
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/17"}}, {"ipBlock": {"cidr": "52.0.0.0/8"}}]},
                   {"to": [{"ipBlock": {"cidr": "10.244.128.0/17"}}]}]}));
    let f = run_with(&p, &settings_yaml("clusterCidrs: [10.244.0.0/15]\n"));
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert!(
        f[0].message.starts_with(
            "cluster-cidr-peer: egress rules: ipBlocks 10.244.0.0/17, 10.244.128.0/17 together cover 50% of \
             cluster CIDR 10.244.0.0/15"
        ),
        "{}",
        f[0].message
    );
    let f = run_with(&p, &s);
    assert_eq!(
        rules(&f),
        vec![RuleId::ClusterCidrPeer; 2],
        "each half alone"
    );
    assert!(f.iter().all(|f| !f.message.contains("together")), "{f:?}");
    // Ingress and egress blocks do not add up; nor do narrow ones.
    let p = np(
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.244.0.0/18"}}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.244.64.0/18"}}]}]}),
    );
    assert_eq!(run_with(&p, &s), vec![]);
    let p = egress_to(json!([{"cidr": "10.244.0.0/18"}, {"cidr": "10.244.64.0/19"}]));
    assert_eq!(run_with(&p, &s), vec![]);
    // Without clusterCidrs, two /17s of 10.0.0.0/8 warn together.
    let p = egress_to(json!([{"cidr": "10.0.0.0/17"}, {"cidr": "10.9.0.0/17"}]));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::ClusterCidrPeer]);
    assert_eq!(f[0].severity, Action::Warn);
    assert!(
        f[0].message.contains(
            "ipBlocks 10.0.0.0/17, 10.9.0.0/17 together overlap 65536 addresses of private range 10.0.0.0/8"
        ),
        "{}",
        f[0].message
    );
}

/// Realistic long shapes (late rules and peers, IPv6 blocks as written,
/// several cluster CIDRs) fit in one uncut line.
#[test]
fn cluster_cidr_messages_fit_without_truncation() {
    let filler: Vec<Value> = (0..40).map(|_| json!({"podSelector": {}})).collect();
    let mut rules_list: Vec<Value> = (0..12).map(|_| json!({"from": filler.clone()})).collect();
    let mut peers = filler.clone();
    for cidr in [
        "fd00:0010:0244:0000:0000:0000:0000:0000/48",
        "fd00:0010:0244:0000:0000:0000:0000:0000/57",
        "::ffff:100.64.0.0/106",
        "0.0.0.0/0",
    ] {
        peers.push(json!({"ipBlock": {"cidr": cidr}}));
    }
    rules_list.push(json!({"from": peers}));
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": rules_list}));
    let configured = settings_yaml(
        "clusterCidrs: ['fd00:10:244::/56', 'fd00:10:96::/108', 10.244.0.0/16, 10.96.0.0/12]\n\
         allowedCidrs: [0.0.0.0/0]\n",
    );
    let guessed = settings_yaml("allowedCidrs: [0.0.0.0/0]\n");
    for s in [configured, guessed] {
        let f = run_with(&p, &s);
        assert!(f.len() >= 2, "{f:?}");
        for f in f {
            assert_eq!(f.rule, RuleId::ClusterCidrPeer);
            assert!(!f.message.ends_with("..."), "cut: {}", f.message);
            assert!(
                f.message
                    .starts_with("cluster-cidr-peer: ingress rule 12, peer 4"),
                "{}",
                f.message
            );
        }
    }
}

// ----- or-selector-slip ------------------------------------------------

#[test]
fn or_slip_warns_with_the_and_form() {
    let p = np(
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"purpose": "monitoring"}}},
            {"podSelector": {"matchLabels": {"app": "prometheus"}}}],
            "ports": [{"protocol": "TCP", "port": 9090}]}]}),
    );
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::OrSelectorSlip]);
    assert_eq!(
        f[0].severity,
        Action::Deny,
        "warn comes from the config default"
    );
    let m = &f[0].message;
    assert!(
        m.contains("ingress rule 0: peer 0 (namespaceSelector only) and peer 1"),
        "{m}"
    );
    assert!(m.contains("ORed"), "{m}");
    let d = f[0].detail.as_deref().unwrap();
    let and_form = "from:\n- namespaceSelector:\n    matchLabels:\n      purpose: monitoring\n  \
                    podSelector:\n    matchLabels:\n      app: prometheus";
    assert!(d.contains(and_form), "{d}");
    // The YAML in the detail parses to the AND form.
    let yaml = &d[d.find("from:\n").unwrap()..];
    let parsed: Value = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(
        parsed,
        json!({"from": [{
        "namespaceSelector": {"matchLabels": {"purpose": "monitoring"}},
        "podSelector": {"matchLabels": {"app": "prometheus"}}}]})
    );
}

#[test]
fn or_slip_in_egress_with_expressions_and_reverse_order() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [
            {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}},
            {"ipBlock": {"cidr": "10.1.0.0/24"}},
            {"namespaceSelector": {"matchLabels": {"team": "data"}}}],
            "ports": [{"port": 5432}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::OrSelectorSlip]);
    assert!(
        f[0].message
            .contains("peer 2 (namespaceSelector only) and peer 0"),
        "{}",
        f[0].message
    );
    let d = f[0].detail.as_deref().unwrap();
    let parsed: Value = serde_yaml::from_str(&d[d.find("to:\n").unwrap()..]).unwrap();
    assert_eq!(
        parsed,
        json!({"to": [{
        "namespaceSelector": {"matchLabels": {"team": "data"}},
        "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}}]})
    );
}

#[test]
fn and_form_is_not_or_slip() {
    let p = np(
        json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{
            "namespaceSelector": {"matchLabels": {"purpose": "monitoring"}},
            "podSelector": {"matchLabels": {"app": "prometheus"}}}],
            "ports": [{"protocol": "TCP", "port": 9090}]}]}),
    );
    assert_eq!(run(&p), vec![]);
    // Selectors in different rules are not a slip either.
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"namespaceSelector": {"matchLabels": {"purpose": "monitoring"}}}]},
            {"from": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}]}]}));
    assert_eq!(run(&p), vec![]);
}

#[test]
fn empty_selectors_in_or_slip_render_inline() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {}}, {"podSelector": {"matchLabels": {"app": "x"}}}],
                     "ports": [{"port": 80}]}]}));
    let f = run(&p);
    assert_eq!(
        rules(&f),
        vec![RuleId::AnyNamespacePeer, RuleId::OrSelectorSlip]
    );
    assert_eq!(f[0].severity, Action::Warn);
    let d = f[1].detail.as_deref().unwrap();
    let parsed: Value = serde_yaml::from_str(&d[d.find("from:\n").unwrap()..]).unwrap();
    assert_eq!(
        parsed,
        json!({"from": [{"namespaceSelector": {},
                                        "podSelector": {"matchLabels": {"app": "x"}}}]})
    );
}

// ----- implicit-ingress-isolation --------------------------------------

#[test]
fn egress_rules_without_policy_types_warn() {
    for types in [None, Some(json!([])), Some(Value::Null)] {
        let mut spec = json!({"podSelector": {"matchLabels": {"app": "api"}},
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                        "ports": [{"port": 5432}]}]});
        if let Some(t) = types.clone() {
            spec["policyTypes"] = t;
        }
        let f = run(&np(spec));
        assert_eq!(
            rules(&f),
            vec![RuleId::ImplicitIngressIsolation],
            "{types:?}"
        );
        assert_eq!(f[0].severity, Action::Deny);
        assert!(
            f[0].message.contains("policyTypes: [Egress]"),
            "{}",
            f[0].message
        );
    }
}

#[test]
fn explicit_policy_types_or_ingress_rules_do_not_warn() {
    let egress = json!([{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}]);
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": egress}));
    assert_eq!(run(&p), vec![]);
    let p = np(json!({"podSelector": {}, "egress": egress,
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "a"}}}]}]}));
    assert_eq!(run(&p), vec![]);
    // No egress rules (a plain ingress policy without policyTypes) is fine.
    let p = np(json!({"podSelector": {}, "egress": []}));
    assert_eq!(run(&p), vec![]);
}

// ----- dns-single-protocol ---------------------------------------------

#[test]
fn udp_only_dns_warns() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                    "ports": [{"protocol": "UDP", "port": 53}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::DnsSingleProtocol]);
    assert_eq!(f[0].severity, Action::Deny);
    let m = &f[0].message;
    assert!(m.contains("egress rule 0 opens port 53 on UDP only"), "{m}");
    assert!(m.contains("{protocol: TCP, port: 53}"), "{m}");
}

#[test]
fn tcp_only_dns_by_string_default_protocol_or_range_warns() {
    for ports in [
        json!([{"port": "53"}]),
        json!([{"protocol": "TCP", "port": 53}]),
        json!([{"protocol": "TCP", "port": 50, "endPort": 60}]),
    ] {
        let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}], "ports": ports}]}));
        let f = run(&p);
        assert_eq!(rules(&f), vec![RuleId::DnsSingleProtocol], "{ports}");
        assert!(f[0].message.contains("TCP only"), "{}", f[0].message);
    }
}

#[test]
fn dns_on_both_protocols_or_other_ports_does_not_warn() {
    for ports in [
        json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]),
        json!([{"protocol": "UDP", "port": "53"}, {"protocol": "TCP", "port": 1, "endPort": 1024}]),
        json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP"}]),
        json!([{"protocol": "UDP", "port": 5353}]),
        json!([{"protocol": "SCTP", "port": 53}]),
        json!([{"protocol": "UDP", "port": "dns"}]),
    ] {
        let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}], "ports": ports}]}));
        assert_eq!(run(&p), vec![], "{ports}");
    }
}

#[test]
fn dns_check_also_applies_to_allow_all_rules() {
    let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}]}));
    let f = run(&p);
    assert_eq!(
        rules(&f),
        vec![RuleId::AllowAllPeers, RuleId::DnsSingleProtocol]
    );
    assert_eq!(f[0].severity, Action::Warn);
}

// ----- malformed input ----------------------------------------------------

#[test]
fn malformed_input_never_panics() {
    for v in [
        json!(null),
        json!("NetworkPolicy"),
        json!(42),
        json!([]),
        json!({}),
        json!({"spec": null}),
        json!({"spec": "x"}),
        json!({"spec": []}),
        np(json!({"ingress": "all"})),
        np(json!({"ingress": {"from": []}})),
        np(json!({"ingress": ["from", 1, true], "egress": [[]]})),
        np(json!({"ingress": [{"from": "everyone"}], "policyTypes": ["Ingress"]})),
        np(json!({"ingress": [{"from": ["a", 1, null, [], {}]}], "policyTypes": ["Ingress"]})),
        np(
            json!({"ingress": [{"from": [{"namespaceSelector": "all"}]}], "policyTypes": ["Ingress"]}),
        ),
        np(
            json!({"ingress": [{"from": [{"namespaceSelector": {"matchLabels": 5}}]}], "policyTypes": ["Ingress"]}),
        ),
        np(
            json!({"egress": [{"to": [{"ipBlock": {"cidr": ["0.0.0.0/0"]}}], "ports": "53"}],
                  "policyTypes": "Egress"}),
        ),
        np(json!({"egress": [{"to": [{"podSelector": {}}],
                  "ports": [1, "x", null, {"port": -53}, {"port": 53.5}, {"port": true},
                            {"port": 53, "endPort": "x"}, {"protocol": 17, "port": 53},
                            {"port": 18446744073709551615u64, "endPort": 1}]}],
                  "policyTypes": ["Egress"]})),
    ] {
        let _ = run(&v);
    }
    // A peer that is a string is skipped; the others still count.
    let p = np(json!({"policyTypes": ["Egress"],
        "egress": [{"to": ["0.0.0.0/0", {"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}));
    assert_eq!(rules(&run(&p)), vec![RuleId::WorldCidr]);
    // `from` of the wrong type is neither allow-all nor anything else.
    let p = np(json!({"policyTypes": ["Ingress"], "ingress": [{"from": {"podSelector": {}}}]}));
    assert_eq!(run(&p), vec![]);
}

/// Replaces every node of some realistic policies, one at a time, with
/// values of the wrong type: no panic, and the invariants hold.
#[test]
fn mutating_any_field_never_panics() {
    fn paths(v: &Value, here: Vec<Value>, out: &mut Vec<Vec<Value>>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let mut p = here.clone();
                    p.push(json!(k));
                    paths(c, p, out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    let mut p = here.clone();
                    p.push(json!(i));
                    paths(c, p, out);
                }
            }
            _ => {}
        }
    }
    fn replace(v: &mut Value, path: &[Value], with: &Value) {
        let Some((first, rest)) = path.split_first() else {
            *v = with.clone();
            return;
        };
        let next = match first {
            Value::String(k) => v.get_mut(k.as_str()),
            Value::Number(i) => v.get_mut(i.as_u64().unwrap() as usize),
            _ => None,
        };
        if let Some(n) = next {
            replace(n, rest, with);
        }
    }
    let bases = [np(json!({"podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"a": "b"}}},
                                  {"podSelector": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}},
                                  {"ipBlock": {"cidr": "0.0.0.0/1", "except": ["10.0.0.0/8"]}}],
                         "ports": [{"protocol": "UDP", "port": 53, "endPort": 60}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "::/0"}}], "ports": [{"port": "dns"}]}, {}]}))];
    let weird = [
        json!(null),
        json!(1),
        json!(-1),
        json!("x"),
        json!([]),
        json!({}),
        json!([null]),
        json!(true),
        json!("0.0.0.0/0"),
        json!(53),
    ];
    for base in &bases {
        let mut all = Vec::new();
        paths(base, vec![], &mut all);
        for path in &all {
            for w in &weird {
                let mut v = base.clone();
                replace(&mut v, path, w);
                let _ = run(&v);
            }
        }
    }
}

#[test]
fn long_user_strings_keep_messages_short() {
    let name = "x".repeat(5000);
    let p = np(json!({"policyTypes": ["Egress"],
        "egress": [{"ports": [{"protocol": name.clone(), "port": name.clone()},
                              {"port": "a\nb"}, {"port": 1}, {"port": 2}]}]}));
    let f = run(&p);
    assert_eq!(rules(&f), vec![RuleId::AllowAllPeers]);
    assert!(!f[0].message.contains('\n'));
}

/// Long but valid shapes: big indexes, long named ports, ranges, IPv6.
/// Messages fit without being cut (so the fix is never lost).
#[test]
fn worst_case_messages_fit_without_truncation() {
    let filler: Vec<Value> = (0..120).map(|_| json!({"podSelector": {}})).collect();
    let ports = json!([
        {"protocol": "SCTP", "port": 60000, "endPort": 65000},
        {"protocol": "UDP", "port": "abcdefghijklmno"},
        {"protocol": "TCP", "port": 53, "endPort": 60}
    ]);
    let mut peers = filler.clone();
    peers.push(json!({"namespaceSelector": {}, "podSelector": {}}));
    peers.push(json!({"namespaceSelector": {"matchLabels": {"a": "b"}}}));
    peers.push(
        json!({"ipBlock": {"cidr": "0000:0000:0000:0000:0000:0000:0000:0000/0",
                                  "except": ["::1/128"]}}),
    );
    let mut rules_list: Vec<Value> = (0..120)
        .map(|_| json!({"from": [{"podSelector": {}}]}))
        .collect();
    rules_list.push(json!({"from": peers, "ports": ports}));
    rules_list.push(json!({"from": [], "ports": ports}));
    let union: Vec<Value> = (0..256u32)
        .map(|i| json!({"ipBlock": {"cidr": format!("{:x}ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/8", i)}}))
        .collect();
    rules_list.push(json!({"from": union}));
    let p = np(json!({"podSelector": {}, "ingress": rules_list.clone(), "egress": rules_list}));
    let lax = settings_yaml("cidrLimits: {ipv6MinPrefix: 8}\n");
    let mut seen = std::collections::BTreeSet::new();
    for s in [Settings::default(), lax] {
        for f in run_with(&p, &s) {
            assert!(!f.message.ends_with("..."), "cut: {}", f.message);
            seen.insert(f.rule);
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
}

#[test]
fn findings_are_in_document_order() {
    let p = np(json!({"podSelector": {},
        "ingress": [],
        "egress": [
            {"to": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "0.0.0.0/0"}}]},
            {},
            {"to": [{"namespaceSelector": {"matchLabels": {"a": "b"}}}, {"podSelector": {}}],
             "ports": [{"protocol": "UDP", "port": 53}]}]}));
    let f = run(&p);
    assert_eq!(
        rules(&f),
        vec![
            RuleId::ImplicitIngressIsolation,
            RuleId::AnyNamespacePeer,
            RuleId::WorldCidr,
            RuleId::AllowAllPeers,
            RuleId::OrSelectorSlip,
            RuleId::DnsSingleProtocol,
        ]
    );
    assert!(f[3].message.contains("egress rule 1"), "{}", f[3].message);
    assert!(f[4].message.contains("egress rule 2"), "{}", f[4].message);
}

// ----- fixtures -------------------------------------------------------------

use crate::rules::fixture_object as fixture;

/// The six admission fixtures with a policy object (the Cilium ones are
/// also covered in `cilium::tests`).
#[test]
fn fixtures_give_the_expected_findings() {
    let s = Settings::default();
    assert_eq!(
        crate::rules::cilium::check(&fixture("ciliumnetworkpolicy-create-egress"), false, &s),
        vec![]
    );
    let f =
        crate::rules::cilium::check(&fixture("ciliumnetworkpolicy-create-from-world"), false, &s);
    assert_eq!(rules(&f), vec![RuleId::WorldEntity]);
    assert_eq!(f[0].effective(s.action(RuleId::WorldEntity)), Action::Deny);

    let f = run(&fixture("networkpolicy-create-or-mistake"));
    assert_eq!(rules(&f), vec![RuleId::OrSelectorSlip]);
    assert_eq!(
        f[0].effective(Settings::default().action(RuleId::OrSelectorSlip)),
        Action::Warn
    );

    assert_eq!(run(&fixture("networkpolicy-create-and")), vec![]);

    let f = run(&fixture("networkpolicy-create-any-namespace"));
    assert_eq!(rules(&f), vec![RuleId::AnyNamespacePeer]);
    assert_eq!(
        f[0].effective(Settings::default().action(RuleId::AnyNamespacePeer)),
        Action::Deny
    );

    let f = run(&fixture("networkpolicy-create-world-egress"));
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert_eq!(
        f[0].effective(Settings::default().action(RuleId::WorldCidr)),
        Action::Deny
    );
    assert_eq!(
        f[0].message,
        "world-cidr: egress rule 0, peer 0: ipBlock 0.0.0.0/0 allows traffic to every IPv4 \
         address (limit /8). Fix: list the exact CIDRs you need, or add them to allowedCidrs."
    );
}

#[test]
fn one_line_truncates_and_cleans() {
    let long = format!("world-cidr: {}", "é".repeat(400));
    let s = one_line(&long);
    assert_eq!(s.chars().count(), MAX_WARNING_CHARS);
    assert!(s.ends_with("..."));
    assert_eq!(one_line("a\nb\tc"), "a b c");
    assert_eq!(crate::text::truncate_chars("abcdef", 5), "ab...");
    assert_eq!(crate::text::truncate_chars("abc", 5), "abc");
}

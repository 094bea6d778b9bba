use super::*;
use crate::rules::Action;
use serde_json::json;

fn run_with(policy: &Value, clusterwide: bool, settings: &Settings) -> Vec<Finding> {
    let out = check(policy, clusterwide, settings);
    crate::rules::assert_well_formed(&out);
    out
}

fn cnp(spec: Value) -> Vec<Finding> {
    run_with(
        &json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                     "metadata": {"name": "p", "namespace": "payments"}, "spec": spec}),
        false,
        &Settings::default(),
    )
}

fn ccnp(spec: Value) -> Vec<Finding> {
    run_with(
        &json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
                     "metadata": {"name": "p"}, "spec": spec}),
        true,
        &Settings::default(),
    )
}

fn rules(fs: &[Finding]) -> Vec<RuleId> {
    fs.iter().map(|f| f.rule).collect()
}

fn app(name: &str) -> Value {
    json!({"matchLabels": {"app": name}})
}

// ----- safe shapes --------------------------------------------------------

#[test]
fn a_plain_egress_allow_policy_is_clean() {
    let spec = json!({"endpointSelector": app("payments-api"),
                      "egress": [{"toEndpoints": [app("postgres")]}]});
    assert_eq!(cnp(spec.clone()), vec![]);
    assert_eq!(ccnp(spec), vec![]);
}

#[test]
fn realistic_safe_policy_is_clean() {
    let spec = json!({
        "endpointSelector": app("api"),
        "ingress": [{"fromEndpoints": [app("frontend")],
                     "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]}],
        "egress": [
            {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                              "k8s:k8s-app": "kube-dns"}}],
             "toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}],
                          "rules": {"dns": [{"matchPattern": "*"}]}}]},
            {"toFQDNs": [{"matchName": "api.stripe.com"}, {"matchPattern": "*.example.com"}],
             "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
            {"toEntities": ["kube-apiserver", "health", "ingress"]},
            {"toServices": [{"k8sService": {"serviceName": "api", "namespace": "web"}},
                            {"k8sServiceSelector": {"selector": app("api"), "namespace": "web"}}]},
            {"toNodes": [{"matchLabels": {"node-role.kubernetes.io/control-plane": ""}}],
             "toPorts": [{"ports": [{"port": "6443", "protocol": "TCP"}]}]},
            {"toCIDR": ["52.94.0.0/16"], "toCIDRSet": [{"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}]}
        ],
        "enableDefaultDeny": {"ingress": true, "egress": true}
    });
    assert_eq!(cnp(spec.clone()), vec![]);
    assert_eq!(ccnp(spec), vec![]);
}

// ----- world-entity -------------------------------------------------------

#[test]
fn world_entities_are_denied() {
    let f = cnp(json!({"endpointSelector": app("web"),
        "ingress": [{"fromEntities": ["health", "world"]}],
        "egress": [{"toEntities": ["world-ipv4", "kube-apiserver", "world-ipv6"]}, {"toEntities": ["all"]}]}));
    assert_eq!(rules(&f), vec![RuleId::WorldEntity; 4]);
    assert!(f.iter().all(|f| f.severity == Action::Deny));
    assert!(
        f[0].message
            .starts_with("world-entity: ingress rule 0, fromEntities[1]: entity world admits"),
        "{}",
        f[0].message
    );
    assert!(
        f[1].message
            .contains("egress rule 0, toEntities[0]: entity world-ipv4"),
        "{}",
        f[1].message
    );
    assert!(f[2].message.contains("toEntities[2]"), "{}", f[2].message);
    assert!(
        f[3].message
            .contains("egress rule 1, toEntities[0]: entity all"),
        "{}",
        f[3].message
    );
    assert!(
        f[3].message.contains("inside and outside"),
        "{}",
        f[3].message
    );
}

#[test]
fn kube_apiserver_entity_is_fine() {
    assert_eq!(
        cnp(json!({"endpointSelector": app("op"),
        "egress": [{"toEntities": ["kube-apiserver"]}]})),
        vec![]
    );
}

#[test]
fn cluster_entity_is_denied_in_cnp_and_ccnp() {
    let spec = json!({"endpointSelector": app("db"),
        "ingress": [{"fromEntities": ["kube-apiserver", "cluster"]}],
        "egress": [{"toEntities": [" Cluster "]}]});
    for f in [cnp(spec.clone()), ccnp(spec)] {
        assert_eq!(rules(&f), vec![RuleId::AnyEndpointPeer; 2]);
        assert!(f.iter().all(|f| f.severity == Action::Deny));
        assert!(
            f[0].message.starts_with(
                "any-endpoint-peer: ingress rule 0, fromEntities[1]: entity cluster admits \
                 traffic from every endpoint and node of the cluster, in every namespace."
            ),
            "{}",
            f[0].message
        );
        assert!(
            f[1].message
                .contains("egress rule 0, toEntities[0]: entity cluster allows traffic to"),
            "{}",
            f[1].message
        );
    }
}

#[test]
fn node_entities_and_every_node_warn_by_default() {
    let spec = json!({"endpointSelector": app("web"),
        "ingress": [{"fromEntities": ["host", "remote-node"],
                     "toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]},
                    {"fromNodes": [{}, app("x"),
                                   {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["gpu"]}]}]}],
        "egress": [{"toEntities": ["unmanaged"]}, {"toNodes": [{"matchLabels": {}}]}]});
    let defaults = Settings::default();
    for f in [cnp(spec.clone()), ccnp(spec)] {
        assert_eq!(rules(&f), vec![RuleId::NodeEntity; 6]);
        // Deny severity: the rule's default action (warn) caps it.
        assert!(f.iter().all(|f| f.severity == Action::Deny));
        assert!(
            f.iter()
                .all(|f| f.effective(defaults.action(RuleId::NodeEntity)) == Action::Warn)
        );
        assert!(
            f[0].message.starts_with(
                "node-entity: ingress rule 0, fromEntities[0]: entity host admits traffic \
                 from the local node and its host-network pods."
            ),
            "{}",
            f[0].message
        );
        assert!(
            f[1].message.contains(
                "fromEntities[1]: entity remote-node admits traffic from every other node"
            ),
            "{}",
            f[1].message
        );
        assert!(
            f[2].message.starts_with(
                "node-entity: ingress rule 1, fromNodes[0]: {} admits traffic from every node"
            ),
            "{}",
            f[2].message
        );
        assert!(
            f[3].message
                .contains("fromNodes[2]: selector {\"matchExpressions\""),
            "{}",
            f[3].message
        );
        assert!(
            f[4].message.contains(
                "egress rule 0, toEntities[0]: entity unmanaged allows traffic to every \
                 endpoint Cilium does not manage"
            ),
            "{}",
            f[4].message
        );
        assert!(
            f[5].message.contains("egress rule 1, toNodes[0]: {}"),
            "{}",
            f[5].message
        );
    }
    let deny = Settings::from_yaml("rules: {node-entity: deny}\n").unwrap();
    let f = run_with(
        &json!({"spec": {"endpointSelector": {}, "ingress": [{"fromEntities": ["host"]}]}}),
        false,
        &deny,
    );
    assert_eq!(
        f[0].effective(deny.action(RuleId::NodeEntity)),
        Action::Deny
    );
}

#[test]
fn scoped_entities_and_node_selectors_pass() {
    let spec = json!({"endpointSelector": app("op"),
        "ingress": [{"fromEntities": ["health", "ingress", "kube-apiserver", "init", "none"]},
                    {"fromNodes": [{"matchLabels": {"node-role.kubernetes.io/control-plane": ""}}]}],
        "egress": [{"toEntities": ["kube-apiserver"]},
                   {"toNodes": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["edge"]}]}]}]});
    assert_eq!(cnp(spec.clone()), vec![]);
    assert_eq!(ccnp(spec), vec![]);
}

#[test]
fn reserved_labels_are_judged_like_their_entities() {
    let spec = json!({"endpointSelector": app("web"),
        "ingress": [{"fromEndpoints": [
            {"matchLabels": {"reserved:world": ""}},
            {"matchLabels": {"reserved:host": ""}},
            {"matchExpressions": [{"key": "reserved:remote-node", "operator": "Exists"}]},
            {"matchExpressions": [{"key": "reserved:unmanaged", "operator": "In", "values": [""]},
                                  {"key": "app", "operator": "DoesNotExist"}]}]}],
        "egress": [{"toEndpoints": [{"matchLabels": {"reserved:world-ipv6": ""}},
                                    {"matchLabels": {"reserved:all": ""}}]}]});
    for f in [cnp(spec.clone()), ccnp(spec)] {
        assert_eq!(
            rules(&f),
            vec![
                RuleId::WorldEntity,
                RuleId::NodeEntity,
                RuleId::NodeEntity,
                RuleId::NodeEntity,
                RuleId::WorldEntity,
                RuleId::WorldEntity,
            ]
        );
        assert!(f.iter().all(|f| f.severity == Action::Deny));
        assert!(
            f[0].message.starts_with(
                "world-entity: ingress rule 0, fromEndpoints[0]: label reserved:world admits \
                 traffic from every address outside the cluster."
            ),
            "{}",
            f[0].message
        );
        assert!(
            f[1].message.contains(
                "fromEndpoints[1]: label reserved:host admits traffic from the local node"
            ),
            "{}",
            f[1].message
        );
        assert!(
            f[2].message.contains("label reserved:remote-node"),
            "{}",
            f[2].message
        );
        assert!(
            f[3].message.contains("label reserved:unmanaged"),
            "{}",
            f[3].message
        );
        assert!(
            f[4].message
                .contains("egress rule 0, toEndpoints[0]: label reserved:world-ipv6 allows"),
            "{}",
            f[4].message
        );
        assert!(
            f[5].message.contains("inside and outside"),
            "{}",
            f[5].message
        );
    }
}

#[test]
fn scoped_reserved_labels_pass() {
    let spec = json!({"endpointSelector": app("web"),
        "ingress": [{"fromEndpoints": [
            {"matchLabels": {"reserved:kube-apiserver": ""}},
            {"matchLabels": {"reserved:health": ""}},
            {"matchLabels": {"reserved:ingress": ""}},
            // Reserved labels carry no value, and a second positive label narrows.
            {"matchLabels": {"reserved:world": "true"}},
            {"matchLabels": {"reserved:world": "", "app": "x"}},
            {"matchLabels": {"reserved:world": "", "reserved:kube-apiserver": ""}},
            {"matchExpressions": [{"key": "reserved:world", "operator": "In", "values": ["x"]}]},
            {"matchExpressions": [{"key": "reserved:host", "operator": "Bogus"}]}]}]});
    assert_eq!(cnp(spec.clone()), vec![]);
    assert_eq!(ccnp(spec), vec![]);
}

// ----- world-cidr -----------------------------------------------------------

#[test]
fn wide_cidrs_are_denied() {
    let f = cnp(json!({"endpointSelector": app("web"),
        "ingress": [{"fromCIDR": ["0.0.0.0/0"]}],
        "egress": [{"toCIDRSet": [{"cidrGroupRef": "corp"}, {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}],
                    "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
                   {"toCIDR": ["::/0"]}]}));
    assert_eq!(rules(&f), vec![RuleId::WorldCidr; 3]);
    assert!(f.iter().all(|f| f.severity == Action::Deny));
    assert!(
        f[0].message.starts_with(
            "world-cidr: ingress rule 0, fromCIDR[0]: 0.0.0.0/0 admits traffic from every IPv4"
        ),
        "{}",
        f[0].message
    );
    assert!(
        f[1].message
            .contains("egress rule 0, toCIDRSet[1]: 0.0.0.0/0"),
        "{}",
        f[1].message
    );
    assert!(f[1].message.contains("except"), "{}", f[1].message);
    assert!(
        f[2].message.contains("every IPv6 address"),
        "{}",
        f[2].message
    );
}

#[test]
fn specific_cidr_allowed_cidrs_and_limits() {
    let spec = json!({"endpointSelector": app("web"),
        "egress": [{"toCIDR": ["52.94.0.0/16"], "toPorts": [{"ports": [{"port": "443"}]}]}]});
    let policy = json!({"spec": spec});
    assert_eq!(run_with(&policy, false, &Settings::default()), vec![]);
    let strict = Settings::from_yaml("cidrLimits: {ipv4MinPrefix: 24}\n").unwrap();
    let f = run_with(&policy, false, &strict);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert!(
        f[0].message.contains("wider than the /24 limit"),
        "{}",
        f[0].message
    );
    let allowed =
        Settings::from_yaml("cidrLimits: {ipv4MinPrefix: 24}\nallowedCidrs: [52.0.0.0/8]\n")
            .unwrap();
    assert_eq!(run_with(&policy, false, &allowed), vec![]);
}

#[test]
fn cidr_union_covering_everything_is_denied() {
    let lax = Settings::from_yaml("cidrLimits: {ipv4MinPrefix: 1}\n").unwrap();
    let policy = json!({"spec": {"endpointSelector": app("web"),
        "egress": [{"toCIDR": ["0.0.0.0/1"], "toCIDRSet": [{"cidr": "128.0.0.0/1"}]}]}});
    let f = run_with(&policy, false, &lax);
    assert_eq!(rules(&f), vec![RuleId::WorldCidr]);
    assert!(
        f[0].message
            .starts_with("world-cidr: egress rule 0: CIDRs 0.0.0.0/1, 128.0.0.0/1 together"),
        "{}",
        f[0].message
    );
    // With the default limit, each half is flagged on its own.
    assert_eq!(
        rules(&run_with(&policy, false, &Settings::default())),
        vec![RuleId::WorldCidr; 2]
    );
}

// ----- fqdn-wildcard --------------------------------------------------------

#[test]
fn star_pattern_is_denied() {
    let f = cnp(json!({"endpointSelector": app("web"),
        "egress": [{"toFQDNs": [{"matchName": "api.stripe.com"}, {"matchPattern": "*"}],
                    "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
                   {"toFQDNs": [{"matchPattern": "**."}]}]}));
    assert_eq!(rules(&f), vec![RuleId::FqdnWildcard; 2]);
    assert_eq!(f[0].severity, Action::Deny);
    assert!(
        f[0].message
            .starts_with("fqdn-wildcard: egress rule 0, toFQDNs[1]: matchPattern \"*\""),
        "{}",
        f[0].message
    );
    assert!(
        f[1].message.contains("egress rule 1, toFQDNs[0]"),
        "{}",
        f[1].message
    );
}

#[test]
fn scoped_patterns_and_names_pass() {
    assert_eq!(
        cnp(json!({"endpointSelector": app("web"),
        "egress": [{"toFQDNs": [{"matchName": "api.stripe.com"}, {"matchPattern": "*.example.com"},
                                {"matchPattern": "**.example.com"}, {"matchPattern": ""}]}]})),
        vec![]
    );
    assert!(!matches_every_name(""));
    assert!(matches_every_name(" * "));
    assert!(!matches_every_name("*.com"));
}

#[test]
fn all_wildcard_patterns_and_star_names_are_denied() {
    let f = cnp(json!({"endpointSelector": app("web"),
        "egress": [{"toFQDNs": [{"matchPattern": "*.*"}, {"matchPattern": "**.*"},
                                {"matchPattern": " *.*.*. "}, {"matchName": "*"},
                                {"matchPattern": "*.example.com"}]}]}));
    assert_eq!(rules(&f), vec![RuleId::FqdnWildcard; 4]);
    assert!(f.iter().all(|f| f.severity == Action::Deny));
    assert!(
        f[0].message.starts_with(
            "fqdn-wildcard: egress rule 0, toFQDNs[0]: matchPattern \"*.*\" allows every DNS \
             name of that shape, i.e. any domain anyone can register."
        ),
        "{}",
        f[0].message
    );
    assert!(
        f[1].message.contains("toFQDNs[1]: matchPattern \"**.*\""),
        "{}",
        f[1].message
    );
    assert!(
        f[2].message.contains("toFQDNs[2]: matchPattern \"*.*.*.\""),
        "{}",
        f[2].message
    );
    assert!(
        f[3].message.starts_with(
            "fqdn-wildcard: egress rule 0, toFQDNs[3]: matchName \"*\" allows every DNS name, \
             i.e. the whole internet."
        ),
        "{}",
        f[3].message
    );
    assert!(matches_every_name("*.*"));
    assert!(matches_every_name("**.*."));
    assert!(!matches_every_name("*..*"));
    assert!(!matches_every_name("*.example.com"));
    assert!(!matches_every_name("**.example.com"));
    assert!(!matches_every_name("."));
}

// ----- any-endpoint-peer ---------------------------------------------------

#[test]
fn empty_endpoint_selector_warns_in_cnp_and_denies_in_ccnp() {
    let spec = json!({"endpointSelector": app("db"),
        "ingress": [{"fromEndpoints": [app("api"), {}]}],
        "egress": [{"toEndpoints": [{"matchLabels": {}, "matchExpressions": []}]}]});
    let f = cnp(spec.clone());
    assert_eq!(rules(&f), vec![RuleId::AnyEndpointPeer; 2]);
    assert!(f.iter().all(|f| f.severity == Action::Warn));
    assert!(
        f[0].message
            .starts_with("any-endpoint-peer: ingress rule 0, fromEndpoints[1]: {}"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("every pod of this namespace"),
        "{}",
        f[0].message
    );
    assert_eq!(
        f[0].effective(Settings::default().action(RuleId::AnyEndpointPeer)),
        Action::Warn
    );
    let f = ccnp(spec);
    assert_eq!(rules(&f), vec![RuleId::AnyEndpointPeer; 2]);
    assert!(f.iter().all(|f| f.severity == Action::Deny));
    assert!(
        f[1].message.contains("egress rule 0, toEndpoints[0]"),
        "{}",
        f[1].message
    );
    assert!(
        f[1].message.contains("every endpoint of the cluster"),
        "{}",
        f[1].message
    );
}

#[test]
fn labelled_endpoint_selector_and_empty_endpoint_selector_of_the_policy_pass() {
    // endpointSelector: {} (the policy applies to every pod) is not a peer.
    assert_eq!(
        cnp(json!({"endpointSelector": {},
        "ingress": [{"fromEndpoints": [{"matchExpressions": [{"key": "app", "operator": "Exists"}]}]}]})),
        vec![]
    );
}

#[test]
fn namespace_exists_selector_spans_the_cluster_in_cnp_and_ccnp() {
    for key in [
        "k8s:io.kubernetes.pod.namespace",
        "any:io.kubernetes.pod.namespace",
        "io.kubernetes.pod.namespace",
    ] {
        let sel = json!({"matchExpressions": [{"key": key, "operator": "Exists"}]});
        let spec = json!({"endpointSelector": app("db"),
            "ingress": [{"fromEndpoints": [sel.clone()]}],
            "egress": [{"toEndpoints": [{"matchLabels": {}, "matchExpressions": [
                {"key": key, "operator": "Exists"},
                {"key": "app", "operator": "NotIn", "values": ["x"]}]}]}]});
        for f in [cnp(spec.clone()), ccnp(spec)] {
            // In a CNP too: naming the namespace key lifts the limit to
            // the policy's namespace, so it is every pod of the cluster.
            assert_eq!(rules(&f), vec![RuleId::AnyEndpointPeer; 2], "{key}");
            assert!(f.iter().all(|f| f.severity == Action::Deny), "{key}");
            assert!(
                f[0].message.starts_with(
                    "any-endpoint-peer: ingress rule 0, fromEndpoints[0]: selector \
                     {\"matchExpressions\""
                ),
                "{}",
                f[0].message
            );
            assert!(
                f[0].message
                    .contains("matches (nearly) every endpoint of the cluster."),
                "{}",
                f[0].message
            );
            assert!(
                f[1].message.contains("egress rule 0, toEndpoints[0]"),
                "{}",
                f[1].message
            );
        }
    }
}

#[test]
fn negative_only_selectors_are_judged_like_empty_ones() {
    let spec = json!({"endpointSelector": app("db"),
        "ingress": [{"fromEndpoints": [
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["attacker"]}]},
            {"matchLabels": {}, "matchExpressions": [{"key": "quarantine", "operator": "DoesNotExist"}]},
            {"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "NotIn",
                                   "values": ["kube-system"]}]}]}]});
    let f = cnp(spec.clone());
    assert_eq!(rules(&f), vec![RuleId::AnyEndpointPeer; 3]);
    assert_eq!(
        f.iter().map(|f| f.severity).collect::<Vec<_>>(),
        vec![Action::Warn, Action::Warn, Action::Deny]
    );
    assert!(
        f[0].message
            .contains("fromEndpoints[0]: selector {\"matchExpressions\":[{\"key\":\"app\""),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message
            .contains("matches (nearly) every pod of this namespace."),
        "{}",
        f[0].message
    );
    assert!(
        f[2].message.contains("every endpoint of the cluster"),
        "{}",
        f[2].message
    );
    let f = ccnp(spec);
    assert_eq!(rules(&f), vec![RuleId::AnyEndpointPeer; 3]);
    assert!(f.iter().all(|f| f.severity == Action::Deny));
    assert!(
        f[0].message.contains("every endpoint of the cluster"),
        "{}",
        f[0].message
    );
}

#[test]
fn selectors_with_a_positive_requirement_pass() {
    let spec = json!({"endpointSelector": app("db"),
        "ingress": [{"fromEndpoints": [
            {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
            {"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespace", "operator": "Exists"},
                                  {"key": "app", "operator": "In", "values": ["web"]}]},
            {"matchLabels": {"k8s:io.kubernetes.pod.namespace": "web"},
             "matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["x"]}]},
            {"matchExpressions": [{"key": "io.kubernetes.pod.namespace", "operator": "In",
                                   "values": ["web"]}]},
            {"matchExpressions": [{"key": "k8s:io.kubernetes.pod.namespaces", "operator": "Exists"}]}]}]});
    assert_eq!(cnp(spec.clone()), vec![]);
    assert_eq!(ccnp(spec), vec![]);
}

#[test]
fn service_selectors_matching_every_service_are_flagged() {
    let spec = json!({"endpointSelector": app("web"),
        "egress": [{"toServices": [
            {"k8sServiceSelector": {"selector": {}}},
            {"k8sServiceSelector": {"selector": {"matchLabels": {}}, "namespace": "billing"}},
            {"k8sServiceSelector": {"selector": {"matchExpressions": [
                {"key": "internal", "operator": "DoesNotExist"}]}, "namespace": ""}},
            {"k8sServiceSelector": {"selector": {"matchLabels": {"app": "api"}}}},
            {"k8sService": {"serviceName": "api", "namespace": "web"}},
            {"k8sService": {"serviceName": "api"}}]}]});
    for f in [cnp(spec.clone()), ccnp(spec)] {
        assert_eq!(rules(&f), vec![RuleId::AnyEndpointPeer; 3]);
        assert_eq!(
            f.iter().map(|f| f.severity).collect::<Vec<_>>(),
            vec![Action::Deny, Action::Warn, Action::Deny]
        );
        assert!(
            f[0].message.starts_with(
                "any-endpoint-peer: egress rule 0, toServices[0]: selector {} allows traffic \
                 to every service of every namespace."
            ),
            "{}",
            f[0].message
        );
        assert!(
            f[1].message.contains(
                "toServices[1]: selector {} allows traffic to every service of namespace billing."
            ),
            "{}",
            f[1].message
        );
        assert!(
            f[2].message
                .contains("toServices[2]: selector {\"matchExpressions\""),
            "{}",
            f[2].message
        );
    }
}

// ----- allow-all-peers (L4-only rules) -----------------------------------------

#[test]
fn l4_only_rules_allow_every_peer_on_their_ports() {
    let spec = json!({"endpointSelector": app("web"),
        "ingress": [{"toPorts": [{"ports": [{"port": "8080", "protocol": "TCP"}]}]},
                    {"icmps": [{"fields": [{"type": 8, "family": "IPv4"}]}]}],
        "egress": [{"toPorts": [{"ports": [{"port": "53", "protocol": "ANY"}],
                                 "rules": {"dns": [{"matchPattern": "*"}]}}]},
                   {"toPorts": [{"ports": [{"port": "0"}]}]},
                   {"toPorts": [{"ports": [{"port": "1", "endPort": 65535, "protocol": "TCP"}]}],
                    "toEndpoints": null}]});
    for f in [cnp(spec.clone()), ccnp(spec)] {
        assert_eq!(rules(&f), vec![RuleId::AllowAllPeers; 5]);
        assert_eq!(
            f.iter().map(|f| f.severity).collect::<Vec<_>>(),
            vec![
                Action::Warn,
                Action::Warn,
                Action::Warn,
                Action::Deny,
                Action::Deny
            ]
        );
        assert_eq!(
            f[0].message,
            "allow-all-peers: ingress rule 0 has toPorts but no peer field: it admits traffic \
             from every source, in and out of the cluster, on TCP 8080. Fix: name them in \
             fromEndpoints, fromEntities or fromCIDRSet."
        );
        assert!(
            f[1].message
                .starts_with("allow-all-peers: ingress rule 1 has icmps but no peer field"),
            "{}",
            f[1].message
        );
        assert!(
            f[2].message.contains(
                "egress rule 0 has toPorts but no peer field: it allows traffic to every \
                 destination, in and out of the cluster, on ANY 53."
            ),
            "{}",
            f[2].message
        );
        assert!(
            f[3].message.starts_with(
                "allow-all-peers: egress rule 1 has toPorts but no peer field and no port \
                 limit"
            ),
            "{}",
            f[3].message
        );
        assert!(f[4].message.contains("egress rule 2"), "{}", f[4].message);
    }
}

#[test]
fn empty_rules_empty_peer_lists_and_rules_with_peers_are_not_l4_only() {
    // `{}` allows nothing (Cilium's documented default-deny form), an
    // explicitly empty peer list selects nothing, and ports without
    // entries open nothing.
    let spec = json!({"endpointSelector": app("web"),
        "ingress": [{}, {"fromEndpoints": [], "toPorts": [{"ports": [{"port": "80"}]}]},
                    {"fromRequires": [app("prod")], "toPorts": [{"ports": [{"port": "80"}]}]},
                    {"fromCIDRSet": [{"cidrGroupRef": "corp"}], "toPorts": [{"ports": [{"port": "80"}]}]}],
        "egress": [{}, {"toPorts": []}, {"toPorts": [{"ports": []}]}, {"icmps": [{"fields": []}]},
                   {"toFQDNs": [{"matchName": "api.stripe.com"}], "toPorts": [{"ports": [{"port": "443"}]}]},
                   {"toServices": [{"k8sService": {"serviceName": "api"}}], "toPorts": [{"ports": [{"port": "443"}]}]},
                   {"toEndpoints": [app("db")], "toPorts": [{"ports": [{"port": "5432"}]}]}]});
    assert_eq!(cnp(spec.clone()), vec![]);
    assert_eq!(ccnp(spec), vec![]);
}

// ----- default-deny-disabled -------------------------------------------------

#[test]
fn disabled_default_deny_warns() {
    let f = cnp(json!({"endpointSelector": app("web"),
        "egress": [{"toEndpoints": [app("db")]}],
        "enableDefaultDeny": {"egress": false}}));
    assert_eq!(rules(&f), vec![RuleId::DefaultDenyDisabled]);
    assert_eq!(
        f[0].severity,
        Action::Deny,
        "warn comes from the config default"
    );
    assert!(
        f[0].message
            .starts_with("default-deny-disabled: enableDefaultDeny.egress is false"),
        "{}",
        f[0].message
    );
    let f = ccnp(
        json!({"endpointSelector": {}, "enableDefaultDeny": {"ingress": false, "egress": false}}),
    );
    assert_eq!(rules(&f), vec![RuleId::DefaultDenyDisabled]);
    assert!(
        f[0].message
            .contains("enableDefaultDeny.ingress and .egress are false"),
        "{}",
        f[0].message
    );
}

#[test]
fn enabled_or_absent_default_deny_passes() {
    for dd in [
        json!({"ingress": true, "egress": true}),
        json!({}),
        json!(null),
        json!({"egress": "false"}),
        json!(false),
    ] {
        assert_eq!(
            cnp(json!({"endpointSelector": app("web"), "enableDefaultDeny": dd})),
            vec![],
            "{dd}"
        );
    }
}

// ----- namespace-labels-ignored ----------------------------------------------

#[test]
fn namespace_labels_in_cnp_warn() {
    let f = cnp(json!({
        "endpointSelector": {"matchLabels": {"io.cilium.k8s.namespace.labels.team": "a"}},
        "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.team": "test-team"}}]}],
        "egress": [{"toEndpoints": [{"matchExpressions": [
            {"key": "app", "operator": "Exists"},
            {"key": "any:io.cilium.k8s.namespace.labels.env", "operator": "In", "values": ["prod"]}]}]}]}));
    assert_eq!(rules(&f), vec![RuleId::NamespaceLabelsIgnored; 3]);
    assert!(f.iter().all(|f| f.severity == Action::Deny));
    assert!(
        f[0].message.starts_with(
            "namespace-labels-ignored: endpointSelector: key io.cilium.k8s.namespace.labels.team"
        ),
        "{}",
        f[0].message
    );
    assert!(
        f[1].message.contains(
            "ingress rule 0, fromEndpoints[0]: key k8s:io.cilium.k8s.namespace.labels.team"
        ),
        "{}",
        f[1].message
    );
    assert!(
        f[2].message
            .contains("any:io.cilium.k8s.namespace.labels.env"),
        "{}",
        f[2].message
    );
}

#[test]
fn namespace_labels_in_ccnp_or_pod_namespace_key_pass() {
    let spec = json!({"endpointSelector": {},
        "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.team": "a"}}]}]});
    assert_eq!(ccnp(spec), vec![]);
    assert_eq!(
        cnp(json!({"endpointSelector": app("web"),
        "ingress": [{"fromEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "monitoring",
                                                        "app": "prometheus"}}]}]})),
        vec![]
    );
    assert!(!is_namespace_label("foo:io.cilium.k8s.namespace.labels.x"));
    assert!(is_namespace_label("io.cilium.k8s.namespace.labels"));
}

// ----- specs, deny rules, ordering ---------------------------------------------

#[test]
fn specs_list_is_judged_with_its_index() {
    let policy = json!({"specs": [
        {"endpointSelector": app("a"), "egress": [{"toEndpoints": [app("db")]}]},
        {"endpointSelector": app("b"), "egress": [{"toEndpoints": [app("db")]}, {"toEntities": ["world"]}]},
        "junk",
        {"endpointSelector": app("c"), "enableDefaultDeny": {"ingress": false}}
    ]});
    let f = run_with(&policy, false, &Settings::default());
    assert_eq!(
        rules(&f),
        vec![RuleId::WorldEntity, RuleId::DefaultDenyDisabled]
    );
    assert!(
        f[0].message
            .starts_with("world-entity: specs[1] egress rule 1, toEntities[0]"),
        "{}",
        f[0].message
    );
    assert!(
        f[1].message
            .starts_with("default-deny-disabled: specs[3] enableDefaultDeny.ingress"),
        "{}",
        f[1].message
    );
    // spec and specs together: spec first.
    let policy = json!({"spec": {"endpointSelector": {}, "ingress": [{"fromEntities": ["all"]}]},
                        "specs": [{"endpointSelector": {}, "ingress": [{"fromEntities": ["world"]}]}]});
    let f = run_with(&policy, true, &Settings::default());
    assert_eq!(rules(&f), vec![RuleId::WorldEntity; 2]);
    assert!(
        f[0].message.contains("world-entity: ingress rule 0"),
        "{}",
        f[0].message
    );
    assert!(
        f[1].message.contains("specs[0] ingress rule 0"),
        "{}",
        f[1].message
    );
}

#[test]
fn deny_rules_are_not_flagged() {
    let spec = json!({"endpointSelector": app("web"),
        "ingressDeny": [{"fromEntities": ["world"], "fromCIDR": ["0.0.0.0/0"], "fromEndpoints": [{}]}],
        "egressDeny": [{"toEntities": ["all"], "toCIDRSet": [{"cidr": "::/0"}], "toEndpoints": [{}]}]});
    assert_eq!(cnp(spec.clone()), vec![]);
    assert_eq!(ccnp(spec), vec![]);
}

#[test]
fn findings_are_in_document_order() {
    let f = cnp(json!({
        "endpointSelector": {"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.x": "y"}},
        "enableDefaultDeny": {"ingress": false},
        "ingress": [{"fromEndpoints": [{}], "fromEntities": ["world"], "fromCIDR": ["0.0.0.0/0"]}],
        "egress": [{"toFQDNs": [{"matchPattern": "*"}]}]}));
    assert_eq!(
        rules(&f),
        vec![
            RuleId::NamespaceLabelsIgnored,
            RuleId::DefaultDenyDisabled,
            RuleId::AnyEndpointPeer,
            RuleId::WorldEntity,
            RuleId::WorldCidr,
            RuleId::FqdnWildcard,
        ]
    );
}

#[test]
fn malformed_input_never_panics() {
    for policy in [
        json!(null),
        json!([]),
        json!("spec"),
        json!({}),
        json!({"spec": null, "specs": null}),
        json!({"spec": 1, "specs": {"ingress": []}}),
        json!({"spec": {"ingress": "world", "egress": {"toEntities": ["world"]}}}),
        json!({"spec": {"ingress": [1, "x", null, []], "egress": [[{"toEntities": ["world"]}]]}}),
        json!({"spec": {"endpointSelector": "app=x", "enableDefaultDeny": "off",
                        "ingress": [{"fromEntities": "world", "fromCIDR": "0.0.0.0/0",
                                     "fromCIDRSet": "0.0.0.0/0", "fromEndpoints": "{}"}]}}),
        json!({"spec": {"endpointSelector": {"matchLabels": [1], "matchExpressions": {"key": "x"}},
                        "ingress": [{"fromEntities": [1, null, ["world"], {"world": true}],
                                     "fromCIDR": [0, null, ["0.0.0.0/0"], "bad", "0.0.0.0/99"],
                                     "fromCIDRSet": [1, {"cidr": 5}, {"cidr": null}, {"cidrGroupSelector": {}}],
                                     "fromEndpoints": [1, "x", null, [], {"matchLabels": 3},
                                                       {"matchExpressions": [1, {"key": 2}]}]}],
                        "egress": [{"toFQDNs": [1, "*", {"matchPattern": 7}, {"matchName": "*"}]}]}}),
        json!({"spec": {"ingress": [{"toPorts": "80", "icmps": 8, "fromNodes": "{}"},
                                    {"toPorts": [1, null, {"ports": 1}, {"ports": [1, null, {"port": null},
                                        {"port": -1}, {"port": 1.5}, {"port": [80]}, {"endPort": "x"},
                                        {"port": "80", "endPort": -5, "protocol": 6}]}],
                                     "icmps": [1, {"fields": 1}, {"fields": [null]}]},
                                    {"fromNodes": [1, null, "x", {"matchExpressions": "x"},
                                                   {"matchExpressions": [null, {"operator": "NotIn"}]}]},
                                    {"fromEndpoints": [{"matchLabels": {"reserved:world": null, "reserved:host": 1}},
                                                       {"matchLabels": {"reserved:": ""}},
                                                       {"matchExpressions": [{"key": 5, "operator": "Exists"},
                                                                             {"key": "reserved:world", "operator": "In", "values": "x"},
                                                                             {"key": "k8s:io.kubernetes.pod.namespace", "operator": 1}]}]}],
                        "egress": [{"toServices": "all"},
                                   {"toServices": [1, null, {"k8sServiceSelector": 1},
                                                   {"k8sServiceSelector": {"selector": null, "namespace": 5}},
                                                   {"k8sServiceSelector": {"selector": "{}"}},
                                                   {"k8sServiceSelector": {"namespace": "x"}},
                                                   {"k8sService": null}],
                                    "toNodes": [[]], "toEntities": [" "],
                                    "toFQDNs": [{"matchName": 1, "matchPattern": null}, {"matchPattern": ""}]}]}}),
    ] {
        let _ = run_with(&policy, false, &Settings::default());
        let _ = run_with(&policy, true, &Settings::default());
    }
    // Sensible partial results: the well-formed parts still count.
    let f = cnp(json!({"endpointSelector": {}, "ingress": [{"fromEntities": [1, "world"]}]}));
    assert_eq!(rules(&f), vec![RuleId::WorldEntity]);
    let f = cnp(json!({"endpointSelector": {},
        "ingress": [{"toPorts": [1, {"ports": [null, {"port": "80"}]}]}],
        "egress": [{"toNodes": [1, {}]}, {"toServices": [1, {"k8sServiceSelector": {"selector": {}}}]}]}));
    assert_eq!(
        rules(&f),
        vec![
            RuleId::AllowAllPeers,
            RuleId::NodeEntity,
            RuleId::AnyEndpointPeer
        ]
    );
}

#[test]
fn long_keys_keep_messages_short() {
    let key = format!("k8s:io.cilium.k8s.namespace.labels.{}", "x".repeat(3000));
    let f = cnp(json!({"endpointSelector": {"matchLabels": {key: "y"}}}));
    assert_eq!(rules(&f), vec![RuleId::NamespaceLabelsIgnored]);
    let f = cnp(json!({"endpointSelector": app("a"),
        "egress": [{"toFQDNs": [{"matchPattern": "*".repeat(1000)}]}]}));
    assert_eq!(rules(&f), vec![RuleId::FqdnWildcard]);
}

/// Long but valid shapes: big indexes, long keys, IPv6: messages fit
/// without being cut.
#[test]
fn worst_case_messages_fit_without_truncation() {
    let filler: Vec<Value> = (0..120)
        .map(|_| json!({"matchLabels": {"a": "b"}}))
        .collect();
    let mut eps = filler.clone();
    eps.push(json!({}));
    eps.push(json!({"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "x"}}));
    eps.push(json!({"matchExpressions": [
        {"key": "k8s:io.kubernetes.pod.namespace", "operator": "Exists"},
        {"key": "x".repeat(300), "operator": "NotIn", "values": ["y".repeat(300)]}]}));
    eps.push(json!({"matchLabels": {"reserved:world-ipv6": ""}}));
    eps.push(json!({"matchLabels": {"reserved:remote-node": ""}}));
    let mut strs: Vec<Value> = (0..120).map(|_| json!("health")).collect();
    strs.push(json!("world-ipv4"));
    strs.push(json!("all"));
    strs.push(json!("cluster"));
    strs.push(json!("remote-node"));
    strs.push(json!("unmanaged"));
    let mut nodes = filler.clone();
    nodes.push(json!({}));
    nodes.push(json!({"matchExpressions": [
        {"key": "x".repeat(300), "operator": "DoesNotExist"}]}));
    let mut cidrs: Vec<Value> = (0..120).map(|_| json!("10.0.0.0/16")).collect();
    cidrs.push(json!("0000:0000:0000:0000:0000:0000:0000:0000/0"));
    let mut sets: Vec<Value> = (0..120).map(|_| json!({"cidr": "10.0.0.0/16"})).collect();
    sets.push(json!({"cidr": "0000:0000:0000:0000:0000:0000:0000:0000/0", "except": ["::1/128"]}));
    let mut fqdns: Vec<Value> = (0..120).map(|_| json!({"matchName": "a.b"})).collect();
    fqdns.push(json!({"matchPattern": "*"}));
    fqdns.push(json!({"matchPattern": "*.*.*.*.*.*.*.*"}));
    fqdns.push(json!({"matchName": "*"}));
    let mut services: Vec<Value> = (0..120)
        .map(|_| json!({"k8sService": {"serviceName": "a"}}))
        .collect();
    services.push(json!({"k8sServiceSelector": {"selector": {}, "namespace": "n".repeat(63)}}));
    services.push(
        json!({"k8sServiceSelector": {"selector": {"matchExpressions": [
        {"key": "x".repeat(300), "operator": "DoesNotExist"}]}}}),
    );
    let rule_in = json!({"fromEndpoints": eps, "fromEntities": strs, "fromCIDR": cidrs,
                         "fromCIDRSet": sets, "fromNodes": nodes});
    let rule_out = json!({"toEndpoints": eps, "toEntities": strs, "toCIDR": cidrs, "toCIDRSet": sets,
                          "toNodes": nodes, "toFQDNs": fqdns, "toServices": services});
    // L4-only rules with the longest port descriptions.
    let ports = json!([{"ports": [
        {"port": "a-named-port-15", "protocol": "ICMPv6"},
        {"port": "65000", "endPort": 65535, "protocol": "ICMPv6"},
        {"port": "443", "protocol": "TCP"}]}]);
    let l4 = json!({"toPorts": ports, "icmps": [{"fields": [{"type": 8}]}]});
    let l4_open = json!({"toPorts": [{"ports": [{"port": "0", "protocol": "ICMPv6"}]}]});
    let mut ingress = vec![json!({}); 120];
    ingress.push(rule_in);
    ingress.push(l4.clone());
    ingress.push(l4_open.clone());
    let mut egress = vec![json!({}); 120];
    egress.push(rule_out);
    egress.push(l4);
    egress.push(l4_open);
    let spec = json!({"endpointSelector": eps[121].clone(),
                      "enableDefaultDeny": {"ingress": false, "egress": false},
                      "ingress": ingress, "egress": egress});
    let mut specs = vec![json!({}); 120];
    specs.push(spec);
    let policy = json!({"specs": specs});
    let mut seen = std::collections::BTreeSet::new();
    let mut count = 0;
    for cw in [false, true] {
        for f in run_with(&policy, cw, &Settings::default()) {
            assert!(!f.message.ends_with("..."), "cut: {}", f.message);
            seen.insert(f.rule);
            count += 1;
        }
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    // Per kind: 1 default-deny; per direction 2 endpoint peers + 2
    // reserved labels + 5 entities + 2 nodes + 2 CIDRs + 2 L4-only;
    // egress adds 3 FQDNs and 2 services. The CNP adds 3
    // namespace-labels (endpointSelector, fromEndpoints, toEndpoints).
    assert_eq!(count, 2 * (1 + 2 * 15 + 5) + 3, "{count}");
}

// ----- fixtures -----------------------------------------------------------------

use crate::rules::fixture_object as fixture;

#[test]
fn fixtures_give_the_expected_findings() {
    let s = Settings::default();
    assert_eq!(
        run_with(&fixture("ciliumnetworkpolicy-create-egress"), false, &s),
        vec![]
    );
    let f = run_with(&fixture("ciliumnetworkpolicy-create-from-world"), false, &s);
    assert_eq!(rules(&f), vec![RuleId::WorldEntity]);
    assert_eq!(f[0].effective(s.action(RuleId::WorldEntity)), Action::Deny);
    assert!(
        f[0].message
            .starts_with("world-entity: ingress rule 0, fromEntities[0]: entity world"),
        "{}",
        f[0].message
    );
}

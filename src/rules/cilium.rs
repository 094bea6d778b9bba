//! Rules for cilium.io/v2 CiliumNetworkPolicy (CNP) and
//! CiliumClusterwideNetworkPolicy (CCNP): `world-entity`, `world-cidr`,
//! `fqdn-wildcard`, `any-endpoint-peer`, `default-deny-disabled` and
//! `namespace-labels-ignored`.
//!
//! Both `spec` (one rule set) and `specs` (a list of them) are judged; in
//! messages a rule of `specs` is located as `specs[K] ingress rule N`.
//! `ingressDeny`/`egressDeny` rules only ever remove traffic, so they are not
//! judged. The object is arbitrary user JSON: malformed parts are skipped,
//! nothing here panics.

use serde_json::{Map, Value};

use crate::cidr::Cidr;
use crate::config::Settings;
use crate::rules::Finding;
use crate::rules::RuleId;
use crate::rules::netpol::{
    Dir, fam_index, finding, is_empty_selector, snip, too_wide, union_families, world_cidr_detail,
    world_cidr_message, world_union_message,
};

/// Findings on one CNP (`clusterwide == false`) or CCNP object, in document
/// order: `spec` then each element of `specs`; within one, the
/// endpointSelector, enableDefaultDeny, then ingress and egress rules.
pub fn check(policy: &Value, clusterwide: bool, settings: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    let ctx = Ctx {
        clusterwide,
        settings,
    };
    if let Some(spec) = policy.get("spec").and_then(Value::as_object) {
        ctx.check_spec("", spec, &mut out);
    }
    if let Some(specs) = policy.get("specs").and_then(Value::as_array) {
        for (k, spec) in specs.iter().enumerate() {
            if let Some(spec) = spec.as_object() {
                ctx.check_spec(&format!("specs[{k}] "), spec, &mut out);
            }
        }
    }
    out
}

/// Entities that include every address outside the cluster.
const WORLD_ENTITIES: &[&str] = &["world", "world-ipv4", "world-ipv6", "all"];

/// The label-key prefix Cilium uses for namespace labels.
const NAMESPACE_LABELS: &str = "io.cilium.k8s.namespace.labels";

struct Ctx<'a> {
    clusterwide: bool,
    settings: &'a Settings,
}

/// The peer fields of one direction.
struct Fields {
    endpoints: &'static str,
    entities: &'static str,
    cidr: &'static str,
    cidr_set: &'static str,
}

fn fields(dir: Dir) -> Fields {
    match dir {
        Dir::Ingress => Fields {
            endpoints: "fromEndpoints",
            entities: "fromEntities",
            cidr: "fromCIDR",
            cidr_set: "fromCIDRSet",
        },
        Dir::Egress => Fields {
            endpoints: "toEndpoints",
            entities: "toEntities",
            cidr: "toCIDR",
            cidr_set: "toCIDRSet",
        },
    }
}

fn list<'a>(rule: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    rule.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

impl Ctx<'_> {
    fn check_spec(&self, prefix: &str, spec: &Map<String, Value>, out: &mut Vec<Finding>) {
        if !self.clusterwide
            && let Some(sel) = spec.get("endpointSelector")
        {
            self.namespace_labels(&format!("{prefix}endpointSelector"), sel, out);
        }
        if let Some(dd) = spec.get("enableDefaultDeny").and_then(Value::as_object) {
            default_deny_disabled(prefix, dd, out);
        }
        for dir in [Dir::Ingress, Dir::Egress] {
            for (i, rule) in list(spec, dir.key()).iter().enumerate() {
                if let Some(rule) = rule.as_object() {
                    let place = format!("{prefix}{} rule {i}", dir.key());
                    self.check_rule(dir, &place, rule, out);
                }
            }
        }
    }

    fn check_rule(&self, dir: Dir, place: &str, rule: &Map<String, Value>, out: &mut Vec<Finding>) {
        let f = fields(dir);

        for (j, sel) in list(rule, f.endpoints).iter().enumerate() {
            let at = format!("{place}, {}[{j}]", f.endpoints);
            if is_empty_selector(sel) {
                out.push(self.any_endpoint(dir, &at));
            }
            if !self.clusterwide {
                self.namespace_labels(&at, sel, out);
            }
        }

        for (j, entity) in list(rule, f.entities).iter().enumerate() {
            if let Some(e) = entity.as_str()
                && let Some(world) = WORLD_ENTITIES
                    .iter()
                    .find(|w| w.eq_ignore_ascii_case(e.trim()))
            {
                let at = format!("{place}, {}[{j}]", f.entities);
                out.push(world_entity(dir, &at, world));
            }
        }

        let mut blocks: Vec<Cidr> = Vec::new();
        let mut flagged = [false, false];
        let example = cidr_example(dir);
        for (j, raw) in list(rule, f.cidr).iter().enumerate() {
            if let Some(raw) = raw.as_str()
                && let Ok(c) = raw.parse::<Cidr>()
            {
                blocks.push(c);
                if too_wide(&c, self.settings) {
                    flagged[fam_index(&c)] = true;
                    let at = format!("{place}, {}[{j}]", f.cidr);
                    let msg = world_cidr_message(&at, "", raw, &c, dir, false, self.settings);
                    out.push(
                        finding(RuleId::WorldCidr, msg).with_detail(world_cidr_detail(&example)),
                    );
                }
            }
        }
        for (j, entry) in list(rule, f.cidr_set).iter().enumerate() {
            // Entries with cidrGroupRef / cidrGroupSelector have no cidr: skipped.
            if let Some(entry) = entry.as_object()
                && let Some(raw) = entry.get("cidr").and_then(Value::as_str)
                && let Ok(c) = raw.parse::<Cidr>()
            {
                blocks.push(c);
                if too_wide(&c, self.settings) {
                    flagged[fam_index(&c)] = true;
                    let has_except = entry
                        .get("except")
                        .and_then(Value::as_array)
                        .is_some_and(|e| !e.is_empty());
                    let at = format!("{place}, {}[{j}]", f.cidr_set);
                    let msg = world_cidr_message(&at, "", raw, &c, dir, has_except, self.settings);
                    out.push(
                        finding(RuleId::WorldCidr, msg).with_detail(world_cidr_detail(&example)),
                    );
                }
            }
        }
        for ipv4 in union_families(&blocks, flagged, self.settings) {
            out.push(
                finding(RuleId::WorldCidr, world_union_message(place, &blocks, ipv4))
                    .with_detail(world_cidr_detail(&example)),
            );
        }

        if dir == Dir::Egress {
            for (j, fqdn) in list(rule, "toFQDNs").iter().enumerate() {
                if let Some(pattern) = fqdn.get("matchPattern").and_then(Value::as_str)
                    && matches_every_name(pattern)
                {
                    out.push(fqdn_wildcard(&format!("{place}, toFQDNs[{j}]"), pattern));
                }
            }
        }
    }

    fn any_endpoint(&self, dir: Dir, at: &str) -> Finding {
        let (scope, why) = if self.clusterwide {
            (
                "every endpoint of the cluster, in every namespace",
                "In a CiliumClusterwideNetworkPolicy an empty selector matches every endpoint \
                 of every namespace, so the rule opens the selected pods to the whole cluster.",
            )
        } else {
            (
                "every pod of this namespace",
                "In a CiliumNetworkPolicy an empty selector matches every pod of the policy's \
                 namespace, so any compromised or newly deployed pod there gets through.",
            )
        };
        let key = fields(dir).endpoints;
        let message = format!(
            "any-endpoint-peer: {at}: {{}} {} {scope}. Fix: select the peers by label, \
             e.g. {key}: [{{matchLabels: {{app: frontend}}}}].",
            dir.opens()
        );
        let detail = format!(
            "{why} Fix: name the peers, e.g.\n{key}:\n- matchLabels:\n    app: frontend{}",
            if self.clusterwide {
                "\n    k8s:io.kubernetes.pod.namespace: web"
            } else {
                ""
            }
        );
        let f = finding(RuleId::AnyEndpointPeer, message).with_detail(detail);
        if self.clusterwide { f } else { f.milder() }
    }

    /// `namespace-labels-ignored`: the first namespace-label key of a selector
    /// in a namespaced CNP.
    fn namespace_labels(&self, at: &str, sel: &Value, out: &mut Vec<Finding>) {
        let Some(sel) = sel.as_object() else {
            return;
        };
        let label_keys = sel
            .get("matchLabels")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str));
        let expr_keys = sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("key").and_then(Value::as_str));
        let Some(key) = label_keys.chain(expr_keys).find(|k| is_namespace_label(k)) else {
            return;
        };
        let message = format!(
            "namespace-labels-ignored: {at}: key {} is ignored in a namespaced \
             CiliumNetworkPolicy. Fix: match on k8s:io.kubernetes.pod.namespace, or use a \
             clusterwide policy.",
            snip(key, 50)
        );
        let detail = "Cilium supports io.cilium.k8s.namespace.labels selectors only in a \
                      CiliumClusterwideNetworkPolicy; in a namespaced policy they never \
                      match pods of other namespaces, so the rule silently does not do what \
                      it says. Fix: name the namespace instead, e.g.\nfromEndpoints:\n- \
                      matchLabels:\n    k8s:io.kubernetes.pod.namespace: monitoring\n    \
                      app: prometheus\nor move the rule to a CiliumClusterwideNetworkPolicy.";
        out.push(finding(RuleId::NamespaceLabelsIgnored, message).with_detail(detail));
    }
}

/// `io.cilium.k8s.namespace.labels...`, optionally with a `k8s:` or `any:`
/// label-source prefix.
fn is_namespace_label(key: &str) -> bool {
    let key = key.trim();
    let bare = key
        .strip_prefix("k8s:")
        .or_else(|| key.strip_prefix("any:"))
        .unwrap_or(key);
    bare.starts_with(NAMESPACE_LABELS)
}

/// `*` (also `*.` and `**`): a pattern that matches every DNS name.
fn matches_every_name(pattern: &str) -> bool {
    let p = pattern.trim();
    let p = p.strip_suffix('.').unwrap_or(p);
    !p.is_empty() && p.chars().all(|c| c == '*')
}

fn world_entity(dir: Dir, at: &str, entity: &str) -> Finding {
    let scope = if entity == "all" {
        "every endpoint and address, inside and outside the cluster"
    } else {
        "every address outside the cluster"
    };
    let fix = match dir {
        Dir::Ingress => "use fromCIDRSet with the exact source ranges, or fromEndpoints",
        Dir::Egress => "use toFQDNs with matchName, or toCIDRSet with the exact ranges",
    };
    let example = match dir {
        Dir::Ingress => {
            "ingress:\n- fromCIDRSet:\n  - cidr: 203.0.113.0/24\n  toPorts:\n  - ports:\n    \
                        - port: \"443\"\n      protocol: TCP"
        }
        Dir::Egress => {
            "egress:\n- toFQDNs:\n  - matchName: api.stripe.com\n  toPorts:\n  - ports:\n    \
                       - port: \"443\"\n      protocol: TCP"
        }
    };
    finding(
        RuleId::WorldEntity,
        format!(
            "world-entity: {at}: entity {entity} {} {scope}. Fix: {fix}.",
            dir.opens()
        ),
    )
    .with_detail(format!(
        "The {entity} entity stands for {}, so a compromised pod can exfiltrate data or be \
         reached from any host. Fix: list what you need, e.g.\n{example}",
        if entity == "all" {
            "every endpoint of the cluster plus the whole internet"
        } else {
            "the whole internet"
        }
    ))
}

fn fqdn_wildcard(at: &str, pattern: &str) -> Finding {
    finding(
        RuleId::FqdnWildcard,
        format!(
            "fqdn-wildcard: {at}: matchPattern \"{}\" allows every DNS name, i.e. the whole \
             internet. Fix: use matchName for exact hosts, or a pattern under one domain \
             such as *.example.com.",
            snip(pattern.trim(), 10)
        ),
    )
    .with_detail(
        "A bare * pattern lets the pod reach any host it can resolve, which defeats the point \
         of an FQDN allow list. Fix: name the hosts, e.g.\ntoFQDNs:\n- matchName: api.stripe.com\n\
         - matchPattern: \"*.s3.amazonaws.com\"",
    )
}

fn default_deny_disabled(prefix: &str, dd: &Map<String, Value>, out: &mut Vec<Finding>) {
    let off: Vec<&str> = ["ingress", "egress"]
        .into_iter()
        .filter(|d| dd.get(*d) == Some(&Value::Bool(false)))
        .collect();
    if off.is_empty() {
        return;
    }
    let what = match off.as_slice() {
        [one] => format!("enableDefaultDeny.{one} is"),
        _ => "enableDefaultDeny.ingress and .egress are".to_string(),
    };
    let dirs = off.join(" and ");
    out.push(
        finding(
            RuleId::DefaultDenyDisabled,
            format!(
                "default-deny-disabled: {prefix}{what} false: the selected pods stay open to \
                 all {dirs} traffic the policy does not list (audit setting left on?). \
                 Fix: remove enableDefaultDeny or set it to true."
            ),
        )
        .with_detail(format!(
            "With default deny off, this policy only adds allows: the selected pods stay open \
             for {dirs} traffic unless another policy enables default deny. This is meant for \
             auditing a new policy, not for production. Fix: delete the setting (true is the \
             default), e.g.\nspec:\n  enableDefaultDeny:\n    ingress: true\n    egress: true"
        )),
    );
}

fn cidr_example(dir: Dir) -> String {
    match dir {
        Dir::Ingress => "fromCIDRSet:\n- cidr: 203.0.113.0/24".to_string(),
        Dir::Egress => "toCIDRSet:\n- cidr: 52.94.0.0/16".to_string(),
    }
}

#[cfg(test)]
mod tests {
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
    fn seed_000_egress_policy_is_clean() {
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
                {"toEntities": ["kube-apiserver", "cluster"]},
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
            "ingress": [{"fromEntities": ["cluster", "world"]}],
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
        assert!(f[0].message.starts_with("namespace-labels-ignored: endpointSelector: key io.cilium.k8s.namespace.labels.team"),
                "{}", f[0].message);
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
        ] {
            let _ = run_with(&policy, false, &Settings::default());
            let _ = run_with(&policy, true, &Settings::default());
        }
        // Sensible partial results: the well-formed parts still count.
        let f = cnp(json!({"endpointSelector": {}, "ingress": [{"fromEntities": [1, "world"]}]}));
        assert_eq!(rules(&f), vec![RuleId::WorldEntity]);
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
        let mut strs: Vec<Value> = (0..120).map(|_| json!("cluster")).collect();
        strs.push(json!("world-ipv4"));
        strs.push(json!("all"));
        let mut cidrs: Vec<Value> = (0..120).map(|_| json!("10.0.0.0/16")).collect();
        cidrs.push(json!("0000:0000:0000:0000:0000:0000:0000:0000/0"));
        let mut sets: Vec<Value> = (0..120).map(|_| json!({"cidr": "10.0.0.0/16"})).collect();
        sets.push(
            json!({"cidr": "0000:0000:0000:0000:0000:0000:0000:0000/0", "except": ["::1/128"]}),
        );
        let mut fqdns: Vec<Value> = (0..120).map(|_| json!({"matchName": "a.b"})).collect();
        fqdns.push(json!({"matchPattern": "*"}));
        let rule_in = json!({"fromEndpoints": eps, "fromEntities": strs, "fromCIDR": cidrs, "fromCIDRSet": sets});
        let rule_out = json!({"toEndpoints": eps, "toEntities": strs, "toCIDR": cidrs, "toCIDRSet": sets,
                              "toFQDNs": fqdns});
        let mut ingress = vec![json!({}); 120];
        ingress.push(rule_in);
        let mut egress = vec![json!({}); 120];
        egress.push(rule_out);
        let spec = json!({"endpointSelector": eps[121].clone(),
                          "enableDefaultDeny": {"ingress": false, "egress": false},
                          "ingress": ingress, "egress": egress});
        let mut specs = vec![json!({}); 120];
        specs.push(spec);
        let policy = json!({"specs": specs});
        let mut seen = std::collections::BTreeSet::new();
        for cw in [false, true] {
            for f in run_with(&policy, cw, &Settings::default()) {
                assert!(!f.message.ends_with("..."), "cut: {}", f.message);
                seen.insert(f.rule);
            }
        }
        assert_eq!(seen.len(), 6, "{seen:?}");
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
}

//! Rules for cilium.io/v2 CiliumNetworkPolicy (CNP) and
//! CiliumClusterwideNetworkPolicy (CCNP): `world-entity`, `world-cidr`,
//! `fqdn-wildcard`, `any-endpoint-peer`, `node-entity`, `allow-all-peers`
//! (L4-only rules), `default-deny-disabled` and `namespace-labels-ignored`.
//!
//! Both `spec` (one rule set) and `specs` (a list of them) are judged; in
//! messages a rule of `specs` is located as `specs[K] ingress rule N`.
//! `ingressDeny`/`egressDeny` rules only ever remove traffic, so they are not
//! judged. The object is arbitrary user JSON: malformed parts are skipped,
//! nothing here panics.
//!
//! The semantics follow Cilium's own (`pkg/k8s/apis/cilium.io/utils`,
//! `pkg/policy/rule.go`): a rule with `toPorts` and no peer field matches
//! every peer on those ports; a rule with neither allows nothing; an empty
//! peer list (`fromEndpoints: []`) selects nothing. In a CNP an endpoint
//! selector is limited to the policy's namespace unless it names the
//! `io.kubernetes.pod.namespace` key or a `reserved:` label.

use serde_json::{Map, Value};

use crate::cidr::Cidr;
use crate::config::Settings;
use crate::rules::Finding;
use crate::rules::RuleId;
use crate::rules::netpol::{
    Dir, fam_index, finding, is_empty_selector, range_restricts, selects_everything, too_wide,
    union_families, world_cidr_detail, world_cidr_message, world_union_message,
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

/// Entities of nodes, or of endpoints Cilium does not manage (`node-entity`).
const NODE_ENTITIES: &[&str] = &["host", "remote-node", "unmanaged"];

/// The entity of every endpoint and node of the cluster (`any-endpoint-peer`).
const CLUSTER_ENTITY: &str = "cluster";

/// The label-key prefix Cilium uses for namespace labels.
const NAMESPACE_LABELS: &str = "io.cilium.k8s.namespace.labels";

/// The label Cilium gives every pod: its namespace.
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";

/// The label source of Cilium's reserved identities (`reserved:world`).
const RESERVED: &str = "reserved:";

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
    nodes: &'static str,
    /// Every field that names peers: a rule with none of them is L4-only.
    peers: &'static [&'static str],
}

fn fields(dir: Dir) -> Fields {
    match dir {
        Dir::Ingress => Fields {
            endpoints: "fromEndpoints",
            entities: "fromEntities",
            cidr: "fromCIDR",
            cidr_set: "fromCIDRSet",
            nodes: "fromNodes",
            peers: &[
                "fromEndpoints",
                "fromRequires",
                "fromEntities",
                "fromCIDR",
                "fromCIDRSet",
                "fromNodes",
                "fromGroups",
            ],
        },
        Dir::Egress => Fields {
            endpoints: "toEndpoints",
            entities: "toEntities",
            cidr: "toCIDR",
            cidr_set: "toCIDRSet",
            nodes: "toNodes",
            peers: &[
                "toEndpoints",
                "toRequires",
                "toEntities",
                "toCIDR",
                "toCIDRSet",
                "toNodes",
                "toGroups",
                "toServices",
                "toFQDNs",
            ],
        },
    }
}

fn list<'a>(rule: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    rule.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// How far a peer that matches every endpoint it can reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Every pod of the CNP's own namespace: the milder variant.
    Namespace,
    /// Every endpoint of the cluster, in every namespace.
    Cluster,
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

        // No peer field at all: every peer on the rule's ports (L4-only).
        if f.peers
            .iter()
            .all(|k| rule.get(*k).is_none_or(Value::is_null))
            && let Some(ports) = L4::of(rule)
        {
            out.push(l4_only(dir, place, &ports));
        }

        for (j, sel) in list(rule, f.endpoints).iter().enumerate() {
            let at = format!("{place}, {}[{j}]", f.endpoints);
            if let Some(escapes) = selects_every_endpoint(sel) {
                let reach = if self.clusterwide || escapes {
                    Reach::Cluster
                } else {
                    Reach::Namespace
                };
                let written = (!is_empty_selector(sel)).then(|| selector_text(sel));
                out.push(self.any_endpoint(dir, &at, written.as_deref(), reach));
            }
            if let Some(entity) = reserved_entity(sel) {
                let what = format!("label {RESERVED}{entity}");
                if let Some(world) = WORLD_ENTITIES.iter().find(|w| **w == entity) {
                    out.push(world_entity(dir, &at, &what, world));
                } else if let Some(node) = NODE_ENTITIES.iter().find(|n| **n == entity) {
                    out.push(node_entity(dir, &at, &what, node));
                }
            }
            if !self.clusterwide {
                self.namespace_labels(&at, sel, out);
            }
        }

        for (j, entity) in list(rule, f.entities).iter().enumerate() {
            let Some(e) = entity.as_str().map(str::trim) else {
                continue;
            };
            let at = format!("{place}, {}[{j}]", f.entities);
            if let Some(world) = WORLD_ENTITIES.iter().find(|w| w.eq_ignore_ascii_case(e)) {
                out.push(world_entity(dir, &at, &format!("entity {world}"), world));
            } else if let Some(node) = NODE_ENTITIES.iter().find(|n| n.eq_ignore_ascii_case(e)) {
                out.push(node_entity(dir, &at, &format!("entity {node}"), node));
            } else if CLUSTER_ENTITY.eq_ignore_ascii_case(e) {
                out.push(cluster_entity(dir, &at));
            }
        }

        for (j, sel) in list(rule, f.nodes).iter().enumerate() {
            if is_empty_selector(sel) || selects_everything(sel, false) {
                let at = format!("{place}, {}[{j}]", f.nodes);
                let what = if is_empty_selector(sel) {
                    "{}".to_string()
                } else {
                    format!("selector {}", selector_text(sel))
                };
                out.push(node_entity(dir, &at, &what, "nodes"));
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
                for field in ["matchPattern", "matchName"] {
                    if let Some(pattern) = fqdn.get(field).and_then(Value::as_str)
                        && matches_every_name(pattern)
                    {
                        let at = format!("{place}, toFQDNs[{j}]");
                        out.push(fqdn_wildcard(&at, field, pattern));
                    }
                }
            }
            for (j, svc) in list(rule, "toServices").iter().enumerate() {
                if let Some(sel) = svc.get("k8sServiceSelector").and_then(Value::as_object)
                    && let Some(inner) = sel.get("selector")
                    && (is_empty_selector(inner) || selects_everything(inner, false))
                {
                    let namespace = sel
                        .get("namespace")
                        .and_then(Value::as_str)
                        .map(str::trim)
                        .filter(|n| !n.is_empty());
                    let at = format!("{place}, toServices[{j}]");
                    out.push(any_service(&at, inner, namespace));
                }
            }
        }
    }

    /// `any-endpoint-peer` for a selector that matches every endpoint in
    /// reach; `written` is the selector when it is not the literal `{}`.
    fn any_endpoint(&self, dir: Dir, at: &str, written: Option<&str>, reach: Reach) -> Finding {
        let key = fields(dir).endpoints;
        let fix = format!(
            "Fix: select the peers by label, e.g. {key}: [{{matchLabels: {{app: frontend}}}}]."
        );
        let message = match (written, reach) {
            (None, Reach::Cluster) => format!(
                "any-endpoint-peer: {at}: {{}} {} every endpoint of the cluster, in every \
                 namespace. {fix}",
                dir.opens()
            ),
            (None, Reach::Namespace) => format!(
                "any-endpoint-peer: {at}: {{}} {} every pod of this namespace. {fix}",
                dir.opens()
            ),
            (Some(sel), Reach::Cluster) => format!(
                "any-endpoint-peer: {at}: selector {sel} matches (nearly) every endpoint of the \
                 cluster. {fix}"
            ),
            (Some(sel), Reach::Namespace) => format!(
                "any-endpoint-peer: {at}: selector {sel} matches (nearly) every pod of this \
                 namespace. {fix}"
            ),
        };
        let why = match reach {
            Reach::Cluster if self.clusterwide => {
                "In a CiliumClusterwideNetworkPolicy an empty selector, or one made only of \
                 NotIn/DoesNotExist requirements or an Exists on io.kubernetes.pod.namespace, \
                 matches every endpoint of every namespace, so the rule opens the selected pods \
                 to the whole cluster."
            }
            Reach::Cluster => {
                "A selector that names the io.kubernetes.pod.namespace key (or a reserved: label) \
                 is not limited to the policy's namespace: made only of an Exists on that key or \
                 of NotIn/DoesNotExist requirements, it matches every endpoint of every \
                 namespace, so the rule opens the selected pods to the whole cluster."
            }
            Reach::Namespace => {
                "In a CiliumNetworkPolicy an empty selector, or one made only of \
                 NotIn/DoesNotExist requirements, matches every pod of the policy's namespace \
                 (including every pod deployed later), so any compromised or newly deployed pod \
                 there gets through."
            }
        };
        let detail = format!(
            "{why} Fix: name the peers, e.g.\n{key}:\n- matchLabels:\n    app: frontend{}",
            if reach == Reach::Cluster {
                "\n    k8s:io.kubernetes.pod.namespace: web"
            } else {
                ""
            }
        );
        let f = finding(RuleId::AnyEndpointPeer, message).with_detail(detail);
        match reach {
            Reach::Cluster => f,
            Reach::Namespace => f.milder(),
        }
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
            crate::text::truncate_chars(key, 50)
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

/// A label key without its `k8s:` or `any:` source prefix (Cilium reads a
/// key without a source as `any:`).
fn without_source(key: &str) -> &str {
    let key = key.trim();
    key.strip_prefix("k8s:")
        .or_else(|| key.strip_prefix("any:"))
        .unwrap_or(key)
}

/// `io.cilium.k8s.namespace.labels...`, optionally with a `k8s:` or `any:`
/// label-source prefix.
fn is_namespace_label(key: &str) -> bool {
    without_source(key).starts_with(NAMESPACE_LABELS)
}

/// `io.kubernetes.pod.namespace`, bare or with a `k8s:` or `any:` prefix:
/// a selector naming it is not limited to the CNP's namespace.
fn is_pod_namespace_key(key: &str) -> bool {
    without_source(key) == POD_NAMESPACE
}

fn expr_key(e: &Value) -> &str {
    e.get("key").and_then(Value::as_str).unwrap_or("")
}

fn expr_op(e: &Value) -> &str {
    e.get("operator").and_then(Value::as_str).unwrap_or("")
}

/// Whether a peer endpoint selector matches every endpoint in its reach:
/// `{}`, one made only of negative requirements (`selects_everything`), or
/// of `Exists` on the pod-namespace key plus such requirements. `Some(true)`
/// when it names the pod-namespace key or a `reserved:` label, which lifts
/// a CNP's limit to its own namespace; `None` when it selects by label.
fn selects_every_endpoint(sel: &Value) -> Option<bool> {
    if is_empty_selector(sel) {
        return Some(false);
    }
    let m = sel.as_object()?;
    let exprs = m.get("matchExpressions").and_then(Value::as_array)?;
    let (ns_exists, rest): (Vec<&Value>, Vec<&Value>) = exprs
        .iter()
        .partition(|e| is_pod_namespace_key(expr_key(e)) && expr_op(e) == "Exists");
    let mut rest_sel = m.clone();
    rest_sel.insert(
        "matchExpressions".to_string(),
        Value::Array(rest.into_iter().cloned().collect()),
    );
    let rest_sel = Value::Object(rest_sel);
    let every = (!ns_exists.is_empty() && is_empty_selector(&rest_sel))
        || selects_everything(&rest_sel, false);
    every.then(|| {
        exprs.iter().any(|e| {
            let k = expr_key(e);
            is_pod_namespace_key(k) || k.trim().starts_with(RESERVED)
        })
    })
}

/// The reserved identity a selector stands for: its one positive
/// requirement is `reserved:<name>` (a `matchLabels` entry with the empty
/// value reserved labels carry, an `In` listing `""`, or an `Exists`), and
/// any other requirement only excludes. `None` otherwise.
fn reserved_entity(sel: &Value) -> Option<String> {
    let m = sel.as_object()?;
    // (key, whether the requirement accepts the empty value)
    let mut positive: Vec<(&str, bool)> = Vec::new();
    match m.get("matchLabels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(l)) => positive.extend(
            l.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().is_some_and(|v| v.trim().is_empty()))),
        ),
        Some(_) => return None,
    }
    match m.get("matchExpressions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(exprs)) => {
            for e in exprs {
                match expr_op(e) {
                    "Exists" => positive.push((expr_key(e), true)),
                    "In" => {
                        let empty = e
                            .get("values")
                            .and_then(Value::as_array)
                            .is_some_and(|v| v.iter().any(|v| v.as_str() == Some("")));
                        positive.push((expr_key(e), empty));
                    }
                    "NotIn" | "DoesNotExist" => {}
                    _ => return None,
                }
            }
        }
        Some(_) => return None,
    }
    match positive.as_slice() {
        [(key, true)] => key
            .trim()
            .strip_prefix(RESERVED)
            .map(|name| name.trim().to_ascii_lowercase()),
        _ => None,
    }
}

/// A selector as written, short enough for a message.
fn selector_text(sel: &Value) -> String {
    crate::text::truncate_chars(&serde_json::to_string(sel).unwrap_or_default(), 40)
}

/// A pattern made only of wildcard labels (`*`, `*.`, `**`, `*.*`, `**.*`,
/// `*.*.*`): it matches every DNS name of its shape, and whoever owns any
/// domain can use a name of that shape.
fn matches_every_name(pattern: &str) -> bool {
    let p = pattern.trim();
    let p = p.strip_suffix('.').unwrap_or(p);
    !p.is_empty()
        && p.split('.')
            .all(|label| !label.is_empty() && label.chars().all(|c| c == '*'))
}

fn world_entity(dir: Dir, at: &str, what: &str, entity: &str) -> Finding {
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
            "world-entity: {at}: {what} {} {scope}. Fix: {fix}.",
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

/// `node-entity`: a peer of nodes (`host`, `remote-node`, every node) or of
/// endpoints Cilium does not manage. `entity` is `nodes` for a
/// fromNodes/toNodes selector.
fn node_entity(dir: Dir, at: &str, what: &str, entity: &str) -> Finding {
    let scope = match entity {
        "host" => "the local node and its host-network pods",
        "remote-node" => "every other node and their host-network pods",
        "unmanaged" => "every endpoint Cilium does not manage",
        _ => "every node and their host-network pods",
    };
    let fix = match dir {
        Dir::Ingress => "keep it only for probes or health checks, limited by toPorts",
        Dir::Egress => "keep it only for node services you need, limited by toPorts",
    };
    let example = match dir {
        Dir::Ingress => {
            "ingress:\n- fromEntities: [host, remote-node]\n  toPorts:\n  - ports:\n    \
             - port: \"8080\"\n      protocol: TCP"
        }
        Dir::Egress => {
            "egress:\n- toEntities: [host]\n  toPorts:\n  - ports:\n    - port: \"53\"\n      \
             protocol: ANY"
        }
    };
    finding(
        RuleId::NodeEntity,
        format!(
            "node-entity: {at}: {what} {} {scope}. Fix: {fix}.",
            dir.opens()
        ),
    )
    .with_detail(format!(
        "Nodes run the kubelet, node agents and every host-network pod, and unmanaged endpoints \
         have no identity Cilium can tell apart: a peer of all of them is wide, and a compromised \
         node or host-network pod gets through. It is common and often needed (kubelet probes, \
         health checks), so this only warns by default. Fix: limit it to the ports you need, \
         e.g.\n{example}"
    ))
}

/// `any-endpoint-peer` for the `cluster` entity: every endpoint of every
/// namespace and every node, in a CNP as in a CCNP.
fn cluster_entity(dir: Dir, at: &str) -> Finding {
    let key = fields(dir).endpoints;
    finding(
        RuleId::AnyEndpointPeer,
        format!(
            "any-endpoint-peer: {at}: entity cluster {} every endpoint and node of the cluster, \
             in every namespace. Fix: select the peers by label, e.g. {key}: [{{matchLabels: \
             {{app: frontend}}}}].",
            dir.opens()
        ),
    )
    .with_detail(format!(
        "The cluster entity stands for every endpoint of every namespace, every node and every \
         unmanaged endpoint, in a CiliumNetworkPolicy as in a clusterwide one: like a \
         namespaceSelector: {{}}, any compromised or newly deployed pod anywhere gets through. \
         Fix: name the peers, e.g.\n{key}:\n- matchLabels:\n    app: frontend\n    \
         k8s:io.kubernetes.pod.namespace: web"
    ))
}

/// `any-endpoint-peer` for `toServices` with a `k8sServiceSelector` that
/// selects every service: of one namespace (milder) or of all of them.
fn any_service(at: &str, sel: &Value, namespace: Option<&str>) -> Finding {
    let written = if is_empty_selector(sel) {
        "{}".to_string()
    } else {
        selector_text(sel)
    };
    let scope = match namespace {
        Some(ns) => format!(
            "every service of namespace {}",
            crate::text::truncate_chars(ns, 30)
        ),
        None => "every service of every namespace".to_string(),
    };
    let f = finding(
        RuleId::AnyEndpointPeer,
        format!(
            "any-endpoint-peer: {at}: selector {written} allows traffic to {scope}. Fix: name \
             it, e.g. toServices: [{{k8sService: {{serviceName: api, namespace: web}}}}]."
        ),
    )
    .with_detail(
        "An empty service selector (or one made only of NotIn/DoesNotExist requirements) \
         selects every service, and without a namespace Cilium matches services of every \
         namespace: the pods can reach every backend behind them. Fix: name the service, e.g.\n\
         toServices:\n- k8sService:\n    serviceName: api\n    namespace: web",
    );
    if namespace.is_some() { f.milder() } else { f }
}

fn fqdn_wildcard(at: &str, field: &str, pattern: &str) -> Finding {
    let p = pattern.trim();
    let what = if p.strip_suffix('.').unwrap_or(p).contains('.') {
        "allows every DNS name of that shape, i.e. any domain anyone can register"
    } else {
        "allows every DNS name, i.e. the whole internet"
    };
    finding(
        RuleId::FqdnWildcard,
        format!(
            "fqdn-wildcard: {at}: {field} \"{}\" {what}. Fix: use matchName for exact hosts, or \
             a pattern under one domain such as *.example.com.",
            crate::text::truncate_chars(p, 10)
        ),
    )
    .with_detail(
        "A pattern made only of wildcards (*, *.*, **.*) lets the pod reach any host it can \
         resolve (an attacker only needs a domain of the right shape), which defeats the point \
         of an FQDN allow list; a * in matchName is no literal host either. Fix: name the hosts, \
         e.g.\ntoFQDNs:\n- matchName: api.stripe.com\n- matchPattern: \"*.s3.amazonaws.com\"",
    )
}

/// The L4 part of a rule without peers: its `toPorts` port entries and
/// whether it has `icmps`. `None` when the rule lists neither, and so
/// allows nothing.
struct L4 {
    ports: Vec<CiliumPort>,
    icmp: bool,
}

/// One `toPorts[].ports[]` entry.
struct CiliumPort {
    /// Upper-cased; `ANY` when absent or empty.
    protocol: String,
    /// `None`: no port, `"0"` or empty, i.e. every port.
    port: Option<PortSpec>,
    end_port: Option<u64>,
}

enum PortSpec {
    Num(u64),
    Name(String),
}

impl L4 {
    fn of(rule: &Map<String, Value>) -> Option<L4> {
        let ports: Vec<CiliumPort> = list(rule, "toPorts")
            .iter()
            .filter_map(|pr| pr.get("ports").and_then(Value::as_array))
            .flatten()
            .filter_map(CiliumPort::parse)
            .collect();
        let icmp = list(rule, "icmps").iter().any(|i| {
            i.get("fields")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty())
        });
        (!ports.is_empty() || icmp).then_some(L4 { ports, icmp })
    }

    /// Some entry limits the port number (ICMP alone is a limit too).
    fn restricted(&self) -> bool {
        self.icmp || self.ports.iter().any(CiliumPort::restricts)
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .ports
            .iter()
            .take(2)
            .map(CiliumPort::describe)
            .collect();
        if self.icmp && parts.len() < 2 {
            parts.push("ICMP".to_string());
        }
        let mut s = parts.join(", ");
        if self.ports.len() + usize::from(self.icmp) > 2 {
            s.push_str(", ...");
        }
        s
    }
}

impl CiliumPort {
    fn parse(v: &Value) -> Option<CiliumPort> {
        let m = v.as_object()?;
        let protocol = match m.get("protocol").and_then(Value::as_str).map(str::trim) {
            None | Some("") => "ANY".to_string(),
            Some(p) => crate::text::truncate_chars(&p.to_ascii_uppercase(), 6),
        };
        let port = match m.get("port") {
            Some(Value::Number(n)) => n.as_u64().filter(|n| *n != 0).map(PortSpec::Num),
            Some(Value::String(s)) => match s.trim() {
                "" => None,
                s => match s.parse::<u64>() {
                    Ok(0) => None,
                    Ok(n) => Some(PortSpec::Num(n)),
                    Err(_) => Some(PortSpec::Name(s.to_string())),
                },
            },
            _ => None,
        };
        let end_port = m.get("endPort").and_then(Value::as_u64);
        Some(CiliumPort {
            protocol,
            port,
            end_port,
        })
    }

    fn restricts(&self) -> bool {
        match &self.port {
            None => false,
            Some(PortSpec::Num(n)) => range_restricts(*n, self.end_port),
            Some(PortSpec::Name(_)) => true,
        }
    }

    fn describe(&self) -> String {
        let proto = &self.protocol;
        match &self.port {
            None => format!("{proto} any port"),
            Some(PortSpec::Num(n)) => match self.end_port {
                Some(e) if e > *n => format!("{proto} {n}-{e}"),
                _ => format!("{proto} {n}"),
            },
            Some(PortSpec::Name(s)) => format!("{proto} {}", crate::text::truncate_chars(s, 15)),
        }
    }
}

/// `allow-all-peers` for an L4-only Cilium rule: `toPorts`/`icmps` and no
/// peer field, which Cilium reads as every peer on those ports. Milder
/// (warns) when the ports are limited, like a NetworkPolicy rule with
/// ports and no from/to.
fn l4_only(dir: Dir, place: &str, l4: &L4) -> Finding {
    let (whom, fix, example) = match dir {
        Dir::Ingress => (
            "every source",
            "name them in fromEndpoints, fromEntities or fromCIDRSet",
            "ingress:\n- fromEndpoints:\n  - matchLabels:\n      app: frontend\n  toPorts:\n  \
             - ports:\n    - port: \"8080\"\n      protocol: TCP",
        ),
        Dir::Egress => (
            "every destination",
            "name them in toEndpoints, toFQDNs or toCIDRSet",
            "egress:\n- toEndpoints:\n  - matchLabels:\n      k8s:io.kubernetes.pod.namespace: \
             kube-system\n      k8s:k8s-app: kube-dns\n  toPorts:\n  - ports:\n    - port: \
             \"53\"\n      protocol: ANY",
        ),
    };
    let detail = format!(
        "In Cilium a rule with toPorts (or icmps) and no peer field is an L4-only rule: it \
         matches {whom} (every pod of every namespace, the nodes and every address on the \
         internet) on its ports. Port 53 to any host is a DNS exfiltration path. A rule with \
         neither peers nor ports allows nothing. Fix: name the peers, e.g.\n{example}"
    );
    let has = if l4.ports.is_empty() {
        "icmps"
    } else {
        "toPorts"
    };
    let f = if l4.restricted() {
        finding(
            RuleId::AllowAllPeers,
            format!(
                "allow-all-peers: {place} has {has} but no peer field: it {} {whom}, in and out \
                 of the cluster, on {}. Fix: {fix}.",
                dir.opens(),
                l4.describe()
            ),
        )
        .milder()
    } else {
        finding(
            RuleId::AllowAllPeers,
            format!(
                "allow-all-peers: {place} has {has} but no peer field and no port limit: it {} \
                 {whom}, in and out of the cluster, on every port. Fix: {fix}.",
                dir.opens()
            ),
        )
    };
    f.with_detail(detail)
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
mod tests;

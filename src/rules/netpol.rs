//! Rules for networking.k8s.io/v1 NetworkPolicy: `allow-all-peers`,
//! `any-namespace-peer`, `world-cidr`, `or-selector-slip`,
//! `implicit-ingress-isolation` and `dns-single-protocol`.
//!
//! The object is arbitrary user JSON: every field may be missing, `null` or of
//! the wrong type. Malformed parts are skipped (the API server rejects them
//! anyway); nothing here panics. The only exception to "skip what is
//! malformed" is a `null` rule (`ingress: [null]`): the API server decodes it
//! as an empty rule, which allows everything, so it is judged as `{}`.
//!
//! The CIDR and message helpers marked `pub(crate)` are shared with the
//! Cilium rules.

use serde_json::{Map, Value};

use crate::cidr::{self, Cidr};
use crate::config::Settings;
use crate::rules::{Finding, MAX_WARNING_CHARS, RuleId};

/// Every finding the catalog's NetworkPolicy rules make on one policy object
/// (CREATE/UPDATE). `baseline-protected` is separate: it depends on the request.
/// Findings come in document order: the spec-level `implicit-ingress-isolation`
/// first, then ingress rules, then egress rules.
pub fn check(policy: &Value, settings: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(spec) = policy.get("spec").and_then(Value::as_object) else {
        return out;
    };
    implicit_ingress_isolation(spec, &mut out);
    for dir in [Dir::Ingress, Dir::Egress] {
        let Some(rules) = spec.get(dir.key()).and_then(Value::as_array) else {
            continue;
        };
        let mut blocks = PolicyBlocks::default();
        for (i, rule) in rules.iter().enumerate() {
            check_rule(dir, i, rule, settings, &mut blocks, &mut out);
        }
        // Rules add up: 256 /8 blocks split over two rules open as much as
        // one 0.0.0.0/0. Not said again for a family a rule already covered.
        if blocks.rules > 1 {
            let place = format!("{} rules", dir.key());
            for ipv4 in union_families(&blocks.cidrs, blocks.reported, settings) {
                out.push(
                    finding(
                        RuleId::WorldCidr,
                        world_union_message(&place, &blocks.cidrs, ipv4),
                    )
                    .with_detail(world_cidr_detail(&ipblock_example(dir))),
                );
            }
        }
    }
    out
}

/// The ipBlocks of one direction's rules, for the union over the policy.
#[derive(Default)]
struct PolicyBlocks {
    cidrs: Vec<Cidr>,
    /// Families a single rule or block was already reported for.
    reported: [bool; 2],
    /// Rules that had at least one block.
    rules: usize,
}

/// The direction of a rule, with the words that go with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Ingress,
    Egress,
}

impl Dir {
    /// The spec key holding the rules: `ingress` / `egress`.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Dir::Ingress => "ingress",
            Dir::Egress => "egress",
        }
    }

    /// The NetworkPolicy peer list: `from` / `to`.
    fn peers_key(self) -> &'static str {
        match self {
            Dir::Ingress => "from",
            Dir::Egress => "to",
        }
    }

    /// "admits traffic from" / "allows traffic to".
    pub(crate) fn opens(self) -> &'static str {
        match self {
            Dir::Ingress => "admits traffic from",
            Dir::Egress => "allows traffic to",
        }
    }
}

// ---------------------------------------------------------------------------
// Shared helpers (also used by the Cilium rules)
// ---------------------------------------------------------------------------

/// Makes a finding whose message is one line of at most `MAX_WARNING_CHARS`.
pub(crate) fn finding(rule: RuleId, message: String) -> Finding {
    Finding::new(rule, one_line(&message))
}

/// Replaces control characters (newlines from user input) with spaces and
/// truncates to `MAX_WARNING_CHARS` characters.
pub(crate) fn one_line(message: &str) -> String {
    let cleaned: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cleaned.chars().count() <= MAX_WARNING_CHARS {
        return cleaned;
    }
    let mut cut: String = cleaned.chars().take(MAX_WARNING_CHARS - 3).collect();
    cut.push_str("...");
    cut
}

/// A user-supplied string shortened for a message.
pub(crate) fn snip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(max.saturating_sub(3)).collect();
        cut.push_str("...");
        cut
    }
}

/// The shortest prefix accepted for the block's family.
pub(crate) fn min_prefix(c: &Cidr, settings: &Settings) -> u8 {
    if c.is_ipv4() {
        settings.config.cidr_limits.ipv4_min_prefix
    } else {
        settings.config.cidr_limits.ipv6_min_prefix
    }
}

/// Whether a block is wider than the configured limit and not inside one of
/// the `allowedCidrs`.
pub(crate) fn too_wide(c: &Cidr, settings: &Settings) -> bool {
    c.prefix() < min_prefix(c, settings) && !settings.allowed_cidrs.iter().any(|a| a.contains(c))
}

fn family(ipv4: bool) -> &'static str {
    if ipv4 { "IPv4" } else { "IPv6" }
}

/// A CIDR as the user wrote it when that is short and parseable, otherwise in
/// canonical form.
pub(crate) fn show_cidr(raw: &str, c: &Cidr) -> String {
    let raw = raw.trim();
    if raw.len() <= 43 && !raw.is_empty() {
        raw.to_string()
    } else {
        c.to_string()
    }
}

/// The `world-cidr` message for one block. `what` is e.g. `ipBlock ` (with its
/// trailing space) or empty; `has_except` notes an except list that does not
/// make the block acceptable.
pub(crate) fn world_cidr_message(
    place: &str,
    what: &str,
    raw: &str,
    c: &Cidr,
    dir: Dir,
    has_except: bool,
    settings: &Settings,
) -> String {
    let shown = show_cidr(raw, c);
    let limit = min_prefix(c, settings);
    let except = if has_except {
        "; except does not narrow it"
    } else {
        ""
    };
    let problem = if c.prefix() == 0 {
        format!(
            "{} every {} address (limit /{limit}){except}",
            dir.opens(),
            family(c.is_ipv4())
        )
    } else {
        format!("is wider than the /{limit} limit{except}")
    };
    format!(
        "world-cidr: {place}: {what}{shown} {problem}. \
         Fix: list the exact CIDRs you need, or add them to allowedCidrs."
    )
}

/// The `world-cidr` message for several blocks of one rule that together
/// cover a whole address family.
pub(crate) fn world_union_message(place: &str, blocks: &[Cidr], ipv4: bool) -> String {
    let mine: Vec<String> = blocks
        .iter()
        .filter(|c| c.is_ipv4() == ipv4)
        .map(|c| c.to_string())
        .collect();
    // As many blocks as fit in about 90 characters (at least one).
    let mut list = String::new();
    let mut shown = 0;
    for c in &mine {
        if shown > 0 && list.len() + c.len() > 88 {
            break;
        }
        if shown > 0 {
            list.push_str(", ");
        }
        list.push_str(c);
        shown += 1;
    }
    if mine.len() > shown {
        list.push_str(&format!(" and {} more", mine.len() - shown));
    }
    format!(
        "world-cidr: {place}: CIDRs {list} together cover every {} address. \
         Fix: list only the ranges you need, or add them to allowedCidrs.",
        family(ipv4)
    )
}

/// The `world-cidr` detail: why and how to fix, with a YAML example.
pub(crate) fn world_cidr_detail(example: &str) -> String {
    format!(
        "A block this wide covers the internet and every internal range, so a compromised pod \
         can reach (or be reached from) any host, and except lists do not change that. \
         Fix: allow only the ranges you need, e.g.\n{example}\nor, for a range your organisation \
         trusts, add it to allowedCidrs in the netpol-guard config."
    )
}

/// The families whose whole space the union of `blocks` covers while the
/// whole space is not acceptable, skipping families in `already`.
pub(crate) fn union_families(
    blocks: &[Cidr],
    already: [bool; 2],
    settings: &Settings,
) -> Vec<bool> {
    [true, false]
        .into_iter()
        .zip(already)
        .filter(|&(ipv4, done)| {
            !done
                && cidr::covers_family(blocks, ipv4)
                && too_wide(&Cidr::everything(ipv4), settings)
        })
        .map(|(ipv4, _)| ipv4)
        .collect()
}

/// Index into `[ipv4, ipv6]` flags.
pub(crate) fn fam_index(c: &Cidr) -> usize {
    if c.is_ipv4() { 0 } else { 1 }
}

/// A port range this wide (of 65,535) is no port restriction: it leaves
/// out fewer than 536 ports (`1024-65535`, every unprivileged port, still
/// counts as a restriction).
pub(crate) const UNRESTRICTED_RANGE: u64 = 65_000;

/// `{}`: a label selector without any `matchLabels` or `matchExpressions`
/// (empty or `null` ones count as absent). A malformed selector is not empty.
pub(crate) fn is_empty_selector(v: &Value) -> bool {
    let Some(m) = v.as_object() else {
        return false;
    };
    let labels_empty = match m.get("matchLabels") {
        None | Some(Value::Null) => true,
        Some(Value::Object(l)) => l.is_empty(),
        Some(_) => false,
    };
    let exprs_empty = match m.get("matchExpressions") {
        None | Some(Value::Null) => true,
        Some(Value::Array(e)) => e.is_empty(),
        Some(_) => false,
    };
    labels_empty && exprs_empty
}

/// A selector that matches everything without being `{}`: no matchLabels,
/// and only requirements every object without some label meets (`NotIn`,
/// `DoesNotExist`; they match everything created later too). For a
/// namespaceSelector also `kubernetes.io/metadata.name` `Exists`, which
/// every namespace carries.
pub(crate) fn selects_everything(v: &Value, namespace: bool) -> bool {
    let Some(m) = v.as_object() else {
        return false;
    };
    if !matches!(m.get("matchLabels"), None | Some(Value::Null))
        && !m
            .get("matchLabels")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        return false;
    }
    let Some(exprs) = m.get("matchExpressions").and_then(Value::as_array) else {
        return false;
    };
    !exprs.is_empty()
        && exprs.iter().all(|e| {
            let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            matches!(op, "NotIn" | "DoesNotExist")
                || (namespace && op == "Exists" && key == "kubernetes.io/metadata.name")
        })
}

/// A field that is present and not `null`.
fn present<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortNum {
    Num(u64),
    Name(String),
    /// A negative or fractional number: restricts, matches nothing.
    Invalid,
}

/// One `ports` entry.
#[derive(Debug, Clone)]
struct Port {
    /// Upper-cased; `TCP` when absent. `None` when not a string.
    protocol: Option<String>,
    port: Option<PortNum>,
    end_port: Option<u64>,
}

impl Port {
    fn parse(v: &Value) -> Option<Port> {
        let m = v.as_object()?;
        let protocol = match m.get("protocol") {
            None | Some(Value::Null) => Some("TCP".to_string()),
            Some(Value::String(s)) => Some(s.trim().to_ascii_uppercase()),
            Some(_) => None,
        };
        let port = match m.get("port") {
            Some(Value::Number(n)) => Some(n.as_u64().map_or(PortNum::Invalid, PortNum::Num)),
            Some(Value::String(s)) => {
                let s = s.trim();
                Some(match s.parse::<u64>() {
                    Ok(n) => PortNum::Num(n),
                    Err(_) => PortNum::Name(s.to_string()),
                })
            }
            _ => None,
        };
        let end_port = match m.get("endPort") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        Some(Port {
            protocol,
            port,
            end_port,
        })
    }

    /// Whether the entry limits the port number. No port at all does not,
    /// nor a range of `UNRESTRICTED_RANGE` ports or more (`port: 1, endPort:
    /// 65534` leaves one port out: no restriction in practice).
    fn restricts(&self) -> bool {
        match &self.port {
            None => false,
            Some(PortNum::Num(n)) => self
                .end_port
                .is_none_or(|e| e.saturating_sub(*n).saturating_add(1) < UNRESTRICTED_RANGE),
            Some(_) => true,
        }
    }

    /// Whether the entry opens port `p` (no port opens every port).
    fn covers(&self, p: u64) -> bool {
        match &self.port {
            None => true,
            Some(PortNum::Num(n)) => *n == p || self.end_port.is_some_and(|e| *n <= p && p <= e),
            Some(_) => false,
        }
    }

    /// Whether the entry names port `p` explicitly (as a number, or a range
    /// that does not span every port).
    fn names(&self, p: u64) -> bool {
        matches!(self.port, Some(PortNum::Num(_))) && self.restricts() && self.covers(p)
    }

    fn is(&self, protocol: &str) -> bool {
        self.protocol.as_deref() == Some(protocol)
    }

    fn describe(&self) -> String {
        let proto = snip(self.protocol.as_deref().unwrap_or("?"), 8);
        match &self.port {
            None => format!("{proto} any port"),
            Some(PortNum::Num(n)) => match self.end_port {
                Some(e) if e != *n => format!("{proto} {n}-{e}"),
                _ => format!("{proto} {n}"),
            },
            Some(PortNum::Name(s)) => format!("{proto} {}", snip(s, 15)),
            Some(PortNum::Invalid) => format!("{proto} ?"),
        }
    }
}

fn parse_ports(v: Option<&Value>) -> Vec<Port> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Port::parse).collect())
        .unwrap_or_default()
}

fn describe_ports(ports: &[Port]) -> String {
    let mut s = ports
        .iter()
        .take(2)
        .map(Port::describe)
        .collect::<Vec<_>>()
        .join(", ");
    if ports.len() > 2 {
        s.push_str(", ...");
    }
    s
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

fn implicit_ingress_isolation(spec: &Map<String, Value>, out: &mut Vec<Finding>) {
    let has_egress = spec
        .get("egress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let no_ingress = match spec.get("ingress") {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    let no_types = match spec.get("policyTypes") {
        None | Some(Value::Null) => true,
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    if has_egress && no_ingress && no_types {
        out.push(
            finding(
                RuleId::ImplicitIngressIsolation,
                "implicit-ingress-isolation: the policy has egress rules, no ingress rules and no \
                 policyTypes, so Kubernetes also isolates ingress: the selected pods refuse all \
                 incoming traffic. Fix: add policyTypes: [Egress]."
                    .to_string(),
            )
            .with_detail(
                "Without policyTypes, Kubernetes always adds Ingress (and Egress when egress rules \
                 exist), so an egress-only policy silently becomes a default deny for ingress too. \
                 Fix:\nspec:\n  policyTypes:\n  - Egress\n(or list Ingress too and add the ingress \
                 rules you need).",
            ),
        );
    }
}

fn check_rule(
    dir: Dir,
    i: usize,
    rule: &Value,
    settings: &Settings,
    blocks: &mut PolicyBlocks,
    out: &mut Vec<Finding>,
) {
    let empty = Map::new();
    let rule = match rule {
        Value::Object(m) => m,
        // The API server decodes a null list element as an empty rule.
        Value::Null => &empty,
        _ => return,
    };
    let ports = parse_ports(rule.get("ports"));
    let restricted = ports.iter().any(Port::restricts);
    let place = format!("{} rule {i}", dir.key());
    match rule.get(dir.peers_key()) {
        None | Some(Value::Null) => allow_all(dir, &place, false, &ports, restricted, out),
        Some(Value::Array(peers)) if peers.is_empty() => {
            allow_all(dir, &place, true, &ports, restricted, out)
        }
        Some(Value::Array(peers)) => {
            let rule_ports = RulePorts {
                ports: &ports,
                restricted,
            };
            check_peers(dir, &place, peers, rule_ports, settings, blocks, out)
        }
        Some(_) => {}
    }
    dns_single_protocol(&place, &ports, out);
}

fn allow_all(
    dir: Dir,
    place: &str,
    empty_list: bool,
    ports: &[Port],
    restricted: bool,
    out: &mut Vec<Finding>,
) {
    let key = dir.peers_key();
    let has = if empty_list {
        format!("an empty {key}")
    } else {
        format!("no {key}")
    };
    let whom = match dir {
        Dir::Ingress => "every source",
        Dir::Egress => "every destination",
    };
    let (example, fix) = match dir {
        Dir::Ingress => (
            "ingress:\n- from:\n  - podSelector:\n      matchLabels:\n        app: frontend\n  \
             ports:\n  - protocol: TCP\n    port: 8080",
            "add a from list naming the peers that need access.",
        ),
        Dir::Egress => (
            "egress:\n- to:\n  - namespaceSelector:\n      matchLabels:\n        \
             kubernetes.io/metadata.name: kube-system\n    podSelector:\n      matchLabels:\n        \
             k8s-app: kube-dns\n  ports:\n  - protocol: UDP\n    port: 53\n  - protocol: TCP\n    \
             port: 53",
            "add a to list naming the peers it needs.",
        ),
    };
    let detail = format!(
        "A rule without peers matches {whom}: every pod of every namespace and every address \
         inside and outside the cluster (on its ports, if it lists any; port 53 to any host is \
         a DNS exfiltration path). Fix: name the peers, e.g.\n{example}"
    );
    let f = if restricted {
        finding(
            RuleId::AllowAllPeers,
            format!(
                "allow-all-peers: {place} has {has}, so it {} {whom} inside and outside the \
                 cluster on {}. Fix: {fix}",
                dir.opens(),
                describe_ports(ports)
            ),
        )
        .milder()
    } else {
        finding(
            RuleId::AllowAllPeers,
            format!(
                "allow-all-peers: {place} has {has} and no port limit, so it {} {whom} inside \
                 and outside the cluster on every port. Fix: {fix}",
                dir.opens()
            ),
        )
    };
    out.push(f.with_detail(detail));
}

/// The selectors of a peer that has only a namespaceSelector or only a
/// podSelector, for `or-selector-slip`.
enum Lone<'a> {
    Namespace(&'a Value),
    Pod(&'a Value),
}

/// The ports of the rule whose peers are checked.
struct RulePorts<'a> {
    ports: &'a [Port],
    /// Some entry limits the port number (`Port::restricts`).
    restricted: bool,
}

fn check_peers(
    dir: Dir,
    place: &str,
    peers: &[Value],
    rule_ports: RulePorts<'_>,
    settings: &Settings,
    policy_blocks: &mut PolicyBlocks,
    out: &mut Vec<Finding>,
) {
    let RulePorts { ports, restricted } = rule_ports;
    let mut blocks: Vec<Cidr> = Vec::new();
    let mut flagged = [false, false];
    let mut lone_ns: Option<(usize, &Value)> = None;
    let mut lone_pod: Option<(usize, &Value)> = None;
    for (j, peer) in peers.iter().enumerate() {
        let Some(p) = peer.as_object() else {
            continue;
        };
        let ns = present(p, "namespaceSelector");
        let pod = present(p, "podSelector");
        let ip = present(p, "ipBlock");
        let peer_place = format!("{place}, peer {j}");

        if let Some(ns) = ns
            && ip.is_none()
            && (is_empty_selector(ns) || selects_everything(ns, true))
            && pod.is_none_or(|p| is_empty_selector(p) || selects_everything(p, false))
        {
            // The literal `{}` keeps its message; an equivalent form says
            // what it is and that it matches every namespace all the same.
            let written = (!is_empty_selector(ns)).then(|| {
                crate::engine::truncate_chars(&serde_json::to_string(ns).unwrap_or_default(), 120)
            });
            out.push(any_namespace(
                dir,
                &peer_place,
                pod.is_some(),
                written.as_deref(),
                ports,
                restricted,
            ));
        }

        // What cannot be read cannot be judged: denied, never skipped.
        if let Some(ip) = ip.and_then(Value::as_object)
            && let Some(raw) = ip.get("cidr").and_then(Value::as_str)
            && let Err(e) = raw.parse::<Cidr>()
        {
            out.push(
                finding(
                    RuleId::WorldCidr,
                    format!(
                        "world-cidr: {peer_place}: ipBlock {raw:?} is not a CIDR netpol-guard can read ({}), so what it \
                         allows cannot be judged. Fix: write it as e.g. 10.0.0.0/8.",
                        e.why
                    ),
                )
                .with_detail(
                    "netpol-guard reads ipBlocks as the API server does (leading zeros in IPv4 octets are decimal, \
                     IPv4-mapped IPv6 blocks are IPv4 blocks). A block it cannot read is denied rather than skipped: \
                     a policy whose reach cannot be judged is not let through.".to_string(),
                ),
            );
        }
        if let Some(ip) = ip.and_then(Value::as_object)
            && let Some(raw) = ip.get("cidr").and_then(Value::as_str)
            && let Ok(c) = raw.parse::<Cidr>()
        {
            blocks.push(c);
            if too_wide(&c, settings) {
                flagged[fam_index(&c)] = true;
                let has_except = ip
                    .get("except")
                    .and_then(Value::as_array)
                    .is_some_and(|e| !e.is_empty());
                out.push(
                    finding(
                        RuleId::WorldCidr,
                        world_cidr_message(
                            &peer_place,
                            "ipBlock ",
                            raw,
                            &c,
                            dir,
                            has_except,
                            settings,
                        ),
                    )
                    .with_detail(world_cidr_detail(&ipblock_example(dir))),
                );
            }
        }

        if ip.is_none() {
            let lone = match (ns, pod) {
                (Some(ns), None) if ns.is_object() => Some(Lone::Namespace(ns)),
                (None, Some(pod)) if pod.is_object() => Some(Lone::Pod(pod)),
                _ => None,
            };
            match lone {
                Some(Lone::Namespace(sel)) if lone_ns.is_none() => lone_ns = Some((j, sel)),
                Some(Lone::Pod(sel)) if lone_pod.is_none() => lone_pod = Some((j, sel)),
                _ => {}
            }
        }
    }

    let unions = union_families(&blocks, flagged, settings);
    for &ipv4 in &unions {
        out.push(
            finding(RuleId::WorldCidr, world_union_message(place, &blocks, ipv4))
                .with_detail(world_cidr_detail(&ipblock_example(dir))),
        );
    }
    if !blocks.is_empty() {
        policy_blocks.rules += 1;
        for (fam, reported) in policy_blocks.reported.iter_mut().enumerate() {
            *reported |= flagged[fam] || unions.contains(&(fam == 0));
        }
        policy_blocks.cidrs.extend(blocks);
    }

    if let (Some((a, ns)), Some((b, pod))) = (lone_ns, lone_pod) {
        out.push(or_selector_slip(dir, place, a, ns, b, pod));
    }
}

fn ipblock_example(dir: Dir) -> String {
    format!(
        "{}:\n- ipBlock:\n    cidr: 52.94.0.0/16\n  ports:\n  - protocol: TCP\n    port: 443",
        dir.peers_key()
    )
}

fn any_namespace(
    dir: Dir,
    place: &str,
    with_pod: bool,
    written: Option<&str>,
    ports: &[Port],
    restricted: bool,
) -> Finding {
    let what = match (written, with_pod) {
        (None, true) => "namespaceSelector: {} with podSelector: {}".to_string(),
        (None, false) => "namespaceSelector: {}".to_string(),
        (Some(sel), true) => format!(
            "namespaceSelector {sel} (it matches every namespace, like {{}}) with a podSelector that matches every pod"
        ),
        (Some(sel), false) => {
            format!("namespaceSelector {sel} (it matches every namespace, like {{}})")
        }
    };
    let on = if restricted {
        describe_ports(ports)
    } else {
        "every port".to_string()
    };
    let message = format!(
        "any-namespace-peer: {place}: {what} {} every pod in every namespace on {on}. \
         Fix: select namespaces by label and add a podSelector.",
        dir.opens()
    );
    let detail = format!(
        "An empty namespaceSelector matches all namespaces, including ones created later by \
         other teams, so any compromised pod in the cluster gets through. Fix: name the \
         namespace and the pods in one peer, e.g.\n{}:\n- namespaceSelector:\n    matchLabels:\n      \
         kubernetes.io/metadata.name: monitoring\n  podSelector:\n    matchLabels:\n      \
         app: prometheus",
        dir.peers_key()
    );
    let f = finding(RuleId::AnyNamespacePeer, message).with_detail(detail);
    if restricted { f.milder() } else { f }
}

fn or_selector_slip(
    dir: Dir,
    place: &str,
    ns_index: usize,
    ns: &Value,
    pod_index: usize,
    pod: &Value,
) -> Finding {
    let key = dir.peers_key();
    let message = format!(
        "or-selector-slip: {place}: peer {ns_index} (namespaceSelector only) and peer \
         {pod_index} (podSelector only) are ORed: all pods of those namespaces, or those pods of \
         this namespace. Fix: if you meant AND, put both selectors in one peer."
    );
    let (whom, scope) = match dir {
        Dir::Ingress => ("admits", "from"),
        Dir::Egress => ("allows", "to"),
    };
    let detail = format!(
        "Separate elements of one {key} list are alternatives, so this rule {whom} traffic \
         {scope} every pod of the namespaces the namespaceSelector matches, plus the pods the \
         podSelector matches in the policy's own namespace. To allow only those pods in those \
         namespaces, use one element with both selectors (AND):\n{key}:\n{}\n{}",
        yaml_field("- ", "namespaceSelector", ns),
        yaml_field("  ", "podSelector", pod)
    );
    finding(RuleId::OrSelectorSlip, message).with_detail(detail)
}

/// `lead key:` followed by `v` as YAML, nested four spaces under the key (or
/// inline for `{}` and non-objects).
fn yaml_field(lead: &str, key: &str, v: &Value) -> String {
    let nested = v.as_object().is_some_and(|m| !m.is_empty());
    let body = if nested {
        serde_yaml::to_string(v).ok()
    } else {
        None
    };
    match body {
        Some(body) => {
            let mut s = format!("{lead}{key}:");
            for line in body.trim_end().lines() {
                s.push_str("\n    ");
                s.push_str(line);
            }
            s
        }
        None => format!("{lead}{key}: {v}"),
    }
}

fn dns_single_protocol(place: &str, ports: &[Port], out: &mut Vec<Finding>) {
    if !ports.iter().any(|p| p.names(53)) {
        return;
    }
    let udp = ports.iter().any(|p| p.is("UDP") && p.covers(53));
    let tcp = ports.iter().any(|p| p.is("TCP") && p.covers(53));
    let (has, missing, effect) = match (udp, tcp) {
        (true, false) => (
            "UDP",
            "TCP",
            "DNS falls back to TCP for large answers (DNSSEC, many records), which will time out",
        ),
        (false, true) => (
            "TCP",
            "UDP",
            "resolvers query over UDP first, so lookups will time out",
        ),
        _ => return,
    };
    out.push(
        finding(
            RuleId::DnsSingleProtocol,
            format!(
                "dns-single-protocol: {place} opens port 53 on {has} only; {effect}. \
                 Fix: add {{protocol: {missing}, port: 53}} to the same rule."
            ),
        )
        .with_detail(
            "DNS needs both protocols: resolvers ask over UDP and retry over TCP when an answer \
             is truncated, so allowing only one causes lookup failures that are hard to trace. \
             Fix: open both in the same rule:\n  ports:\n  - protocol: UDP\n    port: 53\n  \
             - protocol: TCP\n    port: 53",
        ),
    );
}

#[cfg(test)]
mod tests {
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
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16"}},
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
        assert_eq!(run(&p), vec![]);
    }

    #[test]
    fn allowed_cidrs_pass() {
        let s = settings_yaml("allowedCidrs: [0.0.0.0/0, '2000::/3']\n");
        let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "2000::/4"}}],
                        "ports": [{"port": 443}]}]}));
        assert_eq!(run_with(&p, &s), vec![]);
        // Inside an allowed range passes; wider than it does not.
        let s = settings_yaml("allowedCidrs: [100.64.0.0/10]\n");
        let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "100.64.0.0/10"}}, {"ipBlock": {"cidr": "100.0.0.0/6"}}],
                        "ports": [{"port": 443}]}]}));
        let s2 = settings_yaml("cidrLimits: {ipv4MinPrefix: 16}\nallowedCidrs: [100.64.0.0/10]\n");
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
        assert_eq!(run_with(&p, &lax), vec![]);
    }

    #[test]
    fn union_covering_the_whole_space_is_denied() {
        let p = np(json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/1"}}, {"ipBlock": {"cidr": "128.0.0.0/1"}}]}]}));
        // Each /1 is itself wider than /8: two per-peer findings, no extra union one.
        let f = run(&p);
        assert_eq!(rules(&f), vec![RuleId::WorldCidr, RuleId::WorldCidr]);
        // With a lax limit each half passes but the union still covers everything.
        let lax = settings_yaml("cidrLimits: {ipv4MinPrefix: 1}\n");
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
        let allowed = settings_yaml("allowedCidrs: [0.0.0.0/1, 128.0.0.0/1]\n");
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
        let lax = settings_yaml("cidrLimits: {ipv6MinPrefix: 1}\n");
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
        let p =
            np(json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": peers}]}));
        let f = run(&p);
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
        let f = run(&p);
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
        assert_eq!(rules(&run(&p)), vec![RuleId::WorldCidr]);
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
                    f[0].message.starts_with(
                        "any-namespace-peer: ingress rule 0, peer 0: namespaceSelector {"
                    ),
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
                {"ipBlock": {"cidr": "10.1.0.0/16"}},
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
        let f = crate::rules::cilium::check(
            &fixture("ciliumnetworkpolicy-create-from-world"),
            false,
            &s,
        );
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
        assert_eq!(snip("abcdef", 5), "ab...");
        assert_eq!(snip("abc", 5), "abc");
    }
}

//! Rules for networking.k8s.io/v1 NetworkPolicy: `allow-all-peers`,
//! `any-namespace-peer`, `world-cidr`, `cluster-cidr-peer`,
//! `or-selector-slip`, `implicit-ingress-isolation` and
//! `dns-single-protocol`.
//!
//! The object is arbitrary user JSON: every field may be missing, `null` or of
//! the wrong type. Malformed parts are skipped (the API server rejects them
//! anyway); nothing here panics. The only exception to "skip what is
//! malformed" is a `null` rule (`ingress: [null]`): the API server decodes it
//! as an empty rule, which allows everything, so it is judged as `{}`.
//!
//! The CIDR and message helpers marked `pub(crate)` are shared with the
//! Cilium rules.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cidr::{self, AddrSet, Cidr};
use crate::cluster::ClusterView;
use crate::config::Settings;
use crate::rules::{Action, Finding, MAX_WARNING_CHARS, RuleId};

/// Every finding the catalog's NetworkPolicy rules make on one policy object
/// (CREATE/UPDATE). `baseline-protected` is separate: it depends on the request.
/// Findings come in document order: the spec-level `implicit-ingress-isolation`
/// first, then ingress rules, then egress rules.
pub fn check(policy: &Value, settings: &Settings) -> Vec<Finding> {
    judge(
        policy,
        &Ctx {
            settings,
            all_namespaces: None,
        },
    )
}

/// The fewest namespaces a view must know before a namespaceSelector that
/// matches all of them counts as matching every namespace: in a cluster of
/// one or two namespaces, "all of them" is too easily the one you meant.
pub const MIN_NAMESPACES_FOR_ALL: usize = 3;

/// [`check`], against the cluster view: when the view knows every namespace
/// of the cluster (`ClusterView::namespaces_complete`: the live watch has
/// listed them) and there are at least [`MIN_NAMESPACES_FOR_ALL`],
/// `any-namespace-peer` also fires for a namespaceSelector that matches
/// every one of them. A view built from manifests never knows that, so
/// offline `check` judges as [`check`] does.
pub fn check_in_view(policy: &Value, view: &ClusterView, settings: &Settings) -> Vec<Finding> {
    judge(
        policy,
        &Ctx {
            settings,
            all_namespaces: view.namespaces_complete().then_some(view),
        },
    )
}

/// What the rules judge with: the settings, and the view when it knows
/// every namespace of the cluster.
struct Ctx<'a> {
    settings: &'a Settings,
    all_namespaces: Option<&'a ClusterView>,
}

fn judge(policy: &Value, ctx: &Ctx<'_>) -> Vec<Finding> {
    let settings = ctx.settings;
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
            check_rule(dir, i, rule, ctx, &mut blocks, &mut out);
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
        let place = format!("{} rules", dir.key());
        if let Some(f) = blocks.cluster.union_finding(&place, dir, settings) {
            out.push(f);
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
    /// The same blocks after their `except` lists, for `cluster-cidr-peer`.
    cluster: ClusterBlocks,
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

/// One line of at most `MAX_WARNING_CHARS` characters (`text::one_line`).
pub(crate) fn one_line(message: &str) -> String {
    crate::text::one_line(message, MAX_WARNING_CHARS)
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

// ---------------------------------------------------------------------------
// cluster-cidr-peer (shared with the Cilium rules)
// ---------------------------------------------------------------------------

/// The ranges where pod and service networks usually live, checked by
/// `cluster-cidr-peer` when `clusterCidrs` is not set.
pub(crate) const PRIVATE_RANGES: [&str; 4] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
];

/// Without `clusterCidrs`, a block warns when it overlaps a private range
/// by this many addresses (a /16) or more.
pub(crate) const PRIVATE_OVERLAP: u128 = 1 << 16;

/// What `cluster-cidr-peer` guards: the configured `clusterCidrs` (a block
/// that covers half of one is denied), or else the private ranges (a block
/// that overlaps one by a /16 or more warns).
struct Guard {
    ranges: Vec<Cidr>,
    configured: bool,
}

impl Guard {
    fn of(settings: &Settings) -> Guard {
        if settings.cluster_cidrs.is_empty() {
            Guard {
                ranges: PRIVATE_RANGES
                    .iter()
                    .filter_map(|r| r.parse().ok())
                    .collect(),
                configured: false,
            }
        } else {
            Guard {
                ranges: settings.cluster_cidrs.clone(),
                configured: true,
            }
        }
    }

    /// How many of a range's addresses a peer may open before the rule
    /// fires: half of a cluster CIDR (rounded up), or a /16 of a private
    /// range.
    fn threshold(&self, range: &Cidr) -> u128 {
        if self.configured {
            range.size().div_ceil(2)
        } else {
            PRIVATE_OVERLAP
        }
    }

    /// The guarded ranges `open` reaches into too far, in configured
    /// order, with how many of their addresses it opens.
    fn hits(&self, open: &AddrSet) -> Vec<(Cidr, u128)> {
        self.ranges
            .iter()
            .map(|r| (*r, open.overlap(r)))
            .filter(|(r, n)| *n > 0 && *n >= self.threshold(r))
            .collect()
    }
}

/// One IP peer as written: a NetworkPolicy `ipBlock` (`cidr` and
/// `except`), or a Cilium `fromCIDR`/`toCIDR` (no except) or
/// `fromCIDRSet`/`toCIDRSet` entry.
pub(crate) struct IpPeer<'a> {
    /// Where it is, e.g. `egress rule 0, peer 1`.
    pub place: &'a str,
    /// What it is, with a trailing space (`ipBlock `, `toCIDRSet `) or empty.
    pub what: &'a str,
    /// The CIDR as written (shown when short).
    pub raw: &'a str,
    pub block: &'a Cidr,
    /// The readable `except` entries.
    pub except: &'a [Cidr],
}

/// The IP peers of one direction of a policy, after their except lists,
/// for `cluster-cidr-peer`: checked one by one as they come
/// ([`ClusterBlocks::check`]), then together ([`ClusterBlocks::union_finding`]),
/// as `world-cidr` adds blocks up, so that splitting a block does not hide
/// it. The Cilium rules use it the same way.
#[derive(Default)]
pub(crate) struct ClusterBlocks {
    /// Per block: the place of its rule, the block and what it opens.
    blocks: Vec<(String, Cidr, AddrSet)>,
    /// Guarded ranges a single block was already reported for.
    reported: Vec<Cidr>,
}

impl ClusterBlocks {
    /// `cluster-cidr-peer` for one peer of the rule at `rule_place`
    /// (e.g. `egress rule 0`), and records it for the union. Nothing when
    /// `world-cidr` already denies the block (`0.0.0.0/0` is denied once,
    /// not twice); when `world-cidr` is set to `warn` or `off`, or the block
    /// is in `allowedCidrs`, the block is still judged here.
    pub(crate) fn check(
        &mut self,
        rule_place: &str,
        peer: &IpPeer<'_>,
        dir: Dir,
        settings: &Settings,
    ) -> Option<Finding> {
        if too_wide(peer.block, settings) && settings.action(RuleId::WorldCidr) == Action::Deny {
            return None;
        }
        let open = AddrSet::block_except(peer.block, peer.except);
        if open.is_empty() {
            return None;
        }
        let guard = Guard::of(settings);
        let hits = guard.hits(&open);
        self.blocks
            .push((rule_place.to_string(), *peer.block, open.clone()));
        let (range, n) = *hits.first()?;
        for (r, _) in &hits {
            if !self.reported.contains(r) {
                self.reported.push(*r);
            }
        }
        // Short: the message names two more CIDRs.
        let shown = if peer.raw.trim().len() <= 24 {
            show_cidr(peer.raw, peer.block)
        } else {
            peer.block.to_string()
        };
        let subject = format!("{}: {}{shown}", peer.place, peer.what);
        let covers = cover_words(&guard, &range, n, open.covers(&range), false);
        let carve = peer.block.prefix() < range.prefix() && peer.block.contains(&range);
        let fix = match (guard.configured, carve) {
            (true, true) => format!("add {range} to its except"),
            (true, false) => format!("keep the block outside {range}"),
            (false, _) => "narrow the block".to_string(),
        };
        let message =
            cluster_cidr_message(&guard, &subject, &covers, (&range, hits.len() - 1), &fix);
        let example = cluster_cidr_example(dir, carve.then_some((peer.block, &range)));
        Some(cluster_cidr_finding(&guard, message, dir, &example))
    }

    /// After every peer of a direction: a guarded range that the blocks
    /// open together, when none of them alone was reported for it. `place`
    /// is used when the blocks come from several rules (`egress rules`).
    pub(crate) fn union_finding(
        &self,
        place: &str,
        dir: Dir,
        settings: &Settings,
    ) -> Option<Finding> {
        if self.blocks.len() < 2 {
            return None;
        }
        let mut all = AddrSet::default();
        for (_, _, open) in &self.blocks {
            all.extend(open);
        }
        let guard = Guard::of(settings);
        let hits: Vec<(Cidr, u128)> = guard
            .hits(&all)
            .into_iter()
            .filter(|(r, _)| !self.reported.contains(r))
            .collect();
        let (range, n) = *hits.first()?;
        let parts: Vec<&(String, Cidr, AddrSet)> = self
            .blocks
            .iter()
            .filter(|(_, _, open)| open.overlap(&range) > 0)
            .collect();
        let place = match parts.first() {
            Some((first, _, _)) if parts.iter().all(|(p, _, _)| p == first) => first.as_str(),
            _ => place,
        };
        // As many blocks as fit in about 36 characters (at least one).
        let mut list = String::new();
        let mut shown = 0;
        for (_, c, _) in &parts {
            let c = c.to_string();
            if shown > 0 && list.len() + c.len() > 34 {
                break;
            }
            if shown > 0 {
                list.push_str(", ");
            }
            list.push_str(&c);
            shown += 1;
        }
        if parts.len() > shown {
            list.push_str(&format!(" and {} more", parts.len() - shown));
        }
        let subject = format!("{place}: ipBlocks {list}");
        let covers = cover_words(&guard, &range, n, all.covers(&range), true);
        let fix = if guard.configured {
            format!("keep the blocks outside {range}")
        } else {
            "narrow the blocks".to_string()
        };
        let message =
            cluster_cidr_message(&guard, &subject, &covers, (&range, hits.len() - 1), &fix);
        let example = cluster_cidr_example(dir, None);
        Some(cluster_cidr_finding(&guard, message, dir, &example))
    }
}

/// "contains cluster CIDR", "covers 50% of cluster CIDR", "overlaps N
/// addresses of private range" (`together`: of several blocks).
fn cover_words(guard: &Guard, range: &Cidr, n: u128, whole: bool, together: bool) -> String {
    let verb = |one: &str, many: &str| {
        if together {
            format!("together {many}")
        } else {
            one.to_string()
        }
    };
    if !guard.configured {
        return format!(
            "{} {n} addresses of private range",
            verb("overlaps", "overlap")
        );
    }
    if whole {
        return format!("{} cluster CIDR", verb("contains", "contain"));
    }
    // At least half; never shown as 100% while an address is missing.
    let pct = (n as f64 / range.size() as f64 * 100.0).floor().min(99.0);
    format!("{} {pct}% of cluster CIDR", verb("covers", "cover"))
}

/// The one-line message. `range` is the first guarded range hit and how
/// many more were; `fix` what to do about the block(s).
fn cluster_cidr_message(
    guard: &Guard,
    subject: &str,
    covers: &str,
    (range, more): (&Cidr, usize),
    fix: &str,
) -> String {
    let more = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    if guard.configured {
        format!(
            "cluster-cidr-peer: {subject} {covers} {range}{more}, so its pods pass by IP whatever the \
             selectors say. Fix: {fix}; select pods by label."
        )
    } else {
        format!(
            "cluster-cidr-peer: {subject} {covers} {range}{more}, where pods may live. Fix: {fix} and \
             select pods by label (set clusterCidrs for an exact check)."
        )
    }
}

/// The finding: denied with `clusterCidrs`, the milder warning without.
fn cluster_cidr_finding(guard: &Guard, message: String, dir: Dir, example: &str) -> Finding {
    let f = finding(RuleId::ClusterCidrPeer, message)
        .with_detail(cluster_cidr_detail(guard, dir, example));
    if guard.configured { f } else { f.milder() }
}

/// A YAML fix: the block with the range carved out (when it is wider than
/// the range; an except must lie inside its block), and a selector peer.
fn cluster_cidr_example(dir: Dir, carve: Option<(&Cidr, &Cidr)>) -> String {
    let key = dir.peers_key();
    let selectors = "- namespaceSelector:\n    matchLabels:\n      kubernetes.io/metadata.name: monitoring\n  \
                     podSelector:\n    matchLabels:\n      app: prometheus";
    match carve {
        Some((block, range)) => {
            format!(
                "{key}:\n- ipBlock:\n    cidr: {block}\n    except:\n    - {range}\n{selectors}"
            )
        }
        None => format!("{key}:\n{selectors}"),
    }
}

fn cluster_cidr_detail(guard: &Guard, dir: Dir, example: &str) -> String {
    let effect = match dir {
        Dir::Ingress => "can connect to the selected pods",
        Dir::Egress => "can be reached by the selected pods",
    };
    let why = if guard.configured {
        "An ipBlock matches addresses, not pods: when it covers the cluster's pod or service network \
         (clusterCidrs in the netpol-guard config), every pod of every namespace, including ones created \
         later, whose IP falls in it"
            .to_string()
    } else {
        format!(
            "An ipBlock matches addresses, not pods. Pod and service networks usually live in {}; a block \
             that overlaps them by a /16 or more may match pod IPs, and then every pod whose IP falls in it",
            PRIVATE_RANGES.join(", ")
        )
    };
    let exact = if guard.configured {
        ""
    } else {
        " This only warns, because netpol-guard does not know this cluster's networks: a cluster admin \
         lists them in clusterCidrs in the netpol-guard config (e.g. clusterCidrs: [10.244.0.0/16, \
         10.96.0.0/12]) to check exactly, and deny."
    };
    format!(
        "{why} {effect}, whatever the namespaceSelector and podSelector peers say.{exact} Fix: keep \
         ipBlocks for addresses outside the cluster (except the cluster CIDRs from wider blocks), and select \
         in-cluster peers by label, e.g.\n{example}"
    )
}

/// Index into `[ipv4, ipv6]` flags.
pub(crate) fn fam_index(c: &Cidr) -> usize {
    if c.is_ipv4() { 0 } else { 1 }
}

/// A port range this wide (of 65,535) is no port restriction: it leaves
/// out fewer than 536 ports (`1024-65535`, every unprivileged port, still
/// counts as a restriction).
pub(crate) const UNRESTRICTED_RANGE: u64 = 65_000;

/// Whether a port entry `port`..`end_port` limits the port number: a single
/// port does, a range of `UNRESTRICTED_RANGE` ports or more does not. Shared
/// by NetworkPolicy and Cilium port entries.
pub(crate) fn range_restricts(port: u64, end_port: Option<u64>) -> bool {
    end_port.is_none_or(|e| e.saturating_sub(port).saturating_add(1) < UNRESTRICTED_RANGE)
}

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
            Some(PortNum::Num(n)) => range_restricts(*n, self.end_port),
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
        let proto = crate::text::truncate_chars(self.protocol.as_deref().unwrap_or("?"), 8);
        match &self.port {
            None => format!("{proto} any port"),
            Some(PortNum::Num(n)) => match self.end_port {
                Some(e) if e != *n => format!("{proto} {n}-{e}"),
                _ => format!("{proto} {n}"),
            },
            Some(PortNum::Name(s)) => format!("{proto} {}", crate::text::truncate_chars(s, 15)),
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
    ctx: &Ctx<'_>,
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
            check_peers(dir, &place, peers, rule_ports, ctx, blocks, out)
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
    ctx: &Ctx<'_>,
    policy_blocks: &mut PolicyBlocks,
    out: &mut Vec<Finding>,
) {
    let settings = ctx.settings;
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

        let every_pod = pod.is_none_or(|p| is_empty_selector(p) || selects_everything(p, false));
        if let Some(ns) = ns
            && ip.is_none()
            && every_pod
            && (is_empty_selector(ns) || selects_everything(ns, true))
        {
            // The literal `{}` keeps its message; an equivalent form says
            // what it is and that it matches every namespace all the same.
            let written = (!is_empty_selector(ns)).then(|| {
                crate::text::truncate_chars(&serde_json::to_string(ns).unwrap_or_default(), 120)
            });
            out.push(any_namespace(
                dir,
                &peer_place,
                pod.is_some(),
                written.as_deref(),
                ports,
                restricted,
            ));
        } else if let Some(ns) = ns
            && ip.is_none()
            && every_pod
            && let Some(view) = ctx.all_namespaces
            && let Some(n) = matches_every_namespace(ns, view)
        {
            out.push(any_namespace_today(
                dir,
                &peer_place,
                ns,
                n,
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
            // Except entries that cannot be read take nothing away (the
            // API server rejects them anyway): the block is judged whole.
            let except: Vec<Cidr> = ip
                .get("except")
                .and_then(Value::as_array)
                .map(|e| e.iter().filter_map(|x| x.as_str()?.parse().ok()).collect())
                .unwrap_or_default();
            let peer = IpPeer {
                place: &peer_place,
                what: "ipBlock ",
                raw,
                block: &c,
                except: &except,
            };
            if let Some(f) = policy_blocks.cluster.check(place, &peer, dir, settings) {
                out.push(f);
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

/// How many namespaces a namespaceSelector matches, when it matches every
/// namespace of `view` and there are at least [`MIN_NAMESPACES_FOR_ALL`].
/// A selector that does not compile matches nothing.
fn matches_every_namespace(selector: &Value, view: &ClusterView) -> Option<usize> {
    let sel = crate::selector::Selector::from_value(Some(selector)).ok()?;
    let mut n = 0;
    for (_, labels) in view.namespaces() {
        if !sel.matches(labels) {
            return None;
        }
        n += 1;
    }
    (n >= MIN_NAMESPACES_FOR_ALL).then_some(n)
}

/// `any-namespace-peer` for a selector that is not `{}` (nor matches every
/// namespace by construction) but matches all `n` namespaces of the
/// cluster today.
fn any_namespace_today(
    dir: Dir,
    place: &str,
    ns: &Value,
    n: usize,
    ports: &[Port],
    restricted: bool,
) -> Finding {
    let written = crate::selector::LabelSelector::deserialize(ns)
        .map(|s| crate::selector::describe(&s))
        .unwrap_or_default();
    let on = if restricted {
        describe_ports(ports)
    } else {
        "every port".to_string()
    };
    let message = format!(
        "any-namespace-peer: {place}: namespaceSelector {} matches all {n} namespaces today (new ones only \
         if labelled to match), so it {} all their pods on {on}. Fix: select only the namespaces you need.",
        crate::text::truncate_chars(&written, 40),
        dir.opens()
    );
    let detail = format!(
        "This namespaceSelector is not {{}}, but it matches every namespace the cluster has now ({n} of {n}, \
         by netpol-guard's live view of the Namespaces), so today it grants as much as namespaceSelector: {{}}: \
         a compromised pod in any namespace gets through. A namespace created later matches only if it \
         carries the labels the selector asks for. Fix: select only the namespaces that need access, and the \
         pods within them, in one peer, e.g.\n{}:\n- namespaceSelector:\n    matchLabels:\n      \
         kubernetes.io/metadata.name: monitoring\n  podSelector:\n    matchLabels:\n      app: prometheus",
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
mod tests;

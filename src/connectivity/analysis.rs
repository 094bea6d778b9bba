//! Who can talk to whom under Kubernetes NetworkPolicy semantics:
//!
//! - a pod is isolated in a direction only when some policy whose effective
//!   policyTypes hold that direction selects it; policies add up;
//! - a connection is allowed when the source's egress and the
//!   destination's ingress both allow it (outside the cluster only the
//!   pod's side is checked);
//! - a peer is `podSelector` (the policy's namespace), `namespaceSelector`,
//!   both in one entry (pods matching in namespaces matching), or an
//!   `ipBlock` minus its `except`, which matches addresses outside the
//!   cluster only; an empty peer list is everyone;
//! - named ports resolve through the destination pod's container ports.
//!
//! Pods with the same namespace, labels and ports are indistinguishable to
//! every policy, so the work is done once per such group and only the
//! output is per workload pair.

use std::collections::{BTreeMap, HashMap};

use super::model::{Model, NamedPort, Peer, Policy, Rule, Workload};
use super::ports::Conn;
use crate::cidr::{AddrSet, format_addr};
use crate::selector::Labels;

/// A node of the map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Workload {
        namespace: String,
        name: String,
        kind: &'static str,
    },
    /// Addresses outside the cluster: one contiguous range, as printed.
    External { ranges: String },
}

impl Node {
    /// The analyzer's notation: `ns/name[Kind]`, `a-b[External]`.
    pub fn label(&self) -> String {
        match self {
            Node::Workload {
                namespace,
                name,
                kind,
            } => format!("{namespace}/{name}[{kind}]"),
            Node::External { ranges } => format!("{ranges}[External]"),
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        match self {
            Node::Workload { namespace, .. } => Some(namespace),
            Node::External { .. } => None,
        }
    }

    fn of(w: &Workload) -> Node {
        Node::Workload {
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            kind: w.kind.as_str(),
        }
    }
}

/// One allowed connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub src: Node,
    pub dst: Node,
    pub conn: Conn,
}

impl Connection {
    /// `src => dst : conn`, one line of the analyzer's txt output.
    pub fn line(&self) -> String {
        format!(
            "{} => {} : {}",
            self.src.label(),
            self.dst.label(),
            self.conn
        )
    }
}

/// What a workload is exposed to (`--exposure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    pub workload: Node,
    /// Reachable from pods of every namespace of the input (a peer that
    /// matches them all).
    pub every_namespace: Option<Conn>,
    /// Reachable from addresses outside the cluster: which, and how.
    pub external: Vec<(String, Conn)>,
    /// Reachable from namespaces that do not exist yet: a peer that does
    /// not depend on the namespace's identity (`namespaceSelector: {}` or
    /// only negative requirements, no peers at all, or no isolation).
    pub future_namespaces: Option<Conn>,
}

/// The whole map.
#[derive(Debug, Clone, Default)]
pub struct Connectivity {
    /// Every workload analysed, sorted by label.
    pub workloads: Vec<Node>,
    /// Host-network workloads: shown, outside NetworkPolicy.
    pub host_network: Vec<Node>,
    /// Sorted by line.
    pub connections: Vec<Connection>,
    pub notes: Vec<String>,
    pub exposure: Vec<Exposure>,
}

/// Pods that no policy can tell apart.
struct Group {
    namespace: String,
    labels: Labels,
    ports: Vec<NamedPort>,
    workloads: Vec<usize>,
}

/// Where one rule's peers are: every source or destination, or some groups
/// and addresses.
struct Peers {
    everyone: bool,
    groups: Vec<u32>,
    addrs: AddrSet,
    /// Some peer matches pods in every namespace of the input.
    all_namespaces: bool,
    /// Some peer does not depend on which namespace a pod is in, so it
    /// matches namespaces that do not exist yet.
    any_namespace: bool,
}

/// What one side allows: `None` when no policy isolates it.
struct Side<'a> {
    rules: Vec<(&'a Rule, &'a Peers)>,
}

/// Computes the map.
pub fn analyse(model: &Model) -> Connectivity {
    let groups = group(&model.workloads);
    let mut by_ns: HashMap<&str, Vec<u32>> = HashMap::new();
    for (i, g) in groups.iter().enumerate() {
        by_ns
            .entry(g.namespace.as_str())
            .or_default()
            .push(u32::try_from(i).unwrap_or(u32::MAX));
    }
    // Each rule's peers, resolved once.
    let peers: Vec<(Vec<Peers>, Vec<Peers>)> = model
        .policies
        .iter()
        .map(|p| {
            let resolve = |rules: &Option<Vec<Rule>>| {
                rules
                    .iter()
                    .flatten()
                    .map(|r| resolve(r, p, model, &groups, &by_ns))
                    .collect()
            };
            (resolve(&p.ingress), resolve(&p.egress))
        })
        .collect();
    // Per group, the rules that apply to it (None: not isolated).
    let mut ingress: Vec<Option<Side<'_>>> = groups.iter().map(|_| None).collect();
    let mut egress: Vec<Option<Side<'_>>> = groups.iter().map(|_| None).collect();
    for (p, (ing_peers, eg_peers)) in model.policies.iter().zip(&peers) {
        for &g in by_ns.get(p.namespace.as_str()).into_iter().flatten() {
            let grp = &groups[g as usize];
            if !p.selector.matches(&grp.labels) {
                continue;
            }
            if let Some(rules) = &p.ingress {
                let side = ingress[g as usize].get_or_insert_with(|| Side { rules: vec![] });
                side.rules.extend(rules.iter().zip(ing_peers));
            }
            if let Some(rules) = &p.egress {
                let side = egress[g as usize].get_or_insert_with(|| Side { rules: vec![] });
                side.rules.extend(rules.iter().zip(eg_peers));
            }
        }
    }
    let segments = segments(&peers);
    let mut out = Connectivity {
        workloads: model.workloads.iter().map(Node::of).collect(),
        host_network: model.host_network.iter().map(Node::of).collect(),
        notes: model.notes.clone(),
        ..Default::default()
    };
    // Ingress per destination group: what each source group may send.
    let ingress_from: Vec<Allow> = groups
        .iter()
        .zip(&ingress)
        .map(|(g, side)| Allow::ingress(side.as_ref(), &g.ports))
        .collect();
    let all_groups: Vec<u32> = (0..groups.len())
        .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    let mut pairs: Vec<(u32, u32, Conn)> = Vec::new();
    for (s, side) in egress.iter().enumerate() {
        let s32 = u32::try_from(s).unwrap_or(u32::MAX);
        let candidates: Vec<u32> = match side {
            None => all_groups.clone(),
            Some(side) if side.rules.iter().any(|(_, p)| p.everyone) => all_groups.clone(),
            Some(side) => {
                let mut c: Vec<u32> = side
                    .rules
                    .iter()
                    .flat_map(|(_, p)| p.groups.iter().copied())
                    .collect();
                c.sort_unstable();
                c.dedup();
                c
            }
        };
        for d in candidates {
            let dst = &groups[d as usize];
            let to = match side {
                None => Conn::all(),
                Some(side) => {
                    let mut c = Conn::none();
                    for (rule, p) in &side.rules {
                        if p.everyone || p.groups.binary_search(&d).is_ok() {
                            c.add(&rule.conn_to(Some(&dst.ports)));
                        }
                    }
                    c
                }
            };
            if to.is_empty() {
                continue;
            }
            let from = ingress_from[d as usize].allowed_from(s32);
            let c = to.intersect(&from);
            if !c.is_empty() {
                pairs.push((s32, d, c));
            }
        }
    }
    for (s, d, conn) in pairs {
        for &ws in &groups[s as usize].workloads {
            for &wd in &groups[d as usize].workloads {
                if ws != wd {
                    out.connections.push(Connection {
                        src: out.workloads[ws].clone(),
                        dst: out.workloads[wd].clone(),
                        conn: conn.clone(),
                    });
                }
            }
        }
    }
    // Outside the cluster: only the pod's side decides.
    for (g, grp) in groups.iter().enumerate() {
        let into = external(ingress[g].as_ref(), &segments, Some(&grp.ports));
        let out_of = external(egress[g].as_ref(), &segments, None);
        for &w in &grp.workloads {
            let node = &out.workloads[w];
            for (ranges, conn) in &into {
                out.connections.push(Connection {
                    src: Node::External {
                        ranges: ranges.clone(),
                    },
                    dst: node.clone(),
                    conn: conn.clone(),
                });
            }
            for (ranges, conn) in &out_of {
                out.connections.push(Connection {
                    src: node.clone(),
                    dst: Node::External {
                        ranges: ranges.clone(),
                    },
                    conn: conn.clone(),
                });
            }
        }
        let (every_namespace, future_namespaces) = namespace_reach(&grp.ports, ingress[g].as_ref());
        for &w in &grp.workloads {
            out.exposure.push(Exposure {
                workload: out.workloads[w].clone(),
                every_namespace: every_namespace.clone(),
                external: into.clone(),
                future_namespaces: future_namespaces.clone(),
            });
        }
    }
    let mut keyed: Vec<(String, Connection)> =
        out.connections.drain(..).map(|c| (c.line(), c)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    out.connections = keyed.into_iter().map(|(_, c)| c).collect();
    out.exposure.sort_by_key(|e| e.workload.label());
    out
}

/// Groups workloads by namespace, labels and ports.
fn group(workloads: &[Workload]) -> Vec<Group> {
    let mut index: HashMap<(&str, &Labels, &[NamedPort]), usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        let key = (w.namespace.as_str(), &w.labels, w.ports.as_slice());
        match index.get(&key) {
            Some(&g) => groups[g].workloads.push(i),
            None => {
                index.insert(key, groups.len());
                groups.push(Group {
                    namespace: w.namespace.clone(),
                    labels: w.labels.clone(),
                    ports: w.ports.clone(),
                    workloads: vec![i],
                });
            }
        }
    }
    groups
}

fn resolve(
    rule: &Rule,
    policy: &Policy,
    model: &Model,
    groups: &[Group],
    by_ns: &HashMap<&str, Vec<u32>>,
) -> Peers {
    let mut p = Peers {
        everyone: rule.peers.is_empty(),
        groups: Vec::new(),
        addrs: AddrSet::default(),
        all_namespaces: rule.peers.is_empty(),
        any_namespace: rule.peers.is_empty(),
    };
    for peer in &rule.peers {
        match peer {
            Peer::Addresses(a) => p.addrs.extend(a),
            Peer::Pods { namespaces, pods } => {
                let names: Vec<&str> = match namespaces {
                    None => vec![policy.namespace.as_str()],
                    Some(sel) => {
                        if !sel.is_specific() {
                            p.any_namespace = true;
                        }
                        let names: Vec<&str> = model
                            .namespaces
                            .iter()
                            .filter(|(_, labels)| sel.matches(labels))
                            .map(|(n, _)| n.as_str())
                            .collect();
                        if names.len() == model.namespaces.len() {
                            p.all_namespaces = true;
                        }
                        names
                    }
                };
                for ns in names {
                    for &g in by_ns.get(ns).into_iter().flatten() {
                        if pods.matches(&groups[g as usize].labels) {
                            p.groups.push(g);
                        }
                    }
                }
            }
        }
    }
    p.groups.sort_unstable();
    p.groups.dedup();
    p
}

/// What a destination's ingress allows from each source group.
struct Allow {
    /// From every source (rules without peers, or no isolation).
    any: Conn,
    by_group: HashMap<u32, Conn>,
}

impl Allow {
    fn ingress(side: Option<&Side<'_>>, ports: &[NamedPort]) -> Allow {
        let Some(side) = side else {
            return Allow {
                any: Conn::all(),
                by_group: HashMap::new(),
            };
        };
        let mut a = Allow {
            any: Conn::none(),
            by_group: HashMap::new(),
        };
        for (rule, peers) in &side.rules {
            let c = rule.conn_to(Some(ports));
            if c.is_empty() {
                continue;
            }
            if peers.everyone {
                a.any.add(&c);
            }
            for g in &peers.groups {
                a.by_group.entry(*g).or_default().add(&c);
            }
        }
        a
    }

    fn allowed_from(&self, g: u32) -> Conn {
        let mut c = self.any.clone();
        if let Some(more) = self.by_group.get(&g) {
            c.add(more);
        }
        c
    }
}

/// (ipv4, first address, last address).
type Segment = (bool, u128, u128);

/// The address space cut at every boundary an ipBlock draws: per family,
/// consecutive ranges each wholly inside or outside every block.
struct Segments {
    list: Vec<Segment>,
}

fn segments(peers: &[(Vec<Peers>, Vec<Peers>)]) -> Segments {
    let mut cuts: [Vec<u128>; 2] = [vec![0], vec![0]];
    let mut ipv6 = false;
    for (a, b) in peers {
        for p in a.iter().chain(b) {
            for (fam, ipv4) in [(0, true), (1, false)] {
                for &(s, e) in p.addrs.ranges(ipv4) {
                    ipv6 |= !ipv4;
                    cuts[fam].push(s);
                    if let Some(next) = e.checked_add(1) {
                        cuts[fam].push(next);
                    }
                }
            }
        }
    }
    let mut list = Vec::new();
    for (fam, ipv4, max) in [(0, true, u128::from(u32::MAX)), (1, false, u128::MAX)] {
        if !ipv4 && !ipv6 {
            continue;
        }
        let c = &mut cuts[fam];
        c.retain(|&x| x <= max);
        c.sort_unstable();
        c.dedup();
        for (i, &start) in c.iter().enumerate() {
            let end = c.get(i + 1).map_or(max, |n| n - 1);
            list.push((ipv4, start, end));
        }
    }
    Segments { list }
}

/// The external addresses one side allows, grouped by connection: for
/// ingress, from them into the pods (named ports resolve on the pods); for
/// egress, from the pods to them (named ports resolve to nothing).
fn external(
    side: Option<&Side<'_>>,
    segments: &Segments,
    ports: Option<&[NamedPort]>,
) -> Vec<(String, Conn)> {
    let mut by_conn: BTreeMap<String, (Conn, Vec<Segment>)> = BTreeMap::new();
    for &(ipv4, start, end) in &segments.list {
        let c = match side {
            None => Conn::all(),
            Some(side) => {
                let mut c = Conn::none();
                for (rule, peers) in &side.rules {
                    if peers.everyone || peers.addrs.contains_range(ipv4, start, end) {
                        c.add(&rule.conn_to(ports));
                    }
                }
                c
            }
        };
        if c.is_empty() {
            continue;
        }
        by_conn
            .entry(c.to_string())
            .or_insert_with(|| (c, Vec::new()))
            .1
            .push((ipv4, start, end));
    }
    // One entry per contiguous range, as the analyzer prints them: lines
    // compare one to one.
    by_conn
        .into_values()
        .flat_map(|(c, segs)| {
            merge_adjacent(&segs)
                .into_iter()
                .map(move |seg| (range_text(seg), c.clone()))
        })
        .collect()
}

/// Adjacent segments of one family joined.
fn merge_adjacent(segs: &[Segment]) -> Vec<Segment> {
    let mut merged: Vec<Segment> = Vec::new();
    for &(ipv4, s, e) in segs {
        match merged.last_mut() {
            Some(last) if last.0 == ipv4 && last.2.checked_add(1) == Some(s) => last.2 = e,
            _ => merged.push((ipv4, s, e)),
        }
    }
    merged
}

/// `a-b`: one range, as the analyzer prints it.
fn range_text((ipv4, start, end): Segment) -> String {
    format!("{}-{}", format_addr(ipv4, start), format_addr(ipv4, end))
}

/// What reaches pods with `ports` whose ingress is `side` from every
/// namespace of the input, and from namespaces that do not exist yet.
fn namespace_reach(ports: &[NamedPort], side: Option<&Side<'_>>) -> (Option<Conn>, Option<Conn>) {
    let Some(side) = side else {
        return (Some(Conn::all()), Some(Conn::all()));
    };
    let (mut every, mut future) = (Conn::none(), Conn::none());
    for (rule, peers) in &side.rules {
        if peers.all_namespaces {
            every.add(&rule.conn_to(Some(ports)));
        }
        if peers.any_namespace {
            future.add(&rule.conn_to(Some(ports)));
        }
    }
    (
        (!every.is_empty()).then_some(every),
        (!future.is_empty()).then_some(future),
    )
}

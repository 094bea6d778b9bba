//! What the analysis reads from the objects: workloads (pods grouped by the
//! workload that owns them), namespaces and their labels, and
//! NetworkPolicies compiled into rules. Anything else is a note: Cilium
//! policies are not analysed, host-network workloads are outside
//! NetworkPolicy.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::ports::{Conn, MAX_PORT, Protocol};
use crate::cidr::{AddrSet, Cidr};
use crate::cluster::effective_policy_types;
use crate::cluster::meta;
use crate::selector::{Labels, Selector};
use crate::workload::{self, WorkloadKind};

/// Why the objects could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
}

fn invalid(what: impl Into<String>, why: impl std::fmt::Display) -> ModelError {
    ModelError::Invalid {
        what: what.into(),
        why: why.to_string(),
    }
}

/// A container port, with the name policies may refer to it by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

/// One workload: its pods are one node of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub namespace: String,
    pub name: String,
    pub kind: WorkloadKind,
    pub labels: Labels,
    pub ports: Vec<NamedPort>,
    pub host_network: bool,
}

impl Workload {
    /// `namespace/name[Kind]`, the analyzer's notation.
    pub fn id(&self) -> String {
        format!("{}/{}[{}]", self.namespace, self.name, self.kind.as_str())
    }
}

/// One `from` / `to` entry.
#[derive(Debug, Clone)]
pub enum Peer {
    /// Pods: `podSelector` and/or `namespaceSelector`. `namespaces: None`
    /// means the policy's own namespace.
    Pods {
        namespaces: Option<Selector>,
        pods: Selector,
    },
    /// Addresses outside the cluster: `ipBlock` minus its `except`.
    Addresses(AddrSet),
}

/// A port entry of a rule, named ports unresolved (they resolve against
/// the destination pod's container ports).
#[derive(Debug, Clone)]
pub enum PortSpec {
    Numbers(Protocol, u16, u16),
    Named(Protocol, String),
    /// Only a protocol: all its ports.
    Protocol(Protocol),
}

/// One ingress or egress rule: an empty `peers` list allows every source
/// or destination; an empty `ports` list every port.
#[derive(Debug, Clone)]
pub struct Rule {
    pub peers: Vec<Peer>,
    pub ports: Vec<PortSpec>,
}

impl Rule {
    /// The connection this rule allows to a pod with `ports` (named ports
    /// resolved there; `None`: an address outside the cluster, where a
    /// named port resolves to nothing).
    pub fn conn_to(&self, ports: Option<&[NamedPort]>) -> Conn {
        if self.ports.is_empty() {
            return Conn::all();
        }
        let mut c = Conn::none();
        for p in &self.ports {
            match p {
                PortSpec::Numbers(proto, from, to) => c.add(&Conn::range(*proto, *from, *to)),
                PortSpec::Protocol(proto) => c.add(&Conn::protocol(*proto)),
                PortSpec::Named(proto, name) => {
                    for cp in ports.unwrap_or_default() {
                        if cp.protocol == *proto && cp.name.as_deref() == Some(name.as_str()) {
                            c.add(&Conn::range(*proto, cp.port, cp.port));
                        }
                    }
                }
            }
        }
        c
    }

    /// Whether a port entry names a port (the result then depends on the
    /// destination).
    pub fn has_named_ports(&self) -> bool {
        self.ports.iter().any(|p| matches!(p, PortSpec::Named(..)))
    }
}

/// A NetworkPolicy, compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    pub namespace: String,
    pub name: String,
    pub selector: Selector,
    /// `Some` when the policy isolates ingress (its effective policyTypes
    /// hold Ingress), with the rules that allow it.
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

/// Everything the analysis reads.
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Workloads outside the host network, sorted by id.
    pub workloads: Vec<Workload>,
    /// Host-network workloads: shown, not analysed.
    pub host_network: Vec<Workload>,
    /// Namespace labels; a namespace only named by a workload or policy
    /// gets the label Kubernetes sets on every namespace.
    pub namespaces: BTreeMap<String, Labels>,
    pub policies: Vec<Policy>,
    /// What was read but not analysed, one line each.
    pub notes: Vec<String>,
}

const NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl Model {
    /// Reads workloads, namespaces and NetworkPolicies out of `objects`.
    /// Pods and ReplicaSets owned by a workload controller are that
    /// workload's pods, not nodes of their own.
    pub fn from_objects(objects: &[Value]) -> Result<Model, ModelError> {
        let mut m = Model::default();
        let mut seen = BTreeSet::new();
        for obj in objects {
            let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
            let group = api.rsplit_once('/').map_or("", |(g, _)| g);
            let name = meta::name(obj).unwrap_or("").to_string();
            let namespace = meta::namespace(obj).unwrap_or("default").to_string();
            match (group, kind) {
                ("", "Namespace") => {
                    let mut labels = meta::labels(obj);
                    labels.insert(NAME_LABEL.into(), name.clone());
                    m.namespaces.insert(name, labels);
                }
                ("networking.k8s.io", "NetworkPolicy") => {
                    let p = compile_policy(obj, &namespace, &name)?;
                    m.policies.push(p);
                }
                ("cilium.io", k) if k.starts_with("Cilium") && k.ends_with("NetworkPolicy") => {
                    let at = if k == "CiliumClusterwideNetworkPolicy" {
                        name.clone()
                    } else {
                        format!("{namespace}/{name}")
                    };
                    m.notes.push(format!(
                        "{k} {at}: not analysed (Cilium policies are not part of the map yet; the connections it allows or denies are not shown)"
                    ));
                }
                _ => {
                    let Some(wk) = WorkloadKind::from_group_kind(group, kind) else {
                        continue;
                    };
                    if workload::judged_at_owner(wk, obj, &[]) {
                        continue;
                    }
                    let w = workload_of(wk, obj, &namespace, &name)?;
                    if !seen.insert(w.id()) {
                        continue;
                    }
                    if w.host_network {
                        m.notes.push(format!(
                            "{}: hostNetwork: its pods use the node's network, where NetworkPolicy does not apply; they reach and are reached like the node, so the map shows no connection for them",
                            w.id()
                        ));
                        m.host_network.push(w);
                    } else {
                        m.workloads.push(w);
                    }
                }
            }
        }
        for ns in m
            .workloads
            .iter()
            .map(|w| &w.namespace)
            .chain(m.policies.iter().map(|p| &p.namespace))
        {
            if !m.namespaces.contains_key(ns) {
                let labels = Labels::from([(NAME_LABEL.to_string(), ns.clone())]);
                m.namespaces.insert(ns.clone(), labels);
            }
        }
        m.workloads.sort_by_key(Workload::id);
        m.host_network.sort_by_key(Workload::id);
        Ok(m)
    }
}

fn workload_of(
    kind: WorkloadKind,
    obj: &Value,
    namespace: &str,
    name: &str,
) -> Result<Workload, ModelError> {
    let what = || format!("{} {namespace}/{name}", kind.as_str());
    let shape = workload::pod_shape(kind, obj).map_err(|e| invalid(what(), e))?;
    let ports: BTreeSet<NamedPort> = shape
        .ports
        .iter()
        .filter_map(|p| {
            Some(NamedPort {
                name: p.name.clone(),
                port: u16::try_from(p.port).ok()?,
                protocol: Protocol::parse(Some(&p.protocol))?,
            })
        })
        .collect();
    // Labels the controller adds with values unknown in advance (a hash,
    // an ordinal) are left out: a selector can only use them through
    // Exists, which the analysis then does not see met (rare, and on the
    // safe side: fewer connections shown, never more).
    Ok(Workload {
        namespace: namespace.to_string(),
        name: workload::display_name(obj, Some(name)),
        kind,
        labels: shape.labels,
        ports: ports.into_iter().collect(),
        host_network: shape.host_network,
    })
}

fn compile_policy(obj: &Value, namespace: &str, name: &str) -> Result<Policy, ModelError> {
    let what = format!("NetworkPolicy {namespace}/{name}");
    let spec = obj.get("spec");
    let selector = Selector::from_value(spec.and_then(|s| s.get("podSelector")))
        .map_err(|e| invalid(&what, format!("podSelector: {e}")))?;
    let (ingress_type, egress_type) = effective_policy_types(spec);
    let rules = |key: &str, peers_key: &str| -> Result<Vec<Rule>, ModelError> {
        let mut out = Vec::new();
        for (i, r) in spec
            .and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{what}: {key}[{i}]");
            out.push(compile_rule(r, peers_key, &at)?);
        }
        Ok(out)
    };
    Ok(Policy {
        namespace: namespace.to_string(),
        name: name.to_string(),
        selector,
        ingress: if ingress_type {
            Some(rules("ingress", "from")?)
        } else {
            None
        },
        egress: if egress_type {
            Some(rules("egress", "to")?)
        } else {
            None
        },
    })
}

fn compile_rule(r: &Value, peers_key: &str, at: &str) -> Result<Rule, ModelError> {
    let mut peers = Vec::new();
    for (j, p) in r
        .get(peers_key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{at}.{peers_key}[{j}]");
        if let Some(block) = p.get("ipBlock") {
            let cidr = parse_cidr(block.get("cidr"), &at)?;
            let mut except = Vec::new();
            for e in block
                .get("except")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                except.push(parse_cidr(Some(e), &at)?);
            }
            peers.push(Peer::Addresses(AddrSet::block_except(&cidr, &except)));
            continue;
        }
        let ns = p.get("namespaceSelector");
        let pods = p.get("podSelector");
        if ns.is_none() && pods.is_none() {
            return Err(invalid(
                at,
                "a peer needs podSelector, namespaceSelector or ipBlock",
            ));
        }
        let namespaces = match ns {
            Some(v) => Some(
                Selector::from_value(Some(v))
                    .map_err(|e| invalid(&at, format!("namespaceSelector: {e}")))?,
            ),
            None => None,
        };
        let pods =
            Selector::from_value(pods).map_err(|e| invalid(&at, format!("podSelector: {e}")))?;
        peers.push(Peer::Pods { namespaces, pods });
    }
    let mut ports = Vec::new();
    for (j, p) in r
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{at}.ports[{j}]");
        let protocol = Protocol::parse(p.get("protocol").and_then(Value::as_str))
            .ok_or_else(|| invalid(&at, "protocol must be TCP, UDP or SCTP"))?;
        let end = p.get("endPort").and_then(Value::as_u64);
        ports.push(match p.get("port") {
            None | Some(Value::Null) => PortSpec::Protocol(protocol),
            Some(Value::String(name)) => match name.parse::<u16>() {
                Ok(n) => numbers(protocol, u64::from(n), end, &at)?,
                Err(_) => PortSpec::Named(protocol, name.clone()),
            },
            Some(v) => match v.as_u64() {
                Some(n) => numbers(protocol, n, end, &at)?,
                None => return Err(invalid(at, "port must be a number or a name")),
            },
        });
    }
    Ok(Rule { peers, ports })
}

fn numbers(
    protocol: Protocol,
    port: u64,
    end: Option<u64>,
    at: &str,
) -> Result<PortSpec, ModelError> {
    let in_range = |n: u64| (1..=u64::from(MAX_PORT)).contains(&n);
    if !in_range(port) || end.is_some_and(|e| !in_range(e) || e < port) {
        return Err(invalid(
            at,
            "ports are 1-65535, and endPort is at least port",
        ));
    }
    let from = u16::try_from(port).unwrap_or(MAX_PORT);
    let to = end.map_or(from, |e| u16::try_from(e).unwrap_or(MAX_PORT));
    Ok(PortSpec::Numbers(protocol, from, to))
}

fn parse_cidr(v: Option<&Value>, at: &str) -> Result<Cidr, ModelError> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(at, "ipBlock needs a cidr"))?;
    s.parse::<Cidr>().map_err(|e| invalid(at, e))
}

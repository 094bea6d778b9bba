//! What a change to the policies (or workloads) does to the map: each
//! connection added, removed or changed, and workloads that appeared or
//! disappeared. Connections are matched by their endpoints' labels, so an
//! external range that a new `except` splits shows as the old range
//! removed and the new ranges added.

use std::collections::{BTreeMap, BTreeSet};

use super::analysis::{Connectivity, Node};
use super::ports::Conn;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added {
        src: Node,
        dst: Node,
        new: Conn,
    },
    Removed {
        src: Node,
        dst: Node,
        old: Conn,
    },
    Changed {
        src: Node,
        dst: Node,
        old: Conn,
        new: Conn,
    },
    WorkloadAdded(Node),
    WorkloadRemoved(Node),
}

impl Change {
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Added { .. } => "added",
            Change::Removed { .. } => "removed",
            Change::Changed { .. } => "changed",
            Change::WorkloadAdded(_) => "workload-added",
            Change::WorkloadRemoved(_) => "workload-removed",
        }
    }

    /// Whether it lets more traffic through than before: a new
    /// connection, or a changed one with some protocol or port it did not
    /// have.
    pub fn opens(&self) -> bool {
        match self {
            Change::Added { .. } => true,
            Change::Changed { old, new, .. } => new.intersect(old) != *new,
            _ => false,
        }
    }

    /// (source, destination, old, new) as printed; workloads have no
    /// destination and no connections.
    pub fn fields(&self) -> (String, String, String, String) {
        let none = || Conn::none().to_string();
        match self {
            Change::Added { src, dst, new } => (src.label(), dst.label(), none(), new.to_string()),
            Change::Removed { src, dst, old } => {
                (src.label(), dst.label(), old.to_string(), none())
            }
            Change::Changed { src, dst, old, new } => {
                (src.label(), dst.label(), old.to_string(), new.to_string())
            }
            Change::WorkloadAdded(n) | Change::WorkloadRemoved(n) => {
                (n.label(), String::new(), String::new(), String::new())
            }
        }
    }

    /// One txt line.
    pub fn line(&self) -> String {
        let (src, dst, old, new) = self.fields();
        match self {
            Change::Added { .. } => format!("added: {src} => {dst} : {new}"),
            Change::Removed { .. } => format!("removed: {src} => {dst} : {old}"),
            Change::Changed { .. } => format!("changed: {src} => {dst} : {old} -> {new}"),
            Change::WorkloadAdded(_) => format!("workload-added: {src}"),
            Change::WorkloadRemoved(_) => format!("workload-removed: {src}"),
        }
    }
}

/// Every difference from `old` to `new`: connections first (sorted by
/// source then destination), then workloads.
pub fn diff(old: &Connectivity, new: &Connectivity) -> Vec<Change> {
    let key = |c: &super::Connection| (c.src.label(), c.dst.label());
    let before: BTreeMap<_, _> = old.connections.iter().map(|c| (key(c), c)).collect();
    let after: BTreeMap<_, _> = new.connections.iter().map(|c| (key(c), c)).collect();
    let mut changes = Vec::new();
    let mut keys: Vec<&(String, String)> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (before.get(k), after.get(k)) {
            (Some(o), Some(n)) if o.conn != n.conn => changes.push(Change::Changed {
                src: n.src.clone(),
                dst: n.dst.clone(),
                old: o.conn.clone(),
                new: n.conn.clone(),
            }),
            (Some(o), None) => changes.push(Change::Removed {
                src: o.src.clone(),
                dst: o.dst.clone(),
                old: o.conn.clone(),
            }),
            (None, Some(n)) => changes.push(Change::Added {
                src: n.src.clone(),
                dst: n.dst.clone(),
                new: n.conn.clone(),
            }),
            _ => {}
        }
    }
    let nodes = |c: &Connectivity| -> BTreeSet<Node> {
        c.workloads.iter().chain(&c.host_network).cloned().collect()
    };
    let (was, is) = (nodes(old), nodes(new));
    let mut appeared: Vec<&Node> = is.difference(&was).collect();
    appeared.sort_by_key(|n| n.label());
    let mut gone: Vec<&Node> = was.difference(&is).collect();
    gone.sort_by_key(|n| n.label());
    changes.extend(appeared.into_iter().cloned().map(Change::WorkloadAdded));
    changes.extend(gone.into_iter().cloned().map(Change::WorkloadRemoved));
    changes
}

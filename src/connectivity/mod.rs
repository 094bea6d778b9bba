//! The connectivity map: every connection the NetworkPolicies of a set of
//! objects allow between workloads and addresses outside the cluster
//! (`netpol-guard connectivity`), and what changes between two sets
//! (`netpol-guard diff`). Pure: objects in, a map out. The semantics and
//! formats follow the netpol-analyzer (np-guard) `list` and `diff`
//! commands, so the two can be compared line by line.

pub mod analysis;
pub mod diff;
pub mod model;
pub mod ports;
pub mod render;

pub use analysis::{Connection, Connectivity, Exposure, Node, analyse};
pub use diff::Change;
pub use model::{Model, ModelError};
pub use ports::{Conn, Protocol};

/// Reads the objects and computes their map.
pub fn map(objects: &[serde_json::Value]) -> Result<Connectivity, ModelError> {
    Ok(analyse(&Model::from_objects(objects)?))
}

#[cfg(test)]
mod tests;

//! Generation: what netpol-guard writes into the cluster. The baseline of
//! every managed namespace (`generator`, one leader at a time by `leader`,
//! knowing what it generated from a watch, `generated`; `access` warns when RBAC keeps it from writing a configured extra
//! policy), and the managed label it puts on new namespaces (`mutation`).

pub mod access;
pub mod generated;
pub mod generator;
pub mod leader;
pub mod mutation;

//! Generation: what netpol-guard writes into the cluster. The baseline of
//! every managed namespace (`generator`, one leader at a time by `leader`),
//! and the managed label it puts on
//! new namespaces (`mutation`).

pub mod generator;
pub mod leader;
pub mod mutation;

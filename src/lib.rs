//! netpol-guard: a Kubernetes admission webhook that keeps managed namespaces
//! segmented by NetworkPolicy and rejects dangerous policies.
//!
//! The decision engine (`engine`, with `selector`, `workload`, `cluster`,
//! `rules`, `config`) is pure; `server`, `manifests`, `tls` and `check` are the
//! I/O around it.

pub mod admission;
pub mod apierror;
pub mod audit;
pub mod baseline;
pub mod certs;
pub mod check;
pub mod cidr;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod events;
pub mod generator;
pub mod inventory;
pub mod leader;
pub mod live;
pub mod manifests;
pub mod metrics;
pub mod mutation;
pub mod policyreport;
pub mod reload;
pub mod reporter;
pub mod rules;
pub mod sarif;
pub mod selector;
pub mod server;
pub mod summary;
pub mod tls;
pub mod workload;

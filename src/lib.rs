//! netpol-guard: a Kubernetes admission webhook that keeps managed namespaces
//! segmented by NetworkPolicy and rejects dangerous policies.
//!
//! The pure core judges: `engine` (one admission request, a read-only
//! `cluster::ClusterView` and the settings in, a verdict out), with
//! `admission`, `rules`, `selector`, `workload`, `cidr`, `baseline`, `cni`
//! (which network plugin runs, and whether it enforces NetworkPolicy) and
//! the shared `vocab`. Around it, the I/O: `config` (load, reload), `cluster`
//! (watches, lists, manifests), `webhook` (HTTP/TLS, state, read-after-write),
//! `generate` (the baseline, leader election, Events), `report` (check,
//! audit, SARIF, PolicyReports) and `certs` (the installer's CA, serving
//! certificate and manifests; `x509` reads certificates for it and for the
//! server). The command line is the binary's (`src/cli/`). ARCHITECTURE.md
//! has the map.

pub mod admission;
pub mod baseline;
pub mod certs;
pub mod cidr;
pub mod cluster;
pub mod cni;
pub mod config;
pub mod connectivity;
pub mod engine;
pub mod generate;
pub mod logging;
pub mod metrics;
pub mod report;
pub mod rules;
pub mod selector;
pub mod text;
pub mod vocab;
pub mod webhook;
pub mod workload;
pub mod x509;

pub use cluster::manifests;

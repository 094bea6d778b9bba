//! Reports: judging objects that already exist and telling people about it.
//! `check` (manifests) and `audit` (a cluster) judge, into the one `model`;
//! `render` prints either as text, JSON or SARIF (`sarif`, `summary`);
//! `policyreport` maps audits to PolicyReports and `reporter` keeps them
//! current in the background.

pub mod audit;
pub mod check;
pub mod model;
pub mod policyreport;
pub mod render;
pub mod reporter;
pub mod sarif;
pub mod summary;

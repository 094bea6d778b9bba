//! Reports: judging objects that already exist and telling people about it.
//! `check` (manifests) and `audit` (a cluster) judge; `sarif`, `summary`
//! and `policyreport` render; `reporter` keeps PolicyReports current in the
//! background.

pub mod audit;
pub mod check;
pub mod policyreport;
pub mod reporter;
pub mod sarif;
pub mod summary;

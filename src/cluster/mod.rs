//! The cluster as netpol-guard sees it: the read-only view the engine
//! judges against (`view`), the table of API kinds it reads (`kinds`), and
//! the I/O that fills it: watches of a live API server (`live`), one-off
//! lists for audits (`inventory`), manifest files (`manifests`), and the
//! description of API errors (`apierror`).

pub mod apierror;
pub mod events;
pub mod inventory;
pub mod kinds;
pub mod live;
pub mod manifests;
pub mod meta;
pub mod store;
mod view;

pub use view::*;

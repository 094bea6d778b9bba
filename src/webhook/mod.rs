//! The webhook: what kube-apiserver calls. `transport` accepts TLS
//! connections (HTTP/1.1 keep-alive, HTTP/2 behind a flag) and drains on
//! SIGTERM; `handlers` route admission, health, readiness and metrics;
//! `judge` applies the pure engine with the live reads it needs; `state`
//! is what every request shares. Nothing else in the crate imports this
//! module: the cluster, generate and report layers get their handles
//! (`ViewStore`, `SettingsStore`, `Metrics`) from `main`.

mod handlers;
mod judge;
mod state;
pub mod tls;
mod transport;

pub use handlers::{ops_router, router, to_response};
pub use state::{AppState, DEFAULT_MAX_BODY_BUFFER, DEFAULT_MAX_IN_FLIGHT};
pub use transport::{ConnLimits, DEFAULT_MAX_CONNECTIONS, serve, serve_plain, shutdown_signal};

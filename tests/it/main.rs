//! The integration tests: one test crate (issue 14). Each module was its own
//! crate under `tests/`, and each linked the whole library and its
//! dependencies; one crate links once. Run one module's tests with a filter:
//! `cargo test --test it drills::` (or `engine::`, `live::`, ...).
//!
//! Tests of every module share this process: libtest's thread pool (one
//! thread per core unless `--test-threads`), the environment and resource
//! limits. So no test sets environment variables (children get theirs
//! through `Command::envs`) or installs process-wide state such as a rustls
//! default CryptoProvider (clients build with an explicit provider);
//! `drills` raises the soft RLIMIT_NOFILE, which only ever grows. `drills`'
//! `SERIAL` lock runs the drills one at a time among themselves, not apart
//! from other modules' tests.

// Shared helpers.
mod common;
mod fake_apiserver;
mod schemas;

// One module per concern, as the files were before.
mod audit;
mod background_audit;
mod cert_rotation;
mod certs;
mod check_cli;
mod connectivity;
mod drills;
mod engine;
mod fake_apiserver_selftest;
mod fixtures;
mod generator;
mod isolation;
mod live;
mod manifests;
mod policyreport;
mod reload_and_audit;
mod robustness;
mod rules_config;
mod sarif;
mod server;

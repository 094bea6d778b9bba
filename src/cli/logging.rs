//! Logging set-up: the server's (levels changed by config, text or JSON on
//! the library's batched stderr writer) and the one-shot commands'.

use std::io::IsTerminal;
use std::sync::Arc;

use netpol_guard::config::reload::LogLevelHook;

use super::LogFormat;

/// Sets up logging; returns a hook that changes the level from config, or
/// `None` when NETPOL_GUARD_LOG fixes it.
pub fn init_logging(format: Option<LogFormat>) -> Option<LogLevelHook> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, fmt, reload};
    // rustls logs a warning per handshake for clients that send an IP address
    // as SNI (curl, wrk on 127.0.0.1); keep its noise out by default.
    let from_env = EnvFilter::try_from_env("NETPOL_GUARD_LOG").ok();
    let fixed = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new("info,rustls=error"));
    let (filter, handle) = reload::Layer::new(filter);
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    // Standard error, written in batches off the request path (one write(2)
    // per few milliseconds, not per decision), and flushed at exit.
    let stderr = netpol_guard::logging::BufferedStderr::get();
    tracing_subscriber::registry()
        .with(filter)
        .with(json.then(|| fmt::layer().json().flatten_event(true).with_writer(stderr)))
        .with((!json).then(|| fmt::layer().with_writer(stderr)))
        .init();
    if fixed {
        return None;
    }
    Some(Arc::new(move |level: &str| {
        match EnvFilter::try_new(format!("{level},rustls=error")) {
            Ok(f) => {
                if let Err(e) = handle.reload(f) {
                    tracing::warn!(error = %e, "cannot change the log level");
                }
            }
            Err(e) => {
                tracing::warn!(level, error = %e, "logLevel is not a valid level or filter; keeping the current one")
            }
        }
    }))
}

/// Logging for the one-shot commands: warnings and errors only, as text on
/// stderr (stdout holds the report), unless NETPOL_GUARD_LOG says otherwise.
pub fn init_cli_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETPOL_GUARD_LOG")
        // kube-client logs each failed call; the command reports it itself.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("warn,rustls=error,kube_client=off")
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}

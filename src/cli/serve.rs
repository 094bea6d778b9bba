//! `netpol-guard serve`: the admission webhook over HTTPS, its certificate
//! reloads, the cluster view, the baseline generator and the background
//! audit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use netpol_guard::cluster::ClusterView;
use netpol_guard::cluster::live::LiveView;
use netpol_guard::config::Settings;
use netpol_guard::config::reload::{self, LogLevelHook};
use netpol_guard::manifests;
use netpol_guard::report::reporter;
use netpol_guard::webhook::tls::{CertPair, CertStore, CertWatch, ReloadOutcome};
use netpol_guard::webhook::{self, AppState};

use super::LogFormat;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    addr: SocketAddr,
    /// PEM certificate chain (with --tls-key); without both, an ephemeral
    /// self-signed certificate for localhost is generated.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (with --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How often the certificate and key files are re-read: a rotated pair
    /// (e.g. a renewed Secret) serves new connections without a restart.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    tls_reload_interval: std::time::Duration,
    /// Also serve /metrics, /healthz and /readyz over plain HTTP here (for
    /// Prometheus), e.g. 0.0.0.0:9090. Admission stays on --addr only.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Config file (YAML), re-read when it changes; without it the
    /// `--configmap` (with an API server) or the built-in defaults apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Manifests (file or directory) giving the cluster view offline:
    /// Namespaces, NetworkPolicies, Cilium policies. Without it the view
    /// comes from the API server (in-cluster or KUBECONFIG).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Write the certificate PEM here (useful with the self-signed one).
    #[arg(long)]
    write_ca: Option<PathBuf>,
    /// netpol-guard's own namespace (where its ConfigMap lives).
    #[arg(long, env = "POD_NAMESPACE", default_value = "netpol-guard")]
    namespace: String,
    /// Name of the ConfigMap holding config.yaml (without --config).
    #[arg(long, default_value = "netpol-guard")]
    configmap: String,
    /// Serve admission only: do not run the baseline generator (e.g. when
    /// baselines are managed elsewhere). Ignored with --state.
    #[arg(long)]
    no_baseline: bool,
    /// How long a client may take to send a request's headers (from the
    /// connection's start or its previous response; slowloris guard, also
    /// closes idle keep-alive connections), and then its body.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    header_read_timeout: std::time::Duration,
    /// How long a client may take to complete the TLS handshake.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: std::time::Duration,
    /// Admission requests (/validate, /mutate) judged at once; more get 503
    /// with Retry-After: 1 (counted in netpol_guard_shed_requests_total).
    /// /healthz, /readyz and /metrics are never shed.
    #[arg(long, default_value_t = webhook::DEFAULT_MAX_IN_FLIGHT, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_in_flight: usize,
    /// Open connections at once (TLS handshakes included); more are closed
    /// as they arrive (counted in netpol_guard_refused_connections_total).
    #[arg(long, default_value_t = webhook::DEFAULT_MAX_CONNECTIONS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: usize,
    /// Bytes of request bodies buffered at once, over all connections; a
    /// request whose body does not fit gets 503 before any of it is read.
    /// Bounds memory against many large, slow bodies.
    #[arg(long, default_value_t = webhook::DEFAULT_MAX_BODY_BUFFER, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_body_buffer: usize,
    /// Offer HTTP/2 (ALPN h2) besides HTTP/1.1; `--http2=false` serves
    /// HTTP/1.1 only. kube-apiserver speaks HTTP/2 to a webhook that offers
    /// it: one multiplexed connection instead of one per concurrent call
    /// (benches/apiserver measured 1 connection against about 30, and the
    /// latency netpol-guard adds through the API server went from 4.2x a
    /// minimal webhook's to 1.4x).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set, value_name = "BOOL")]
    http2: bool,
    /// Require a client certificate signed by one of these CAs (PEM bundle)
    /// for /validate and /mutate: only the API server (given a client
    /// certificate through its AdmissionConfiguration kubeConfigFile) may
    /// call. /healthz, /readyz and /metrics stay open to probes.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
}

/// Sets up logging and serves until SIGTERM; exits 1 when it cannot start.
pub fn run(args: ServeArgs, log_format: Option<LogFormat>) -> ExitCode {
    let hook = super::logging::init_logging(log_format);
    match run_serve(args, hook) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("netpol-guard: {e}");
            ExitCode::from(1)
        }
    }
}

/// `500ms`, `5s`, `2m`: a number and a unit.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("{s:?}: add a unit (ms, s or m)"))?;
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: not a duration like 500ms, 5s, 2m"))?;
    let d = match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s or m)")),
    };
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok(d)
}

fn load_state(path: &PathBuf) -> Result<ClusterView, String> {
    // Object by object: the parsed manifests are never all in memory at once.
    let mut view = ClusterView::new();
    manifests::for_each_object(std::slice::from_ref(path), |o| {
        view.add(&o.object)
            .map(|_| ())
            .map_err(|e| manifests::ManifestError::at(&o, e))
    })
    .map_err(|e| e.to_string())?;
    Ok(view)
}

/// Raises the soft limit on open files to the hard limit: every connection
/// is a descriptor, and the usual soft default of 1024 is few for a webhook
/// the whole cluster calls.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let shown = |l: Option<u64>| l.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    let before = getrlimit(Resource::Nofile);
    // An unlimited hard limit is not a valid soft limit for open files.
    let target = before.maximum.unwrap_or(1 << 20);
    if before.current.is_some_and(|soft| soft < target) {
        let raised = Rlimit {
            current: Some(target),
            maximum: before.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(soft = %shown(before.current), hard = %shown(before.maximum), error = %e, "cannot raise the open files limit (RLIMIT_NOFILE)");
            return;
        }
    }
    let now = getrlimit(Resource::Nofile);
    tracing::info!(soft = %shown(now.current), hard = %shown(now.maximum), "open files limit (RLIMIT_NOFILE)");
}

fn run_serve(o: ServeArgs, hook: Option<LogLevelHook>) -> Result<(), String> {
    raise_open_files_limit();
    let client_roots = match &o.client_ca {
        Some(path) => Some(
            netpol_guard::webhook::tls::client_roots(path)
                .map_err(|e| format!("--client-ca: {e}"))?,
        ),
        None => None,
    };
    let limits = webhook::ConnLimits {
        handshake_timeout: o.handshake_timeout,
        header_read_timeout: o.header_read_timeout,
        max_connections: o.max_connections,
        require_client_cert: client_roots.is_some(),
    };
    // The config file is read once here so a bad file stops start-up.
    let config_text = match &o.config {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let settings = match &config_text {
        Some(text) => Settings::from_yaml(text).map_err(|e| {
            format!(
                "{}: {e}",
                o.config
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        })?,
        None => Settings::default(),
    };
    if let Some(h) = &hook {
        h(&settings.config.log_level);
    }
    for warning in settings.warnings() {
        tracing::warn!("{warning}");
    }
    let view = match &o.state {
        Some(path) => {
            let view = load_state(path)?;
            tracing::info!(
                namespaces = view.namespace_count(),
                policies = view.policy_count(),
                state = %path.display(),
                "cluster view loaded from manifests"
            );
            view
        }
        None => ClusterView::new(),
    };
    let cert_files = o.tls_cert.clone().zip(o.tls_key.clone());
    let (pair, pem) = match &cert_files {
        Some((c, k)) => (CertPair::from_files(c, k).map_err(|e| e.to_string())?, None),
        _ => {
            let (pair, pem) = CertPair::self_signed().map_err(|e| e.to_string())?;
            tracing::warn!(
                "no --tls-cert/--tls-key: serving an ephemeral self-signed certificate for localhost and 127.0.0.1 (development only)"
            );
            (pair, Some(pem))
        }
    };
    if let Some(path) = o.write_ca {
        let Some(pem) = pem else {
            return Err("--write-ca only applies to the generated self-signed certificate".into());
        };
        std::fs::write(&path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let store = CertStore::new(pair).map_err(|e| e.to_string())?;
    let tls = store
        .server_config(o.http2, client_roots)
        .map_err(|e| e.to_string())?;
    let app_state = AppState::new(settings, view);
    app_state.set_cert_store(store.clone());
    app_state.set_max_in_flight(o.max_in_flight);
    app_state.set_max_body_buffer(o.max_body_buffer);
    app_state.set_body_read_timeout(o.header_read_timeout);
    let app = webhook::router(app_state.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(o.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", o.addr))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        if let Some((cert, key)) = cert_files {
            let state = app_state.clone();
            CertWatch::new(store, cert, key).spawn(o.tls_reload_interval, move |outcome| {
                match outcome {
                    ReloadOutcome::Applied => {
                        tracing::info!("TLS certificate reloaded: new connections use the new pair");
                        state.metrics.inc("netpol_guard_tls_reloads_total", &[("result", "applied")]);
                    }
                    ReloadOutcome::Rejected(e) => {
                        tracing::error!(error = %e, "TLS certificate files changed but the new pair is unusable; still serving the previous one");
                        state.metrics.inc("netpol_guard_tls_reloads_total", &[("result", "invalid")]);
                    }
                }
            });
        }
        if let Some(addr) = o.metrics_addr {
            let plain = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr} (--metrics-addr): {e}"))?;
            let metrics_local = plain.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(metrics_addr = %metrics_local, "metrics listening (plain HTTP: /metrics, /healthz, /readyz)");
            tokio::spawn(webhook::serve_plain(plain, webhook::ops_router(app_state.clone()), limits, webhook::shutdown_signal()));
        }
        match (&o.config, config_text) {
            (Some(path), Some(text)) => {
                app_state.settings_store().set_ready(true);
                reload::spawn_file_watch(path.clone(), text, app_state.settings_store(), app_state.metrics.clone(), hook.clone());
            }
            _ if o.state.is_some() => app_state.settings_store().set_ready(true),
            _ => {}
        }
        if o.state.is_some() {
            if let Some(writer) = app_state.take_view_writer() {
                writer.set_ready();
            }
        } else {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| format!("no --state and no usable kubeconfig or in-cluster service account: {e}"))?;
            if o.config.is_none() {
                reload::spawn_configmap_watch(client.clone(), o.namespace.clone(), o.configmap.clone(), app_state.settings_store(), app_state.metrics.clone(), hook.clone());
            }
            let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
                let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
                format!("{}-{}", host.trim(), std::process::id())
            });
            let election = netpol_guard::generate::leader::spawn(client.clone(), &o.namespace, "netpol-guard", identity);
            let leadership = election.leadership();
            // On SIGTERM the Lease is given up at once, while admission
            // drains, so another replica leads within a second or two.
            tokio::spawn(async move {
                webhook::shutdown_signal().await;
                election.release().await;
            });
            if o.no_baseline {
                tracing::info!("--no-baseline: the baseline generator is off");
            } else {
                let shared = netpol_guard::generate::generator::Shared {
                    settings: app_state.settings_store(),
                    view: app_state.view_store(),
                    metrics: app_state.metrics.clone(),
                };
                netpol_guard::generate::generator::spawn(client.clone(), shared, leadership.clone());
            }
            // The background audit keeps PolicyReports current (leader only).
            let shared = reporter::Shared { settings: app_state.settings_store(), metrics: app_state.metrics.clone() };
            reporter::spawn(client.clone(), shared, leadership);
            let writer = app_state
                .take_view_writer()
                .ok_or_else(|| "the cluster view's writer was already taken".to_string())?;
            let live = LiveView::new(client, writer, app_state.settings_store(), app_state.metrics.clone());
            app_state.set_live_reader(live.reader());
            live.spawn();
            tracing::info!("building the cluster view from the API server; /readyz turns 200 once synced");
        }
        tracing::info!(
            handshake_timeout_ms = u64::try_from(limits.handshake_timeout.as_millis()).unwrap_or(u64::MAX),
            header_read_timeout_ms = u64::try_from(limits.header_read_timeout.as_millis()).unwrap_or(u64::MAX),
            max_in_flight = o.max_in_flight,
            max_connections = o.max_connections,
            max_body_buffer = o.max_body_buffer,
            http2 = o.http2,
            client_ca = o.client_ca.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            "connection limits"
        );
        tracing::info!(addr = %local, "netpol-guard listening (HTTPS: /validate, /mutate, /healthz, /readyz, /metrics)");
        webhook::serve(listener, tls, app, limits, webhook::shutdown_signal()).await;
        Ok::<(), String>(())
    })?;
    tracing::info!("netpol-guard stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations_have_a_unit_and_are_more_than_zero() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for (bad, why) in [
            ("5", "add a unit"),
            ("s", "not a duration"),
            ("5h", "unknown unit"),
            ("0s", "must be more than zero"),
            ("0ms", "must be more than zero"),
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}

//! The `netpol-guard` command line: `serve`, `check`, `config`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use netpol_guard::cluster::ClusterView;
use netpol_guard::cluster::live::LiveView;
use netpol_guard::config::reload::{self, LogLevelHook};
use netpol_guard::config::{DEFAULT_CONFIG_YAML, Settings};
use netpol_guard::manifests;
use netpol_guard::report::audit;
use netpol_guard::report::check;
use netpol_guard::report::model::ExitCode as Exit;
use netpol_guard::report::render::{self, Format, Report};
use netpol_guard::report::reporter;
use netpol_guard::report::summary::{ColorChoice, Paint};
use netpol_guard::webhook::tls::{CertPair, CertStore, CertWatch, ReloadOutcome};
use netpol_guard::webhook::{self, AppState};

/// The process's allocator. glibc's malloc made up a quarter of the
/// instructions per admission request (parsing builds and drops a tree of
/// a few hundred small maps and strings per object) and, with two runtime
/// workers allocating and freeing each other's memory, contended on its
/// arena locks (a futex call per request); mimalloc's thread-local free
/// lists do neither (docs/benchmarks.md, "Throughput work"). Not under
/// `cargo fuzz` (`cfg(fuzzing)`), where AddressSanitizer must see every
/// allocation.
#[cfg(not(fuzzing))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "netpol-guard",
    version,
    about = "Kubernetes admission webhook that keeps namespaces segmented by NetworkPolicy"
)]
struct Cli {
    /// Log format (default: text on a terminal, json otherwise).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Text,
    Json,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}

impl From<Output> for Format {
    fn from(o: Output) -> Self {
        match o {
            Output::Text => Format::Text,
            Output::Json => Format::Json,
            Output::Sarif => Format::Sarif,
        }
    }
}

// `--color` (the library's `ColorChoice`, which knows nothing of clap).
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Color {
    Auto,
    Always,
    Never,
}

impl From<Color> for ColorChoice {
    fn from(c: Color) -> Self {
        match c {
            Color::Auto => ColorChoice::Auto,
            Color::Always => ColorChoice::Always,
            Color::Never => ColorChoice::Never,
        }
    }
}

/// Prints a report of `check` or `audit` as `output`; `Err` is a line for
/// standard error (the command exits 2).
fn print_report(report: &impl Report, output: Output, color: Color) -> Result<(), String> {
    render::print(
        report,
        output.into(),
        Paint::for_stdout(ColorChoice::from(color)),
    )
    .map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum Command {
    /// Run the admission webhook over HTTPS.
    Serve(ServeArgs),
    /// Judge manifests offline, as if each object were created now.
    Check {
        /// Config file (YAML); the built-in defaults apply without it.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Namespace for objects that do not name one (as kubectl apply).
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Colour the text output: auto (only on a terminal, not with
        /// NO_COLOR), always, never.
        #[arg(long, value_enum, default_value = "auto")]
        color: Color,
        /// Files or directories of YAML/JSON manifests.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Audit a live cluster (KUBECONFIG or in-cluster) before enforcing:
    /// namespaces without NetworkPolicies, workloads no policy covers (what
    /// require-network-policy would deny if they were created now), and
    /// every policy a rule flags. Same engine and exit codes as `check`.
    Audit(AuditArgs),
    /// Write a CA, a serving certificate for the webhook Service, its TLS
    /// Secret and a kustomization that installs them with manifests/.
    Certs(netpol_guard::certs::CertsArgs),
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
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
    /// Also offer HTTP/2 (ALPN h2). kube-apiserver calls webhooks over
    /// HTTP/1.1, so it is off unless a client needs it.
    #[arg(long)]
    http2: bool,
    /// Require a client certificate signed by one of these CAs (PEM bundle)
    /// for /validate and /mutate: only the API server (given a client
    /// certificate through its AdmissionConfiguration kubeConfigFile) may
    /// call. /healthz, /readyz and /metrics stay open to probes.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
}

#[derive(clap::Args)]
struct AuditArgs {
    /// Only this namespace.
    #[arg(long, short = 'n', conflicts_with = "selector")]
    namespace: Option<String>,
    /// Only namespaces whose labels match this selector (kubectl syntax,
    /// e.g. `team=payments,env!=dev`). Cluster-scoped findings are left out.
    #[arg(long, short = 'l')]
    selector: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Config file (YAML). Without it, the config the webhook uses: the
    /// `--configmap` ConfigMap in `--config-namespace`, else the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Namespace of netpol-guard's ConfigMap.
    #[arg(long, default_value = "netpol-guard")]
    config_namespace: String,
    /// Name of netpol-guard's ConfigMap.
    #[arg(long, default_value = "netpol-guard")]
    configmap: String,
    /// Also write the results as PolicyReports (wgpolicyk8s.io/v1alpha2):
    /// one per audited namespace, and a ClusterPolicyReport for a whole-cluster
    /// audit.
    #[arg(long)]
    write_reports: bool,
    /// Colour the text output: auto (only on a terminal, not with NO_COLOR),
    /// always, never.
    #[arg(long, value_enum, default_value = "auto")]
    color: Color,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    context: Option<String>,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a config file offline; exit 1 with the error if it is invalid.
    Validate { file: PathBuf },
    /// Print the documented default configuration.
    Default,
}

/// Sets up logging; returns a hook that changes the level from config, or
/// `None` when NETPOL_GUARD_LOG fixes it.
fn init_logging(format: Option<LogFormat>) -> Option<LogLevelHook> {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            print!("{DEFAULT_CONFIG_YAML}");
            ExitCode::SUCCESS
        }
        Command::Config {
            command: ConfigCommand::Validate { file },
        } => match Settings::from_file(&file) {
            Ok(_) => {
                println!("{}: valid", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::from(1)
            }
        },
        Command::Check {
            config,
            output,
            namespace,
            color,
            paths,
        } => {
            let settings = match load_settings(config.as_ref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return Exit::Unreadable.into();
                }
            };
            match check::check_paths(&paths, &settings, &namespace) {
                Ok(report) => match print_report(&report, output, color) {
                    Ok(()) => report.exit_code().into(),
                    Err(e) => {
                        eprintln!("error: {e}");
                        Exit::Unreadable.into()
                    }
                },
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::Unreadable.into()
                }
            }
        }
        Command::Audit(args) => {
            init_cli_logging();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("netpol-guard audit: cannot start the runtime: {e}");
                    return Exit::Unreadable.into();
                }
            };
            match runtime.block_on(run_audit(args)) {
                Ok(code) => code.into(),
                Err(e) => {
                    eprintln!("netpol-guard audit: {e}");
                    Exit::Unreadable.into()
                }
            }
        }
        Command::Certs(args) => match netpol_guard::certs::run(&args) {
            Ok(summary) => {
                print!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("netpol-guard certs: {e}");
                ExitCode::from(1)
            }
        },
        Command::Serve(args) => {
            let hook = init_logging(cli.log_format);
            match run_serve(args, hook) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("netpol-guard: {e}");
                    ExitCode::from(1)
                }
            }
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

/// Logging for the one-shot commands: warnings and errors only, as text on
/// stderr (stdout holds the report), unless NETPOL_GUARD_LOG says otherwise.
fn init_cli_logging() {
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

/// A client from `--kubeconfig`/`--context`, else the usual inference
/// (KUBECONFIG, ~/.kube/config, in-cluster).
async fn audit_client(args: &AuditArgs) -> Result<kube::Client, String> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| e.to_string())?,
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| format!("no usable kubeconfig or in-cluster service account: {e}"))?,
    };
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// The config `audit` judges with: `--config`, else the webhook's
/// ConfigMap, else (the ConfigMap does not exist) the built-in defaults,
/// said on stderr.
async fn audit_settings(args: &AuditArgs, client: &kube::Client) -> Result<Settings, String> {
    use k8s_openapi::api::core::v1::ConfigMap;
    if let Some(path) = &args.config {
        return load_settings(Some(path));
    }
    let source = format!("ConfigMap {}/{}", args.config_namespace, args.configmap);
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &args.config_namespace);
    let text = match api.get_opt(&args.configmap).await {
        Ok(Some(cm)) => cm
            .data
            .and_then(|mut d| d.remove(reload::CONFIG_KEY))
            .ok_or_else(|| format!("{source} has no {} key", reload::CONFIG_KEY))?,
        Ok(None) => {
            eprintln!("note: {source} not found: judging with the built-in defaults");
            return Ok(Settings::default());
        }
        // Forbidden, unreachable, ...: the defaults could judge every
        // namespace differently from the webhook (and --write-reports would
        // publish that), so stop and say how to go on.
        Err(e) => {
            return Err(format!(
                "cannot read {source} ({}): pass --config FILE (netpol-guard config default prints the defaults)",
                netpol_guard::cluster::apierror::describe(&e)
            ));
        }
    };
    Settings::from_yaml(&text).map_err(|e| format!("{source}: {e}"))
}

/// `netpol-guard audit`: read, judge, print, and optionally write reports.
async fn run_audit(args: AuditArgs) -> Result<Exit, String> {
    use netpol_guard::cluster::inventory::{self, Progress};
    let client = audit_client(&args).await?;
    let settings = audit_settings(&args, &client).await?;
    let scope = inventory::Scope {
        namespace: args.namespace.clone(),
        selector: args.selector.clone(),
    };
    let live = std::io::stderr().is_terminal();
    let mut progress = |p: Progress| match p {
        Progress::Reading { resource, count } if live => {
            eprint!("\r\x1b[Kaudit: reading {resource}... {count}");
        }
        Progress::Reading { .. } => {}
        Progress::Done { resource, count } => {
            let what = count.map_or("not installed, skipped".to_string(), |n| n.to_string());
            if live {
                eprint!("\r\x1b[Kaudit: {resource}: {what}");
            } else {
                eprintln!("audit: {resource}: {what}");
            }
        }
        // Its own line even on a terminal: it must not be overwritten.
        Progress::Skipped { resource, reason } => {
            let lead = if live { "\r\x1b[K" } else { "" };
            eprintln!("{lead}audit: {resource}: cannot be listed, skipped ({reason})");
        }
    };
    let inventory = inventory::fetch(&client, &scope, &mut progress)
        .await
        .map_err(|e| e.to_string())?;
    if live {
        eprintln!();
    }
    if !inventory.skipped.is_empty() {
        let kinds: Vec<&str> = inventory.skipped.iter().map(|s| s.resource).collect();
        eprintln!(
            "warning: {} kind(s) could not be listed and were not judged: {}",
            kinds.len(),
            kinds.join(", ")
        );
    }
    let objects = inventory.objects;
    let mut report = audit::audit(&objects, &settings);
    let scoped = scope.namespace.is_some() || scope.selector.is_some();
    if scoped {
        // Cluster-scoped policies cover every namespace: judged in a
        // whole-cluster audit, not attributed to a part of it.
        report.cluster_findings.clear();
    }
    print_report(&report, args.output, args.color)?;
    if args.write_reports {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        match reporter::write(&client, &report, !scoped, now).await {
            Ok(outcome) => eprintln!("{}", reporter::describe(&outcome)),
            Err(e) => {
                eprintln!("error: cannot write PolicyReports: {e}");
                return Ok(Exit::Unreadable);
            }
        }
    }
    Ok(report.exit_code())
}

fn load_settings(path: Option<&PathBuf>) -> Result<Settings, String> {
    match path {
        Some(p) => Settings::from_file(p).map_err(|e| format!("{}: {e}", p.display())),
        None => Ok(Settings::default()),
    }
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

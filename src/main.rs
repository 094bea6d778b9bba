//! The `netpol-guard` command line: `serve`, `check`, `config`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use netpol_guard::check::{self, EXIT_UNREADABLE};
use netpol_guard::cluster::ClusterView;
use netpol_guard::config::{DEFAULT_CONFIG_YAML, Settings};
use netpol_guard::manifests;
use netpol_guard::server::{self, AppState};
use netpol_guard::tls::CertPair;

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
}

#[derive(Subcommand)]
enum Command {
    /// Run the admission webhook over HTTPS.
    Serve {
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
        /// Config file (YAML); the built-in defaults apply without it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Manifests (file or directory) giving the cluster view offline:
        /// Namespaces, NetworkPolicies, Cilium policies.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Write the certificate PEM here (useful with the self-signed one).
        #[arg(long)]
        write_ca: Option<PathBuf>,
    },
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
        /// Files or directories of YAML/JSON manifests.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a config file offline; exit 1 with the error if it is invalid.
    Validate { file: PathBuf },
    /// Print the documented default configuration.
    Default,
}

fn init_logging(format: Option<LogFormat>) {
    // rustls logs a warning per handshake for clients that send an IP address
    // as SNI (curl, wrk on 127.0.0.1); keep its noise out by default.
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETPOL_GUARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
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
            paths,
        } => {
            let settings = match load_settings(config.as_ref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_UNREADABLE as u8);
                }
            };
            match check::check_paths(&paths, &settings, &namespace) {
                Ok(report) => {
                    match output {
                        Output::Text => print!("{}", report.to_text()),
                        Output::Json => match serde_json::to_string_pretty(&report) {
                            Ok(j) => println!("{j}"),
                            Err(e) => eprintln!("cannot render JSON: {e}"),
                        },
                    }
                    ExitCode::from(report.exit_code() as u8)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_UNREADABLE as u8)
                }
            }
        }
        Command::Serve {
            addr,
            tls_cert,
            tls_key,
            config,
            state,
            write_ca,
        } => {
            init_logging(cli.log_format);
            match run_serve(addr, tls_cert, tls_key, config, state, write_ca) {
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

fn load_settings(path: Option<&PathBuf>) -> Result<Settings, String> {
    match path {
        Some(p) => Settings::from_file(p).map_err(|e| format!("{}: {e}", p.display())),
        None => Ok(Settings::default()),
    }
}

fn load_state(path: &PathBuf) -> Result<ClusterView, String> {
    let objects = manifests::load_paths(std::slice::from_ref(path)).map_err(|e| e.to_string())?;
    let mut view = ClusterView::new();
    for o in &objects {
        view.add(&o.object)
            .map_err(|e| format!("{}:{}: {e}", o.file.display(), o.line))?;
    }
    Ok(view)
}

fn run_serve(
    addr: SocketAddr,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    config: Option<PathBuf>,
    state: Option<PathBuf>,
    write_ca: Option<PathBuf>,
) -> Result<(), String> {
    let settings = load_settings(config.as_ref())?;
    let Some(state) = state else {
        return Err(
            "--state PATH is required: the live cluster view from the API server is not built yet"
                .into(),
        );
    };
    let view = load_state(&state)?;
    tracing::info!(
        namespaces = view.namespace_count(),
        policies = view.policy_count(),
        state = %state.display(),
        "cluster view loaded from manifests"
    );
    let (pair, pem) = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => {
            let pair = CertPair::from_files(&c, &k).map_err(|e| e.to_string())?;
            (pair, None)
        }
        _ => {
            let (pair, pem) = CertPair::self_signed().map_err(|e| e.to_string())?;
            tracing::warn!(
                "no --tls-cert/--tls-key: serving an ephemeral self-signed certificate for localhost and 127.0.0.1 (development only)"
            );
            (pair, Some(pem))
        }
    };
    if let Some(path) = write_ca {
        let pem = match pem {
            Some(p) => p,
            None => {
                return Err(
                    "--write-ca only applies to the generated self-signed certificate".into(),
                );
            }
        };
        std::fs::write(&path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let tls = pair.server_config().map_err(|e| e.to_string())?;
    let app_state = AppState::new(settings, view);
    let app = server::router(app_state.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        app_state.set_ready(true);
        tracing::info!(addr = %local, "netpol-guard listening (HTTPS: /validate, /mutate, /healthz, /readyz, /metrics)");
        server::serve(listener, tls, app, server::shutdown_signal()).await;
        Ok::<(), String>(())
    })?;
    tracing::info!("netpol-guard stopped");
    Ok(())
}

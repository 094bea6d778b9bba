//! The command line's clap types (the library knows nothing of clap): the
//! global flags, the subcommands, and what several of them share. Each
//! subcommand's own flags and run live in its module.

pub mod audit;
pub mod certs;
pub mod check;
pub mod config;
pub mod connectivity;
pub mod logging;
pub mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use netpol_guard::config::Settings;
use netpol_guard::report::render::{self, Format, Report};
use netpol_guard::report::summary::{ColorChoice, Paint};

/// Parses the command line (exits with clap's usage error or help).
pub fn parse() -> Cli {
    Cli::parse()
}

#[derive(Parser)]
#[command(
    name = "netpol-guard",
    version,
    about = "Kubernetes admission webhook that keeps namespaces segmented by NetworkPolicy"
)]
pub struct Cli {
    /// Log format (default: text on a terminal, json otherwise).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
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
pub enum Color {
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
pub fn print_report(report: &impl Report, output: Output, color: Color) -> Result<(), String> {
    render::print(
        report,
        output.into(),
        Paint::for_stdout(ColorChoice::from(color)),
    )
    .map_err(|e| e.to_string())
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the admission webhook over HTTPS.
    Serve(serve::ServeArgs),
    /// Judge manifests offline, as if each object were created now.
    Check(check::CheckArgs),
    /// Audit a live cluster (KUBECONFIG or in-cluster) before enforcing:
    /// namespaces without NetworkPolicies, workloads no policy covers (what
    /// require-network-policy would deny if they were created now), and
    /// every policy a rule flags. Same engine and exit codes as `check`.
    Audit(audit::AuditArgs),
    /// Write a CA, a serving certificate for the webhook Service, its TLS
    /// Secret and a kustomization that installs them with manifests/.
    Certs(certs::CertsArgs),
    /// Every connection the NetworkPolicies allow between workloads and
    /// addresses outside the cluster, from manifests or the live cluster.
    Connectivity(connectivity::ConnectivityArgs),
    /// The connections a change adds, removes or changes, between two
    /// directories or files of manifests (a pull request's base and head).
    Diff(connectivity::DiffArgs),
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
}

/// `--config` of `check` and `audit`, else the built-in defaults; `Err` is a
/// line for standard error.
pub fn load_settings(path: Option<&PathBuf>) -> Result<Settings, String> {
    match path {
        Some(p) => Settings::from_file(p).map_err(|e| format!("{}: {e}", p.display())),
        None => Ok(Settings::default()),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

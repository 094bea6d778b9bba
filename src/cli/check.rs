//! `netpol-guard check`: judge manifests offline.

use std::path::PathBuf;
use std::process::ExitCode;

use netpol_guard::report::check;
use netpol_guard::report::model::ExitCode as Exit;

use super::{Color, Output, load_settings, print_report};

#[derive(clap::Args)]
pub struct CheckArgs {
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
}

/// Prints the report; exits as the report says (2 when a file or the
/// config cannot be read).
pub fn run(args: CheckArgs) -> ExitCode {
    let settings = match load_settings(args.config.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Exit::Unreadable.into();
        }
    };
    match check::check_paths(&args.paths, &settings, &args.namespace) {
        Ok(report) => match print_report(&report, args.output, args.color) {
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

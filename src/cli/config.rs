//! `netpol-guard config`: validate a config file, print the defaults.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use netpol_guard::config::{DEFAULT_CONFIG_YAML, Settings};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Check a config file offline; exit 1 with the error if it is invalid.
    Validate { file: PathBuf },
    /// Print the documented default configuration.
    Default,
}

pub fn run(command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Default => {
            print!("{DEFAULT_CONFIG_YAML}");
            ExitCode::SUCCESS
        }
        ConfigCommand::Validate { file } => match Settings::from_file(&file) {
            Ok(_) => {
                println!("{}: valid", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::from(1)
            }
        },
    }
}

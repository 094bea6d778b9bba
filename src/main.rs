//! The `netpol-guard` command line: `serve`, `check`, `audit`, `certs`,
//! `config`, `connectivity`, `diff` (each in its module under `cli`).

use std::process::ExitCode;

use cli::Command;

mod cli;

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

fn main() -> ExitCode {
    let cli::Cli {
        log_format,
        command,
    } = cli::parse();
    match command {
        Command::Serve(args) => cli::serve::run(args, log_format),
        Command::Check(args) => cli::check::run(args),
        Command::Audit(args) => cli::audit::run(args),
        Command::Certs(args) => cli::certs::run(args),
        Command::Connectivity(args) => cli::connectivity::run(args),
        Command::Diff(args) => cli::connectivity::run_diff(args),
        Command::Config { command } => cli::config::run(command),
    }
}

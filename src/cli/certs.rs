//! `netpol-guard certs`: the flags; the library's [`netpol_guard::certs`]
//! does the work.

use std::path::PathBuf;
use std::process::ExitCode;

use netpol_guard::certs::{self, CertsOptions, SECRET_NAME};

#[derive(clap::Args, Debug, Clone)]
pub struct CertsArgs {
    /// The webhook Service's name.
    #[arg(long, default_value = "netpol-guard")]
    service: String,
    /// The webhook Service's namespace.
    #[arg(long, default_value = "netpol-guard")]
    namespace: String,
    /// Directory to write into (created if missing). It holds private keys:
    /// keep it out of version control.
    #[arg(long)]
    out: PathBuf,
    /// The cluster's DNS domain (for the SVC.NS.svc.DOMAIN name).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Validity of the serving certificate, in days (1..=3650).
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Make a new CA even if the directory holds one; the old ca.crt is kept
    /// as previous-ca.crt and stays in the caBundle until deleted.
    #[arg(long)]
    new_ca: bool,
    /// The kustomize base the generated kustomization.yaml layers on.
    #[arg(long, default_value = "manifests")]
    base: PathBuf,
    /// Name of the TLS Secret the Deployment mounts.
    #[arg(long, default_value = SECRET_NAME)]
    secret: String,
}

impl From<CertsArgs> for CertsOptions {
    fn from(a: CertsArgs) -> Self {
        CertsOptions {
            service: a.service,
            namespace: a.namespace,
            out: a.out,
            cluster_domain: a.cluster_domain,
            days: a.days,
            new_ca: a.new_ca,
            base: a.base,
            secret: a.secret,
        }
    }
}

/// Writes the files and prints the summary; exits 1 with the error.
pub fn run(args: CertsArgs) -> ExitCode {
    match certs::run(&args.into()) {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("netpol-guard certs: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use clap::Parser;
    use netpol_guard::certs::{CertsOptions, SECRET_NAME};

    use crate::cli::{Cli, Command};

    fn options(args: &[&str]) -> CertsOptions {
        let line = ["netpol-guard", "certs"].iter().chain(args);
        match Cli::try_parse_from(line).unwrap().command {
            Command::Certs(a) => a.into(),
            _ => panic!("not certs"),
        }
    }

    #[test]
    fn defaults_reach_the_library() {
        let o = options(&["--out", "d"]);
        assert_eq!(o.service, "netpol-guard");
        assert_eq!(o.namespace, "netpol-guard");
        assert_eq!(o.out, PathBuf::from("d"));
        assert_eq!(o.cluster_domain, "cluster.local");
        assert_eq!(o.days, 365);
        assert!(!o.new_ca);
        assert_eq!(o.base, PathBuf::from("manifests"));
        assert_eq!(o.secret, SECRET_NAME);
    }

    #[test]
    fn each_flag_sets_its_own_option() {
        let o = options(&[
            "--service",
            "svc",
            "--namespace",
            "ns",
            "--out",
            "o",
            "--cluster-domain",
            "corp.example",
            "--days",
            "30",
            "--new-ca",
            "--base",
            "b",
            "--secret",
            "sec",
        ]);
        assert_eq!(
            (o.service.as_str(), o.namespace.as_str(), o.out.as_path()),
            ("svc", "ns", PathBuf::from("o").as_path())
        );
        assert_eq!(
            (o.cluster_domain.as_str(), o.days, o.new_ca),
            ("corp.example", 30, true)
        );
        assert_eq!(
            (o.base.as_path(), o.secret.as_str()),
            (PathBuf::from("b").as_path(), "sec")
        );
    }
}

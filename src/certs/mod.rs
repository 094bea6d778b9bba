//! `netpol-guard certs`: a CA and a serving certificate for the webhook
//! Service, plus the manifests that install them (TLS Secret, caBundle patch,
//! kustomization layered on `manifests/`).
//!
//! [`generate`] makes every file's content without touching the file system;
//! [`run`] reads an existing CA from the output directory, calls it and writes
//! the results. An existing CA is reused (so the caBundle does not change when
//! the serving certificate is rotated) unless `--new-ca` is given; the CA it
//! replaces is kept as `previous-ca.crt` and stays in the caBundle until it is
//! deleted.
//!
//! Here: the names, the options, the errors, their validation and the
//! orchestration. `pki` makes and checks the certificates, `render` the
//! YAML documents and the summary, `files` reads the output directory and
//! writes into it. The command line's flags are the binary's (`src/cli/`).

mod files;
mod pki;
mod render;

use std::path::PathBuf;

use time::{Duration, OffsetDateTime};

use files::{DirState, base_reference, create_dir, write_all};
use render::{SummaryContext, cabundle_patch_yaml, kustomization_yaml, secret_yaml, summary};

pub use files::relative_path;
pub use pki::ExistingCa;
pub use render::format_date;

/// Names the shipped manifests use; the caBundle patch must match them.
pub const SECRET_NAME: &str = "netpol-guard-tls";
pub const WEBHOOK_CONFIGURATION: &str = "netpol-guard";
pub const VALIDATING_WEBHOOKS: [&str; 3] = [
    "workloads.netpol-guard.io",
    "policies.netpol-guard.io",
    "policies-unmanaged.netpol-guard.io",
];
pub const MUTATING_WEBHOOKS: [&str; 1] = ["namespaces.netpol-guard.io"];

/// Files written into the output directory.
pub const CA_CERT_FILE: &str = "ca.crt";
pub const CA_KEY_FILE: &str = "ca.key";
pub const PREVIOUS_CA_CERT_FILE: &str = "previous-ca.crt";
pub const TLS_CERT_FILE: &str = "tls.crt";
pub const TLS_KEY_FILE: &str = "tls.key";
pub const CA_BUNDLE_FILE: &str = "ca-bundle.crt";
pub const SECRET_FILE: &str = "secret.yaml";
pub const PATCH_FILE: &str = "cabundle-patch.yaml";
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";

/// The CA's subject common name.
pub const CA_COMMON_NAME: &str = "netpol-guard CA";
/// How long a new CA is valid.
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// The longest serving certificate `--days` allows.
pub const MAX_DAYS: u32 = 3650;

/// What `netpol-guard certs` is asked for: its flags, as the binary parsed
/// them.
#[derive(Debug, Clone)]
pub struct CertsOptions {
    /// The webhook Service's name.
    pub service: String,
    /// The webhook Service's namespace.
    pub namespace: String,
    /// Directory to write into (created if missing).
    pub out: PathBuf,
    /// The cluster's DNS domain (for the SVC.NS.svc.DOMAIN name).
    pub cluster_domain: String,
    /// Validity of the serving certificate, in days (1..=[`MAX_DAYS`]).
    pub days: u32,
    /// Make a new CA even if the directory holds one.
    pub new_ca: bool,
    /// The kustomize base the generated kustomization.yaml layers on.
    pub base: PathBuf,
    /// Name of the TLS Secret the Deployment mounts.
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{flag} {value:?} is not a valid {kind}: {reason}")]
    InvalidName {
        flag: &'static str,
        value: String,
        kind: &'static str,
        reason: String,
    },
    #[error("--days {0} is out of range (1..={MAX_DAYS})")]
    Days(u32),
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot move {} to {}: {source}", from.display(), to.display())]
    Move {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} exists but {} does not; run again with --new-ca to make a new CA",
        present.display(),
        missing.display()
    )]
    IncompleteCa { present: PathBuf, missing: PathBuf },
    #[error("{} cannot be reused as the CA: {reason}; run again with --new-ca to make a new CA", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error(
        "{} holds no usable PEM certificate ({reason}); it would go into the caBundle: fix or delete it and run again",
        path.display()
    )]
    BadCertificate { path: PathBuf, reason: String },
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "the new serving certificate does not verify against the CA ({0}); run again with --new-ca to make a new CA"
    )]
    SelfCheck(String),
    #[error("cannot render YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("{} is not valid UTF-8, which kustomization.yaml needs", .0.display())]
    NonUtf8Path(PathBuf),
}

/// Writes the certificates and manifests; returns a summary for the user.
pub fn run(args: &CertsOptions) -> Result<String, CertsError> {
    validate(args)?;
    let dir = &args.out;
    create_dir(dir)?;
    let mut warnings = Vec::new();
    let base = base_reference(dir, &args.base, &mut warnings)?;
    let now = OffsetDateTime::now_utc();
    let state = DirState::read(dir, args.new_ca, now)?;
    let inputs = Inputs {
        service: &args.service,
        namespace: &args.namespace,
        cluster_domain: &args.cluster_domain,
        secret: &args.secret,
        days: args.days,
        base: &base,
        now,
    };
    let reused = state.existing.is_some();
    let out = generate(&inputs, state.existing, state.previous.as_deref())?;
    let written = write_all(dir, &out, state.retire_current)?;
    let ctx = SummaryContext {
        dir,
        args,
        reused,
        retired: state.retire_current,
        has_previous: state.previous.is_some(),
        written: &written,
        warnings: &warnings,
    };
    Ok(summary(&ctx, &out))
}

// ---------------------------------------------------------------- validation

/// Checks the arguments before anything is written.
pub fn validate(args: &CertsOptions) -> Result<(), CertsError> {
    let invalid = |flag, value: &str, kind, reason: String| CertsError::InvalidName {
        flag,
        value: value.to_string(),
        kind,
        reason,
    };
    const LABEL: &str = "DNS-1123 label";
    const SUBDOMAIN: &str = "DNS name";
    check_label(&args.service).map_err(|r| invalid("--service", &args.service, LABEL, r))?;
    check_label(&args.namespace).map_err(|r| invalid("--namespace", &args.namespace, LABEL, r))?;
    check_subdomain(&args.cluster_domain)
        .map_err(|r| invalid("--cluster-domain", &args.cluster_domain, SUBDOMAIN, r))?;
    check_subdomain(&args.secret).map_err(|r| invalid("--secret", &args.secret, SUBDOMAIN, r))?;
    let fqdn = service_names(&args.service, &args.namespace, &args.cluster_domain)[3].clone();
    check_subdomain(&fqdn)
        .map_err(|r| invalid("--cluster-domain", &args.cluster_domain, SUBDOMAIN, r))?;
    if !(1..=MAX_DAYS).contains(&args.days) {
        return Err(CertsError::Days(args.days));
    }
    Ok(())
}

/// A DNS-1123 label: 1 to 63 of `a-z`, `0-9`, `-`, starting and ending
/// alphanumeric. Returns why not.
pub fn check_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > 63 {
        return Err(format!("{} characters, at most 63 allowed", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{c:?} is not allowed (only lowercase letters, digits and '-')"
        ));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}

/// A DNS-1123 subdomain: labels joined by dots, at most 253 characters.
pub fn check_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("{} characters, at most 253 allowed", s.len()));
    }
    for label in s.split('.') {
        check_label(label).map_err(|r| format!("label {label:?}: {r}"))?;
    }
    Ok(())
}

/// The four names the serving certificate is valid for, shortest first.
pub fn service_names(service: &str, namespace: &str, cluster_domain: &str) -> [String; 4] {
    [
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.{cluster_domain}"),
    ]
}

// ---------------------------------------------------------------- generation

/// What [`generate`] needs besides the CA; no file system access.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub service: &'a str,
    pub namespace: &'a str,
    pub cluster_domain: &'a str,
    pub secret: &'a str,
    pub days: u32,
    /// The kustomize base as kustomization.yaml names it (relative to DIR).
    pub base: &'a str,
    pub now: OffsetDateTime,
}

/// Every file's content, and facts for the summary.
#[derive(Debug, Clone)]
pub struct Generated {
    pub ca_cert_pem: String,
    /// `None` when an existing CA was reused (ca.key is left alone).
    pub ca_key_pem: Option<String>,
    pub ca_not_after: OffsetDateTime,
    pub tls_cert_pem: String,
    pub tls_key_pem: String,
    pub tls_not_after: OffsetDateTime,
    /// The serving certificate ends earlier than `--days` asked, with the CA.
    pub tls_capped_by_ca: bool,
    pub sans: [String; 4],
    /// ca.crt followed by the previous CA, when there is one.
    pub ca_bundle: String,
    pub secret_yaml: String,
    pub patch_yaml: String,
    pub kustomization_yaml: String,
}

/// Makes (or reuses) the CA, signs the serving certificate and renders the
/// manifests. `previous_ca_pem` goes into the caBundle after the CA.
pub fn generate(
    inputs: &Inputs<'_>,
    existing: Option<ExistingCa>,
    previous_ca_pem: Option<&str>,
) -> Result<Generated, CertsError> {
    let (ca, ca_key_pem) = match existing {
        Some(ca) => (ca, None),
        None => {
            let (ca, key_pem) = pki::new_ca(inputs.now)?;
            (ca, Some(key_pem))
        }
    };
    let sans = service_names(inputs.service, inputs.namespace, inputs.cluster_domain);
    let wanted = inputs.now + Duration::days(i64::from(inputs.days));
    let tls_not_after = wanted.min(ca.not_after);
    let (tls_cert_pem, tls_key_pem) = pki::issue_serving(&ca, &sans, inputs.now, tls_not_after)?;
    let ca_bundle = match previous_ca_pem {
        Some(prev) => format!("{}{}", ca.cert_pem, pki::with_newline(prev)),
        None => ca.cert_pem.clone(),
    };
    Ok(Generated {
        secret_yaml: secret_yaml(inputs, &tls_cert_pem, &tls_key_pem, &ca.cert_pem)?,
        patch_yaml: cabundle_patch_yaml(&ca_bundle)?,
        kustomization_yaml: kustomization_yaml(inputs.base)?,
        ca_not_after: ca.not_after,
        ca_cert_pem: ca.cert_pem,
        ca_key_pem,
        tls_cert_pem,
        tls_key_pem,
        tls_not_after,
        tls_capped_by_ca: tls_not_after < wanted,
        sans,
        ca_bundle,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

    use super::*;

    fn args() -> CertsOptions {
        CertsOptions {
            service: "netpol-guard".into(),
            namespace: "netpol-guard".into(),
            out: PathBuf::from("out"),
            cluster_domain: "cluster.local".into(),
            days: 365,
            new_ca: false,
            base: PathBuf::from("manifests"),
            secret: SECRET_NAME.into(),
        }
    }

    pub(super) fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    pub(super) fn inputs(now: OffsetDateTime) -> Inputs<'static> {
        Inputs {
            service: "hook",
            namespace: "sys",
            cluster_domain: "corp.example",
            secret: "hook-tls",
            days: 30,
            base: "../../manifests",
            now,
        }
    }

    fn x509(pem: &str) -> Vec<u8> {
        pki::first_certificate(pem).unwrap().to_vec()
    }

    #[test]
    fn defaults_are_valid() {
        validate(&args()).unwrap();
    }

    #[test]
    fn names_must_be_dns_labels() {
        for bad in ["", "Netpol", "-a", "a-", "a.b", "a_b", &"a".repeat(64)] {
            let e = validate(&CertsOptions {
                service: bad.into(),
                ..args()
            })
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("--service"), "{bad:?}: {e}");
            assert!(e.contains("DNS-1123 label"), "{e}");
            let e = validate(&CertsOptions {
                namespace: bad.into(),
                ..args()
            })
            .unwrap_err();
            assert!(e.to_string().starts_with("--namespace"), "{e}");
        }
        validate(&CertsOptions {
            service: "a".repeat(63),
            namespace: "0-x".into(),
            ..args()
        })
        .unwrap();
    }

    #[test]
    fn cluster_domain_and_secret_must_be_dns_names() {
        for bad in [
            "",
            "cluster..local",
            ".local",
            "local.",
            "Cluster.local",
            "-x.y",
        ] {
            let e = validate(&CertsOptions {
                cluster_domain: bad.into(),
                ..args()
            })
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("--cluster-domain"), "{bad:?}: {e}");
            let e = validate(&CertsOptions {
                secret: bad.into(),
                ..args()
            })
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("--secret"), "{bad:?}: {e}");
        }
        validate(&CertsOptions {
            cluster_domain: "k8s.corp.example".into(),
            ..args()
        })
        .unwrap();
        // The full service name must fit in 253 characters too.
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(40),
        ]
        .join(".");
        validate(&CertsOptions {
            secret: long.clone(),
            ..args()
        })
        .unwrap();
        let e = validate(&CertsOptions {
            cluster_domain: long,
            ..args()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("at most 253"), "{e}");
    }

    #[test]
    fn days_are_bounded() {
        for days in [0, MAX_DAYS + 1] {
            let e = validate(&CertsOptions { days, ..args() }).unwrap_err();
            assert!(matches!(e, CertsError::Days(d) if d == days), "{e}");
            assert!(e.to_string().contains("1..=3650"), "{e}");
        }
        for days in [1, MAX_DAYS] {
            validate(&CertsOptions { days, ..args() }).unwrap();
        }
    }

    #[test]
    fn new_ca_and_serving_certificate_have_the_right_fields() {
        let now = now();
        let out = generate(&inputs(now), None, None).unwrap();
        let ca_der = x509(&out.ca_cert_pem);
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        let cn = |c: &X509Certificate<'_>| {
            c.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(cn(&ca), CA_COMMON_NAME);
        let bc = ca.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        let ku = ca.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert!(!ku.digital_signature() && !ku.key_encipherment());
        let ca_days = (ca.validity().not_after.to_datetime() - now).whole_days();
        assert!((3649..=3650).contains(&ca_days), "{ca_days}");
        assert_eq!(ca.validity().not_after.to_datetime(), out.ca_not_after);

        let leaf_der = x509(&out.tls_cert_pem);
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
        assert_eq!(cn(&leaf), "hook.sys.svc");
        assert_eq!(leaf.issuer(), ca.subject());
        let sans: Vec<String> = leaf
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => d.to_string(),
                other => panic!("unexpected SAN {other:?}"),
            })
            .collect();
        assert_eq!(
            sans,
            [
                "hook",
                "hook.sys",
                "hook.sys.svc",
                "hook.sys.svc.corp.example"
            ]
        );
        assert_eq!(sans, out.sans);
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth && eku.other.is_empty());
        let ku = leaf.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && ku.key_encipherment());
        assert!(!ku.key_cert_sign() && !ku.crl_sign());
        assert!(!leaf.basic_constraints().unwrap().unwrap().value.ca);
        let days = (leaf.validity().not_after.to_datetime() - now).whole_days();
        assert!((29..=30).contains(&days), "{days}");
        assert!(!out.tls_capped_by_ca);
        leaf.verify_signature(Some(ca.public_key())).unwrap();

        assert!(
            out.ca_key_pem
                .as_deref()
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(out.tls_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(out.ca_bundle, out.ca_cert_pem);
        // Leaf only.
        assert_eq!(
            CertificateDer::pem_slice_iter(out.tls_cert_pem.as_bytes()).count(),
            1
        );
    }

    #[test]
    fn an_existing_ca_is_reused() {
        let now = now();
        let first = generate(&inputs(now), None, None).unwrap();
        let key_pem = first.ca_key_pem.clone().unwrap();
        let ca = ExistingCa::parse(
            &first.ca_cert_pem,
            &key_pem,
            Path::new("ca.crt"),
            Path::new("ca.key"),
            now,
        )
        .unwrap();
        assert_eq!(ca.not_after(), first.ca_not_after);
        let second = generate(&inputs(now), Some(ca), Some(&first.ca_cert_pem)).unwrap();
        assert_eq!(second.ca_cert_pem, first.ca_cert_pem);
        assert!(second.ca_key_pem.is_none());
        assert_ne!(second.tls_cert_pem, first.tls_cert_pem);
        assert_eq!(
            second.ca_bundle,
            format!("{}{}", first.ca_cert_pem, first.ca_cert_pem)
        );
        let ca_der = x509(&first.ca_cert_pem);
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        let leaf_der = x509(&second.tls_cert_pem);
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
        leaf.verify_signature(Some(ca.public_key())).unwrap();
    }

    #[test]
    fn the_serving_certificate_ends_with_the_ca() {
        let now = now();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(10);
        let cert = params.self_signed(&key).unwrap();
        let ca = ExistingCa::parse(
            &cert.pem(),
            &key.serialize_pem(),
            Path::new("ca.crt"),
            Path::new("ca.key"),
            now,
        )
        .unwrap();
        let out = generate(&inputs(now), Some(ca), None).unwrap();
        assert!(out.tls_capped_by_ca);
        assert_eq!(out.tls_not_after, out.ca_not_after);
    }

    #[test]
    fn run_refuses_half_a_ca_and_a_bad_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let a = CertsOptions {
            out: out.clone(),
            base: tmp.path().to_path_buf(),
            ..args()
        };
        fs::create_dir(&out).unwrap();
        fs::write(out.join(CA_CERT_FILE), "x").unwrap();
        let e = run(&a).unwrap_err().to_string();
        assert!(e.contains("ca.key does not;"), "{e}");
        assert!(e.contains("--new-ca"), "{e}");
        fs::write(out.join(CA_KEY_FILE), "y").unwrap();
        let e = run(&a).unwrap_err().to_string();
        assert!(e.contains("ca.crt cannot be reused"), "{e}");
        assert!(e.contains("--new-ca"), "{e}");
        // Nothing was written.
        assert!(!out.join(TLS_CERT_FILE).exists());
        // --new-ca refuses to carry an unreadable ca.crt into the caBundle.
        let e = run(&CertsOptions {
            new_ca: true,
            ..a.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("holds no usable PEM certificate"), "{e}");
    }

    #[test]
    fn run_reports_bad_arguments_before_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("never");
        let e = run(&CertsOptions {
            out: out.clone(),
            days: 0,
            ..args()
        })
        .unwrap_err();
        assert!(matches!(e, CertsError::Days(0)));
        assert!(!out.exists());
    }
}

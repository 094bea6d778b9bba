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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

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
/// Certificates start this long before now, for clocks slightly behind ours.
const BACKDATE: Duration = Duration::minutes(5);
/// Label put on the Secret.
const NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "netpol-guard");

#[derive(clap::Args, Debug, Clone)]
pub struct CertsArgs {
    /// The webhook Service's name.
    #[arg(long, default_value = "netpol-guard")]
    pub service: String,
    /// The webhook Service's namespace.
    #[arg(long, default_value = "netpol-guard")]
    pub namespace: String,
    /// Directory to write into (created if missing). It holds private keys:
    /// keep it out of version control.
    #[arg(long)]
    pub out: PathBuf,
    /// The cluster's DNS domain (for the SVC.NS.svc.DOMAIN name).
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Validity of the serving certificate, in days (1..=3650).
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Make a new CA even if the directory holds one; the old ca.crt is kept
    /// as previous-ca.crt and stays in the caBundle until deleted.
    #[arg(long)]
    pub new_ca: bool,
    /// The kustomize base the generated kustomization.yaml layers on.
    #[arg(long, default_value = "manifests")]
    pub base: PathBuf,
    /// Name of the TLS Secret the Deployment mounts.
    #[arg(long, default_value = SECRET_NAME)]
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
pub fn run(args: &CertsArgs) -> Result<String, CertsError> {
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
pub fn validate(args: &CertsArgs) -> Result<(), CertsError> {
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

// ------------------------------------------------------------------ the base

/// `to` as a path relative to the directory `from`; both must be absolute
/// (canonical). `None` when there is no relative path (different roots).
pub fn relative_path(from: &Path, to: &Path) -> Option<PathBuf> {
    if !from.is_absolute() || !to.is_absolute() {
        return None;
    }
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    if from.first() != to.first() {
        return None;
    }
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in to.iter().skip(common) {
        rel.push(c.as_os_str());
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    Some(rel)
}

/// A path as kustomization.yaml writes it: UTF-8, '/'-separated.
fn kustomize_path(p: &Path) -> Result<String, CertsError> {
    let parts = p
        .components()
        .map(|c| match c {
            Component::RootDir => Some(String::new()),
            c => c.as_os_str().to_str().map(str::to_string),
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| CertsError::NonUtf8Path(p.to_path_buf()))?;
    Ok(match parts.as_slice() {
        [root] if root.is_empty() => "/".to_string(),
        _ => parts.join("/"),
    })
}

/// The `resources:` entry for the base, relative to `dir` (which exists).
fn base_reference(
    dir: &Path,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<String, CertsError> {
    let Ok(base_abs) = base.canonicalize() else {
        warnings.push(format!(
            "--base {} does not exist; kustomization.yaml names it as given, relative to {}",
            base.display(),
            dir.display()
        ));
        return kustomize_path(base);
    };
    if base_abs.is_dir()
        && !["kustomization.yaml", "kustomization.yml", "Kustomization"]
            .iter()
            .any(|f| base_abs.join(f).is_file())
    {
        warnings.push(format!(
            "--base {} holds no kustomization.yaml; `kubectl apply -k` will fail",
            base.display()
        ));
    }
    let dir_abs = dir.canonicalize().map_err(|source| CertsError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let rel = relative_path(&dir_abs, &base_abs).unwrap_or(base_abs);
    kustomize_path(&rel)
}

// ------------------------------------------------------------ reading the CA

/// A CA read back from `ca.crt` and `ca.key`, checked for reuse.
pub struct ExistingCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ExistingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExistingCa")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl ExistingCa {
    /// Parses a CA certificate and its key (PEM). The paths only name the
    /// files in errors. The CA must not have expired at `now` and the key
    /// must be the certificate's.
    pub fn parse(
        cert_pem: &str,
        key_pem: &str,
        cert_path: &Path,
        key_path: &Path,
        now: OffsetDateTime,
    ) -> Result<Self, CertsError> {
        let bad = |path: &Path, reason: String| CertsError::BadCa {
            path: path.to_path_buf(),
            reason,
        };
        let cert_der = first_certificate(cert_pem).map_err(|r| bad(cert_path, r))?;
        let facts = cert_facts(&cert_der)
            .ok_or_else(|| bad(cert_path, "it is not a readable X.509 certificate".into()))?;
        if !facts.is_ca {
            return Err(bad(
                cert_path,
                "it is not a CA certificate (no basicConstraints CA:TRUE)".into(),
            ));
        }
        let not_after = facts.not_after;
        if not_after <= now {
            return Err(bad(
                cert_path,
                format!("it expired on {}", format_date(not_after)),
            ));
        }
        let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| bad(key_path, format!("no PEM private key: {e}")))?;
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der)
            .map_err(|e| bad(key_path, format!("unsupported private key: {e}")))?;
        rustls::sign::CertifiedKey::new(vec![cert_der.clone()], signing_key)
            .keys_match()
            .map_err(|e| {
                bad(
                    key_path,
                    format!("it is not the key of {} ({e})", cert_path.display()),
                )
            })?;
        let key = KeyPair::try_from(&key_der)
            .map_err(|e| bad(key_path, format!("unsupported private key: {e}")))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| bad(cert_path, format!("cannot use it to sign: {e}")))?;
        Ok(Self {
            cert_pem: with_newline(cert_pem),
            cert_der,
            not_after,
            issuer,
        })
    }

    /// When the CA expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

/// The first certificate of a PEM text.
fn first_certificate(pem: &str) -> Result<CertificateDer<'static>, String> {
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(e)) => Err(format!("not PEM: {e}")),
        None => Err("no PEM certificate in it".into()),
    }
}

/// Checks a PEM text holds at least one certificate (for previous-ca.crt).
fn check_certificates(pem: &str, path: &Path) -> Result<(), CertsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertsError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CertsError::BadCertificate {
            path: path.to_path_buf(),
            reason: "no certificate in it".into(),
        });
    }
    Ok(())
}

/// What reusing a CA needs to know of a certificate, read from its DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertFacts {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// basicConstraints says `CA:TRUE`.
    pub is_ca: bool,
}

/// Reads the validity and basicConstraints of a DER X.509 certificate;
/// `None` when it is not one.
pub fn cert_facts(der: &[u8]) -> Option<CertFacts> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    Some(CertFacts {
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        is_ca,
    })
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
            let (ca, key_pem) = new_ca(inputs.now)?;
            (ca, Some(key_pem))
        }
    };
    let sans = service_names(inputs.service, inputs.namespace, inputs.cluster_domain);
    let wanted = inputs.now + Duration::days(i64::from(inputs.days));
    let tls_not_after = wanted.min(ca.not_after);
    let key = KeyPair::generate()?;
    let cert = serving_params(&sans, inputs.now, tls_not_after)?.signed_by(&key, &ca.issuer)?;
    verify_serving(&ca.cert_der, cert.der(), &sans, inputs.now)?;
    let tls_cert_pem = cert.pem();
    let tls_key_pem = key.serialize_pem();
    let ca_bundle = match previous_ca_pem {
        Some(prev) => format!("{}{}", ca.cert_pem, with_newline(prev)),
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

/// A new self-signed CA, valid [`CA_VALIDITY_DAYS`]; returns it and its key
/// as PKCS#8 PEM.
fn new_ca(now: OffsetDateTime) -> Result<(ExistingCa, String), CertsError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(i64::from(CA_VALIDITY_DAYS));
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let key_pem = key.serialize_pem();
    // The encoded date has whole seconds; report what the certificate says.
    let not_after = cert_facts(cert.der()).map_or(params.not_after, |f| f.not_after);
    let ca = ExistingCa {
        cert_pem: cert.pem(),
        cert_der: cert.der().clone(),
        not_after,
        issuer: Issuer::new(params, key),
    };
    Ok((ca, key_pem))
}

/// The serving certificate's parameters: the Service's names, a server-only
/// end-entity certificate.
fn serving_params(
    sans: &[String; 4],
    now: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans
        .iter()
        .map(|n| Ok(SanType::DnsName(n.clone().try_into()?)))
        .collect::<Result<_, rcgen::Error>>()?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, sans[2].as_str());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = not_after;
    Ok(params)
}

/// Checks the serving certificate as a TLS client would, for every name.
fn verify_serving(
    ca: &CertificateDer<'static>,
    leaf: &CertificateDer<'_>,
    sans: &[String],
    now: OffsetDateTime,
) -> Result<(), CertsError> {
    let fail = |e: &dyn std::fmt::Display| CertsError::SelfCheck(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(|e| fail(&e))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| fail(&e))?;
    let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    for san in sans {
        let name = ServerName::try_from(san.as_str()).map_err(|e| fail(&e))?;
        verifier
            .verify_server_cert(leaf, &[], &name, &[], at)
            .map_err(|e| fail(&format!("{san}: {e}")))?;
    }
    Ok(())
}

fn with_newline(s: &str) -> String {
    let mut s = s.to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

// ----------------------------------------------------------------- manifests

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Secret<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: Metadata<'a>,
    #[serde(rename = "type")]
    type_: &'a str,
    data: BTreeMap<&'a str, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookConfigurationPatch<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: Metadata<'a>,
    webhooks: Vec<WebhookPatch<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookPatch<'a> {
    name: &'a str,
    client_config: ClientConfigPatch<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientConfigPatch<'a> {
    ca_bundle: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Kustomization<'a> {
    api_version: &'a str,
    kind: &'a str,
    resources: Vec<&'a str>,
    patches: Vec<PatchRef<'a>>,
}

#[derive(Serialize)]
struct PatchRef<'a> {
    path: &'a str,
}

const GENERATED: &str = "# Generated by `netpol-guard certs`; run it again to rotate.\n";

/// The `kubernetes.io/tls` Secret the Deployment mounts.
fn secret_yaml(
    inputs: &Inputs<'_>,
    tls_crt: &str,
    tls_key: &str,
    ca_crt: &str,
) -> Result<String, CertsError> {
    let secret = Secret {
        api_version: "v1",
        kind: "Secret",
        metadata: Metadata {
            name: inputs.secret,
            namespace: Some(inputs.namespace),
            labels: BTreeMap::from([NAME_LABEL]),
        },
        type_: "kubernetes.io/tls",
        data: BTreeMap::from([
            ("tls.crt", BASE64.encode(tls_crt)),
            ("tls.key", BASE64.encode(tls_key)),
            ("ca.crt", BASE64.encode(ca_crt)),
        ]),
    };
    Ok(format!(
        "{GENERATED}# Holds a private key: do not commit it.\n{}",
        serde_yaml::to_string(&secret)?
    ))
}

/// Strategic-merge patches setting `caBundle` on every webhook (kustomize
/// merges the `webhooks` entries by name).
fn cabundle_patch_yaml(ca_bundle: &str) -> Result<String, CertsError> {
    let encoded = BASE64.encode(ca_bundle);
    let doc = |kind, names: &[&'static str]| WebhookConfigurationPatch {
        api_version: "admissionregistration.k8s.io/v1",
        kind,
        metadata: Metadata {
            name: WEBHOOK_CONFIGURATION,
            namespace: None,
            labels: BTreeMap::new(),
        },
        webhooks: names
            .iter()
            .map(|name| WebhookPatch {
                name,
                client_config: ClientConfigPatch {
                    ca_bundle: &encoded,
                },
            })
            .collect(),
    };
    Ok(format!(
        "{GENERATED}# caBundle is {CA_BUNDLE_FILE}, base64-encoded.\n{}---\n{}",
        serde_yaml::to_string(&doc("ValidatingWebhookConfiguration", &VALIDATING_WEBHOOKS))?,
        serde_yaml::to_string(&doc("MutatingWebhookConfiguration", &MUTATING_WEBHOOKS))?,
    ))
}

/// The kustomization layering the Secret and the caBundle patch on the base.
fn kustomization_yaml(base: &str) -> Result<String, CertsError> {
    let k = Kustomization {
        api_version: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: vec![base, SECRET_FILE],
        patches: vec![PatchRef { path: PATCH_FILE }],
    };
    Ok(format!(
        "{GENERATED}# Install: kubectl apply -k <this directory>\n{}",
        serde_yaml::to_string(&k)?
    ))
}

// ------------------------------------------------------------- file system

/// What the output directory already holds.
struct DirState {
    existing: Option<ExistingCa>,
    /// The CA kept in the caBundle after the current one.
    previous: Option<String>,
    /// ca.crt is to be moved to previous-ca.crt (--new-ca over an old CA).
    retire_current: bool,
}

impl DirState {
    fn read(dir: &Path, new_ca: bool, now: OffsetDateTime) -> Result<Self, CertsError> {
        let ca_crt = dir.join(CA_CERT_FILE);
        let ca_key = dir.join(CA_KEY_FILE);
        let previous_path = dir.join(PREVIOUS_CA_CERT_FILE);
        let has_crt = exists(&ca_crt)?;
        let has_key = exists(&ca_key)?;
        if new_ca && has_crt {
            // The old CA stays trusted (as previous-ca.crt) during rotation.
            let old = read(&ca_crt)?;
            check_certificates(&old, &ca_crt)?;
            return Ok(Self {
                existing: None,
                previous: Some(old),
                retire_current: true,
            });
        }
        let previous = if exists(&previous_path)? {
            let p = read(&previous_path)?;
            check_certificates(&p, &previous_path)?;
            Some(p)
        } else {
            None
        };
        let existing = match (new_ca, has_crt, has_key) {
            (true, _, _) | (false, false, false) => None,
            (false, true, true) => Some(ExistingCa::parse(
                &read(&ca_crt)?,
                &read(&ca_key)?,
                &ca_crt,
                &ca_key,
                now,
            )?),
            (false, true, false) => {
                return Err(CertsError::IncompleteCa {
                    present: ca_crt,
                    missing: ca_key,
                });
            }
            (false, false, true) => {
                return Err(CertsError::IncompleteCa {
                    present: ca_key,
                    missing: ca_crt,
                });
            }
        };
        Ok(Self {
            existing,
            previous,
            retire_current: false,
        })
    }
}

fn exists(path: &Path) -> Result<bool, CertsError> {
    path.try_exists().map_err(|source| CertsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<String, CertsError> {
    fs::read_to_string(path).map_err(|source| CertsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates the output directory (mode 0700 on unix) if it is missing.
fn create_dir(dir: &Path) -> Result<(), CertsError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| CertsError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes a file atomically (temporary file, then rename); `private` files
/// get mode 0600 on unix from the start.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), CertsError> {
    let err = |source| CertsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    // A leftover from an interrupted run; create_new below needs it gone.
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = options.open(&tmp).and_then(|mut f| {
        f.write_all(contents.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = result.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Writes every file; returns the names written, in order.
fn write_all(
    dir: &Path,
    out: &Generated,
    retire_current: bool,
) -> Result<Vec<&'static str>, CertsError> {
    if retire_current {
        let from = dir.join(CA_CERT_FILE);
        let to = dir.join(PREVIOUS_CA_CERT_FILE);
        fs::rename(&from, &to).map_err(|source| CertsError::Move { from, to, source })?;
    }
    let mut files: Vec<(&'static str, &str, bool)> = Vec::new();
    if let Some(key) = &out.ca_key_pem {
        files.push((CA_KEY_FILE, key, true));
        files.push((CA_CERT_FILE, &out.ca_cert_pem, false));
    }
    files.extend([
        (TLS_KEY_FILE, out.tls_key_pem.as_str(), true),
        (TLS_CERT_FILE, &out.tls_cert_pem, false),
        (CA_BUNDLE_FILE, &out.ca_bundle, false),
        (SECRET_FILE, &out.secret_yaml, true),
        (PATCH_FILE, &out.patch_yaml, false),
        (KUSTOMIZATION_FILE, &out.kustomization_yaml, false),
    ]);
    for (name, contents, private) in &files {
        write_file(&dir.join(name), contents, *private)?;
    }
    Ok(files.into_iter().map(|(name, _, _)| name).collect())
}

// ------------------------------------------------------------------- summary

struct SummaryContext<'a> {
    dir: &'a Path,
    args: &'a CertsArgs,
    reused: bool,
    retired: bool,
    has_previous: bool,
    written: &'a [&'static str],
    warnings: &'a [String],
}

/// `2027-05-01 12:00 UTC`.
pub fn format_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

fn summary(c: &SummaryContext<'_>, out: &Generated) -> String {
    let dir = c.dir.display();
    let ns = &c.args.namespace;
    let mut s = String::new();
    let ca = if c.reused {
        format!("reused {dir}/{CA_CERT_FILE} (the caBundle is unchanged)")
    } else if c.retired {
        format!("new; the old one was moved to {dir}/{PREVIOUS_CA_CERT_FILE}")
    } else {
        "new".to_string()
    };
    let _ = writeln!(s, "Wrote {} in {dir}", c.written.join(", "));
    let _ = writeln!(s, "  CA:          {CA_COMMON_NAME}, {ca}");
    let _ = writeln!(
        s,
        "               expires {}",
        format_date(out.ca_not_after)
    );
    let _ = writeln!(s, "  serving:     CN {}, signed by the CA", out.sans[2]);
    let _ = writeln!(
        s,
        "               expires {}",
        format_date(out.tls_not_after)
    );
    let _ = writeln!(s, "  DNS names:   {}", out.sans.join(", "));
    let _ = writeln!(s, "  Secret:      {ns}/{} ({SECRET_FILE})", c.args.secret);
    let bundle = if c.has_previous {
        format!("{CA_CERT_FILE} + {PREVIOUS_CA_CERT_FILE}")
    } else {
        CA_CERT_FILE.to_string()
    };
    let _ = writeln!(
        s,
        "  caBundle:    {bundle}, on every webhook of {WEBHOOK_CONFIGURATION} ({PATCH_FILE})"
    );
    if out.tls_capped_by_ca {
        let _ = writeln!(
            s,
            "warning: the CA expires before --days {} would end, so the serving certificate ends with it; run again with --new-ca to renew the CA",
            c.args.days
        );
    }
    for w in c.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    if c.args.service != "netpol-guard" || c.args.namespace != "netpol-guard" {
        let _ = writeln!(
            s,
            "note: the shipped manifests name the Service netpol-guard/netpol-guard; the base must define Service {}/{} for these names to match",
            c.args.namespace, c.args.service
        );
    }
    let _ = writeln!(s, "\nNext:\n  kubectl apply -k {dir}");
    let _ = writeln!(
        s,
        "  (a renewed certificate needs no restart: kubelet refreshes the mounted Secret within\n  a minute or two and netpol-guard reloads it; see netpol_guard_tls_reloads_total in {ns})"
    );
    if c.has_previous {
        let _ = writeln!(
            s,
            "Once every pod serves the new certificate, delete {dir}/{PREVIOUS_CA_CERT_FILE} and run this again to drop the old CA from the caBundle."
        );
    }
    let _ = writeln!(
        s,
        "\n{dir} holds private keys ({CA_KEY_FILE}, {TLS_KEY_FILE}, {SECRET_FILE}): keep it out of version control (.gitignore ignores /certs/out/ and *.key)."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

    fn args() -> CertsArgs {
        CertsArgs {
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

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn inputs(now: OffsetDateTime) -> Inputs<'static> {
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
        first_certificate(pem).unwrap().to_vec()
    }

    fn yaml_docs(s: &str) -> Vec<serde_json::Value> {
        use serde::Deserialize;
        serde_yaml::Deserializer::from_str(s)
            .map(|d| serde_json::Value::deserialize(d).unwrap())
            .collect()
    }

    fn b64(s: &str) -> serde_json::Value {
        serde_json::Value::String(BASE64.encode(s))
    }

    #[test]
    fn defaults_are_valid() {
        validate(&args()).unwrap();
    }

    #[test]
    fn names_must_be_dns_labels() {
        for bad in ["", "Netpol", "-a", "a-", "a.b", "a_b", &"a".repeat(64)] {
            let e = validate(&CertsArgs {
                service: bad.into(),
                ..args()
            })
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("--service"), "{bad:?}: {e}");
            assert!(e.contains("DNS-1123 label"), "{e}");
            let e = validate(&CertsArgs {
                namespace: bad.into(),
                ..args()
            })
            .unwrap_err();
            assert!(e.to_string().starts_with("--namespace"), "{e}");
        }
        validate(&CertsArgs {
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
            let e = validate(&CertsArgs {
                cluster_domain: bad.into(),
                ..args()
            })
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("--cluster-domain"), "{bad:?}: {e}");
            let e = validate(&CertsArgs {
                secret: bad.into(),
                ..args()
            })
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("--secret"), "{bad:?}: {e}");
        }
        validate(&CertsArgs {
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
        validate(&CertsArgs {
            secret: long.clone(),
            ..args()
        })
        .unwrap();
        let e = validate(&CertsArgs {
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
            let e = validate(&CertsArgs { days, ..args() }).unwrap_err();
            assert!(matches!(e, CertsError::Days(d) if d == days), "{e}");
            assert!(e.to_string().contains("1..=3650"), "{e}");
        }
        for days in [1, MAX_DAYS] {
            validate(&CertsArgs { days, ..args() }).unwrap();
        }
    }

    #[test]
    fn relative_paths() {
        let rel = |a: &str, b: &str| relative_path(Path::new(a), Path::new(b));
        assert_eq!(
            rel("/repo/certs/out", "/repo/manifests"),
            Some(PathBuf::from("../../manifests"))
        );
        assert_eq!(rel("/repo", "/repo/manifests"), Some("manifests".into()));
        assert_eq!(rel("/repo/x", "/repo/x"), Some(".".into()));
        assert_eq!(rel("/a/b", "/c"), Some("../../c".into()));
        assert_eq!(rel("/a/b/c", "/a"), Some("../..".into()));
        assert_eq!(rel("/", "/m"), Some("m".into()));
        assert_eq!(rel("out", "/m"), None);
        assert_eq!(rel("/out", "m"), None);
    }

    #[test]
    fn base_reference_is_relative_to_the_output_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("manifests");
        fs::create_dir(&base).unwrap();
        fs::write(base.join("kustomization.yaml"), "resources: []\n").unwrap();
        let out = tmp.path().join("certs/out");
        fs::create_dir_all(&out).unwrap();
        let mut warnings = Vec::new();
        let r = base_reference(&out, &base, &mut warnings).unwrap();
        assert_eq!(r, "../../manifests");
        assert!(warnings.is_empty(), "{warnings:?}");

        let r = base_reference(&out, Path::new("/nowhere/at/all"), &mut warnings).unwrap();
        assert_eq!(r, "/nowhere/at/all");
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("does not exist"), "{warnings:?}");

        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let mut warnings = Vec::new();
        assert_eq!(
            base_reference(&out, &empty, &mut warnings).unwrap(),
            "../../empty"
        );
        assert!(
            warnings[0].contains("no kustomization.yaml"),
            "{warnings:?}"
        );
    }

    #[test]
    fn cert_facts_reads_validity_and_basic_constraints() {
        let key = KeyPair::generate().unwrap();
        for (start, end) in [
            (
                rcgen::date_time_ymd(2024, 2, 29),
                rcgen::date_time_ymd(2049, 12, 31),
            ),
            (
                rcgen::date_time_ymd(1999, 1, 1),
                rcgen::date_time_ymd(2061, 7, 4),
            ),
        ] {
            let mut params = CertificateParams::new(vec!["x".to_string()]).unwrap();
            params.not_before = start;
            params.not_after = end;
            let cert = params.self_signed(&key).unwrap();
            let facts = cert_facts(cert.der()).unwrap();
            assert_eq!((facts.not_before, facts.not_after), (start, end));
            assert!(!facts.is_ca);
        }
        for (is_ca, expected) in [
            (IsCa::Ca(BasicConstraints::Constrained(0)), true),
            (IsCa::Ca(BasicConstraints::Unconstrained), true),
            (IsCa::ExplicitNoCa, false),
            (IsCa::NoCa, false),
        ] {
            let mut params = CertificateParams::new(vec!["x".to_string()]).unwrap();
            params.is_ca = is_ca;
            let cert = params.self_signed(&key).unwrap();
            assert_eq!(cert_facts(cert.der()).unwrap().is_ca, expected);
        }
        assert_eq!(cert_facts(b"\x30\x03\x02\x01\x01"), None);
        assert_eq!(cert_facts(&[]), None);
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
    fn unusable_cas_say_to_use_new_ca() {
        let now = now();
        let a = generate(&inputs(now), None, None).unwrap();
        let b = generate(&inputs(now), None, None).unwrap();
        let parse = |cert: &str, key: &str| {
            ExistingCa::parse(cert, key, Path::new("d/ca.crt"), Path::new("d/ca.key"), now)
                .unwrap_err()
                .to_string()
        };
        let e = parse(&a.ca_cert_pem, b.ca_key_pem.as_deref().unwrap());
        assert!(e.starts_with("d/ca.key cannot be reused"), "{e}");
        assert!(e.contains("not the key of d/ca.crt"), "{e}");
        assert!(e.contains("--new-ca"), "{e}");
        let e = parse("garbage", a.ca_key_pem.as_deref().unwrap());
        assert!(e.starts_with("d/ca.crt cannot be reused"), "{e}");
        assert!(e.contains("--new-ca"), "{e}");
        let e = parse(&a.ca_cert_pem, "garbage");
        assert!(e.starts_with("d/ca.key cannot be reused"), "{e}");

        // Expired.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.not_before = now - Duration::days(20);
        params.not_after = now - Duration::days(10);
        let cert = params.self_signed(&key).unwrap();
        let e = parse(&cert.pem(), &key.serialize_pem());
        assert!(e.contains("expired on"), "{e}");
        assert!(e.contains("--new-ca"), "{e}");
    }

    #[test]
    fn a_non_ca_certificate_is_not_reused() {
        let now = now();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["x".to_string()]).unwrap();
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(100);
        let cert = params.self_signed(&key).unwrap();
        let e = ExistingCa::parse(
            &cert.pem(),
            &key.serialize_pem(),
            Path::new("ca.crt"),
            Path::new("ca.key"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a CA certificate"), "{e}");
        assert!(e.contains("--new-ca"), "{e}");
    }

    #[test]
    fn the_self_check_rejects_a_certificate_from_another_ca() {
        let now = now();
        let a = generate(&inputs(now), None, None).unwrap();
        let b = generate(&inputs(now), None, None).unwrap();
        let ca = first_certificate(&a.ca_cert_pem).unwrap();
        let leaf = first_certificate(&b.tls_cert_pem).unwrap();
        let e = verify_serving(&ca, &leaf, &a.sans, now).unwrap_err();
        assert!(matches!(e, CertsError::SelfCheck(_)), "{e}");
        let own = first_certificate(&a.tls_cert_pem).unwrap();
        verify_serving(&ca, &own, &a.sans, now).unwrap();
        let e = verify_serving(&ca, &own, &["other.example".into()], now).unwrap_err();
        assert!(e.to_string().contains("other.example"), "{e}");
    }

    #[test]
    fn secret_yaml_is_a_tls_secret() {
        let out = generate(&inputs(now()), None, None).unwrap();
        let docs = yaml_docs(&out.secret_yaml);
        assert_eq!(docs.len(), 1);
        let expected = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "hook-tls",
                "namespace": "sys",
                "labels": {"app.kubernetes.io/name": "netpol-guard"},
            },
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": b64(&out.tls_cert_pem),
                "tls.key": b64(&out.tls_key_pem),
                "ca.crt": b64(&out.ca_cert_pem),
            },
        });
        assert_eq!(docs[0], expected);
    }

    #[test]
    fn patch_sets_the_ca_bundle_on_every_webhook() {
        let now = now();
        let out = generate(&inputs(now), None, Some("-----PREVIOUS-----")).unwrap();
        assert_eq!(
            out.ca_bundle,
            format!("{}-----PREVIOUS-----\n", out.ca_cert_pem)
        );
        let docs = yaml_docs(&out.patch_yaml);
        assert_eq!(docs.len(), 2);
        let doc = |kind: &str, names: &[&str]| {
            serde_json::json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": WEBHOOK_CONFIGURATION},
                "webhooks": names.iter().map(|n| serde_json::json!({
                    "name": n,
                    "clientConfig": {"caBundle": b64(&out.ca_bundle)},
                })).collect::<Vec<_>>(),
            })
        };
        assert_eq!(
            docs[0],
            doc("ValidatingWebhookConfiguration", &VALIDATING_WEBHOOKS)
        );
        assert_eq!(
            docs[1],
            doc("MutatingWebhookConfiguration", &MUTATING_WEBHOOKS)
        );
    }

    #[test]
    fn kustomization_layers_on_the_base() {
        let out = generate(&inputs(now()), None, None).unwrap();
        let docs = yaml_docs(&out.kustomization_yaml);
        assert_eq!(
            docs,
            [serde_json::json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["../../manifests", "secret.yaml"],
                "patches": [{"path": "cabundle-patch.yaml"}],
            })]
        );
    }

    #[test]
    fn format_date_is_utc_to_the_minute() {
        let t = rcgen::date_time_ymd(2027, 3, 4) + Duration::minutes(65);
        assert_eq!(format_date(t), "2027-03-04 01:05 UTC");
    }

    #[test]
    fn run_refuses_half_a_ca_and_a_bad_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let a = CertsArgs {
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
        let e = run(&CertsArgs {
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
        let e = run(&CertsArgs {
            out: out.clone(),
            days: 0,
            ..args()
        })
        .unwrap_err();
        assert!(matches!(e, CertsError::Days(0)));
        assert!(!out.exists());
    }
}

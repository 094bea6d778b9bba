//! The certificates: a CA (new, or read back for reuse) and the serving
//! certificate it signs, checked as a TLS client would before anything is
//! written.

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

use super::render::format_date;
use super::{CA_COMMON_NAME, CA_VALIDITY_DAYS, CertsError};
use crate::x509::cert_facts;

/// Certificates start this long before now, for clocks slightly behind ours.
const BACKDATE: Duration = Duration::minutes(5);

/// A CA read back from `ca.crt` and `ca.key`, checked for reuse.
pub struct ExistingCa {
    pub(super) cert_pem: String,
    cert_der: CertificateDer<'static>,
    pub(super) not_after: OffsetDateTime,
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
pub(super) fn first_certificate(pem: &str) -> Result<CertificateDer<'static>, String> {
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(der),
        Some(Err(e)) => Err(format!("not PEM: {e}")),
        None => Err("no PEM certificate in it".into()),
    }
}

/// Checks a PEM text holds at least one certificate (for previous-ca.crt).
pub(super) fn check_certificates(pem: &str, path: &Path) -> Result<(), CertsError> {
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

/// A new self-signed CA, valid [`CA_VALIDITY_DAYS`]; returns it and its key
/// as PKCS#8 PEM.
pub(super) fn new_ca(now: OffsetDateTime) -> Result<(ExistingCa, String), CertsError> {
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

/// A serving certificate for `sans` signed by `ca`, valid until `not_after`
/// and verified against it: its PEM and its key's (PKCS#8) PEM.
pub(super) fn issue_serving(
    ca: &ExistingCa,
    sans: &[String; 4],
    now: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(String, String), CertsError> {
    let key = KeyPair::generate()?;
    let cert = serving_params(sans, now, not_after)?.signed_by(&key, &ca.issuer)?;
    verify_serving(&ca.cert_der, cert.der(), sans, now)?;
    Ok((cert.pem(), key.serialize_pem()))
}

pub(super) fn with_newline(s: &str) -> String {
    let mut s = s.to_string();
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::generate;
    use crate::certs::tests::{inputs, now};

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
}

//! Reading a certificate: what the server reports of the one it serves
//! (its expiry) and what `certs` checks before reusing a CA.

use time::OffsetDateTime;

/// What the server and `certs` need to know of a certificate, read from its
/// DER.
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

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
}

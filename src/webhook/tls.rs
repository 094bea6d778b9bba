//! TLS for the webhook: a serving certificate from PEM files, or an ephemeral
//! self-signed one for local runs. The crypto provider (ring) is chosen
//! explicitly so no process-wide default is needed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {message}")]
    Pem { path: String, message: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the private key does not belong to the certificate (a rotation half done?)")]
    KeyMismatch,
    #[error("unusable certificate or key: {0}")]
    Unusable(rustls::Error),
    #[error("unusable client CA: {0}")]
    ClientCa(String),
}

/// Reads a PEM bundle of CA certificates that client certificates must
/// chain to (`serve --client-ca`).
pub fn client_roots(path: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let shown = path.display().to_string();
    let text = std::fs::read(path).map_err(|e| TlsError::Pem {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&text) {
        let cert = cert.map_err(|e| TlsError::Pem {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        roots
            .add(cert)
            .map_err(|e| TlsError::ClientCa(format!("{shown}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate { path: shown });
    }
    Ok(Arc::new(roots))
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct CertPair {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl CertPair {
    /// Reads a PEM chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let pem_err = |p: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
            path: p.display().to_string(),
            message: e.to_string(),
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_err(cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert, &e))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert.display().to_string(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, &e))?;
        Ok(Self { chain, key })
    }

    /// As `from_files`, from bytes already read (`cert_name`/`key_name` name
    /// them in errors).
    pub fn from_pem(
        cert: &[u8],
        key: &[u8],
        cert_name: &Path,
        key_name: &Path,
    ) -> Result<Self, TlsError> {
        let pem_err = |p: &Path, e: &dyn std::fmt::Display| TlsError::Pem {
            path: p.display().to_string(),
            message: e.to_string(),
        };
        let chain = CertificateDer::pem_slice_iter(cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert_name, &e))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert_name.display().to_string(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| pem_err(key_name, &e))?;
        Ok(Self { chain, key })
    }

    /// The pair as rustls serves it, after checking that the key loads and
    /// belongs to the leaf certificate: a Secret caught mid-rotation (new
    /// certificate, old key) must not replace a working pair.
    pub fn certified(self) -> Result<CertifiedKey, TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        let certified =
            CertifiedKey::from_der(self.chain, self.key, &provider).map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch,
                other => TlsError::Unusable(other),
            })?;
        Ok(certified)
    }

    /// An ephemeral self-signed certificate for `localhost` and 127.0.0.1.
    /// Returns the pair and the certificate PEM (so a client can trust it).
    pub fn self_signed() -> Result<(Self, String), TlsError> {
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let certified = rcgen::generate_simple_self_signed(names)?;
        let pem = certified.cert.pem();
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        Ok((
            Self {
                chain: vec![certified.cert.der().clone()],
                key,
            },
            pem,
        ))
    }

    /// A rustls server config offering HTTP/2 and HTTP/1.1 over ALPN, with
    /// this pair fixed.
    pub fn server_config(self) -> Result<Arc<ServerConfig>, TlsError> {
        CertStore::new(self)?.server_config(true, None)
    }
}

/// The serving certificate, replaceable while the server runs. rustls asks
/// for it on every handshake, so a new pair applies to new connections while
/// established ones keep the one they negotiated.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    pub fn new(pair: CertPair) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(pair.certified()?)),
        }))
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// When the served certificate expires (Unix seconds): exported as a
    /// metric, since an expired webhook certificate fails every admission.
    pub fn not_after(&self) -> Option<i64> {
        let current = self.current();
        let leaf = current.cert.first()?;
        crate::x509::cert_facts(leaf).map(|f| f.not_after.unix_timestamp())
    }

    pub fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }

    /// A rustls server config offering HTTP/2 and HTTP/1.1 over ALPN that
    /// serves whatever pair the store holds at handshake time.
    ///
    /// Session resumption is off: a resumed session keeps the identity of
    /// the certificate it was first made with, and each resumption issues
    /// new tickets for it, so a client that resumes would keep seeing the
    /// old certificate long after a rotation. kube-apiserver keeps its
    /// connections alive and does not resume sessions anyway (Go's TLS
    /// client has no session cache unless one is set).
    /// `http2`: offer `h2` by ALPN besides HTTP/1.1 (`serve --http2`, on
    /// unless `--http2=false`).
    /// `client_ca`: verify client certificates against these roots
    /// (`serve --client-ca`). A client without one still completes the
    /// handshake, since the kubelet's probes present none; the server then
    /// refuses it admission (`server::ConnLimits::require_client_cert`).
    pub fn server_config(
        self: &Arc<Self>,
        http2: bool,
        client_ca: Option<Arc<rustls::RootCertStore>>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            Some(roots) => {
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| TlsError::ClientCa(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut cfg = builder.with_cert_resolver(self.clone());
        cfg.session_storage = Arc::new(NoServerSessionStorage {});
        cfg.send_tls13_tickets = 0;
        cfg.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(Arc::new(cfg))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What one look at the certificate files found.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The files changed and the new pair is now served.
    Applied,
    /// The files changed but the pair is unusable; the old one stays.
    Rejected(TlsError),
}

/// Watches a certificate and key file pair (a mounted TLS Secret) and swaps
/// the served pair when their contents change. Polling the contents, not
/// file events: kubelet updates a Secret volume by swapping a symlinked
/// directory, which inotify on the file paths does not see. Both files are
/// compared byte for byte, so an unchanged pair costs two small reads.
pub struct CertWatch {
    store: Arc<CertStore>,
    cert: PathBuf,
    key: PathBuf,
    last: Option<(Vec<u8>, Vec<u8>)>,
}

impl CertWatch {
    /// `store` holds the pair currently read from `cert` and `key`.
    pub fn new(store: Arc<CertStore>, cert: PathBuf, key: PathBuf) -> Self {
        let last = match (std::fs::read(&cert), std::fs::read(&key)) {
            (Ok(c), Ok(k)) => Some((c, k)),
            _ => None,
        };
        Self {
            store,
            cert,
            key,
            last,
        }
    }

    /// Reads both files; `None` when nothing changed since the last look
    /// (including an unusable pair already reported once).
    pub fn poll(&mut self) -> Option<ReloadOutcome> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| TlsError::Pem {
                path: p.display().to_string(),
                message: e.to_string(),
            })
        };
        let (cert, key) = match (read(&self.cert), read(&self.key)) {
            (Ok(c), Ok(k)) => (c, k),
            (Err(e), _) | (_, Err(e)) => {
                // Unreadable (e.g. mid-swap): report once, then wait for a
                // change.
                let marker = (Vec::new(), e.to_string().into_bytes());
                if self.last.as_ref() == Some(&marker) {
                    return None;
                }
                self.last = Some(marker);
                return Some(ReloadOutcome::Rejected(e));
            }
        };
        if self
            .last
            .as_ref()
            .is_some_and(|(c, k)| *c == cert && *k == key)
        {
            return None;
        }
        let outcome =
            CertPair::from_pem(&cert, &key, &self.cert, &self.key).and_then(CertPair::certified);
        self.last = Some((cert, key));
        Some(match outcome {
            Ok(certified) => {
                self.store.replace(certified);
                ReloadOutcome::Applied
            }
            Err(e) => ReloadOutcome::Rejected(e),
        })
    }

    /// Polls every `interval` in the background, calling `report` on each
    /// change.
    pub fn spawn(
        mut self,
        interval: Duration,
        report: impl Fn(&ReloadOutcome) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (watch, outcome) = match tokio::task::spawn_blocking(move || {
                    let outcome = self.poll();
                    (self, outcome)
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "certificate watch stopped");
                        return;
                    }
                };
                self = watch;
                if let Some(o) = outcome {
                    report(&o);
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_builds_a_server_config() {
        let (pair, pem) = CertPair::self_signed().unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let cfg = pair.server_config().unwrap();
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    /// A certificate PEM and its key PEM.
    fn pem_pair(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    fn leaf(store: &CertStore) -> Vec<u8> {
        store.current().cert[0].to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_key_from_another_pair_is_refused() {
        let (cert_a, _) = pem_pair("a");
        let (_, key_b) = pem_pair("b");
        let p = Path::new("x");
        let e = CertPair::from_pem(cert_a.as_bytes(), key_b.as_bytes(), p, p)
            .and_then(CertPair::certified)
            .unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch), "{e}");
    }

    #[test]
    fn a_certificate_that_is_not_der_is_refused() {
        let (_, key) = pem_pair("a");
        let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let p = Path::new("x");
        let e = CertPair::from_pem(junk.as_bytes(), key.as_bytes(), p, p)
            .and_then(CertPair::certified)
            .unwrap_err();
        assert!(matches!(e, TlsError::Unusable(_)), "{e}");
    }

    #[test]
    fn the_watch_swaps_only_a_complete_matching_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (old_cert, old_key) = pem_pair("old");
        let (new_cert, new_key) = pem_pair("new");
        std::fs::write(&cert_path, &old_cert).unwrap();
        std::fs::write(&key_path, &old_key).unwrap();
        let store = CertStore::new(CertPair::from_files(&cert_path, &key_path).unwrap()).unwrap();
        let mut watch = CertWatch::new(store.clone(), cert_path.clone(), key_path.clone());
        assert!(
            watch.poll().is_none(),
            "unchanged files are not re-read as new"
        );

        // Half-written: the first half of the new certificate.
        std::fs::write(&cert_path, &new_cert[..new_cert.len() / 2]).unwrap();
        assert!(matches!(
            watch.poll(),
            Some(ReloadOutcome::Rejected(TlsError::Pem { .. }))
        ));
        assert!(watch.poll().is_none(), "an unusable pair is reported once");
        assert_eq!(leaf(&store), der(&old_cert));

        // The certificate is complete, the key is still the old one.
        std::fs::write(&cert_path, &new_cert).unwrap();
        assert!(matches!(
            watch.poll(),
            Some(ReloadOutcome::Rejected(TlsError::KeyMismatch))
        ));
        assert_eq!(leaf(&store), der(&old_cert));

        // A missing file (mid-swap) keeps the old pair too.
        std::fs::remove_file(&key_path).unwrap();
        assert!(matches!(
            watch.poll(),
            Some(ReloadOutcome::Rejected(TlsError::Pem { .. }))
        ));
        assert!(watch.poll().is_none());

        std::fs::write(&key_path, &new_key).unwrap();
        assert!(matches!(watch.poll(), Some(ReloadOutcome::Applied)));
        assert_eq!(leaf(&store), der(&new_cert));
        assert!(watch.poll().is_none());
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = CertPair::from_files(&empty, &empty)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = CertPair::from_files(&dir.path().join("nope"), &empty)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot read"), "{e}");
    }
}

//! Test harness: starts the real `netpol-guard` binary on 127.0.0.1 and talks
//! HTTPS to it, trusting the self-signed certificate the server writes out.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

pub fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(path)
}

pub fn fixtures_cluster() -> PathBuf {
    shared("fixtures/cluster/cluster.yaml")
}

/// A running `netpol-guard serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub ca: PathBuf,
    _dir: tempfile::TempDir,
    pub stderr: std::sync::mpsc::Receiver<String>,
    /// Log lines printed before the server was listening.
    pub early_logs: Vec<String>,
}

impl Server {
    /// Starts `serve --state STATE` with extra args, waits until it listens.
    pub fn start(state: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--state", state.to_str().unwrap()];
        args.extend_from_slice(extra);
        Self::start_with(&args, &[])
    }

    /// Starts `serve` with these args and environment, waits until it listens.
    pub fn start_with(args: &[&str], envs: &[(&str, &Path)]) -> Server {
        Self::start_with_env(args, envs, true)
    }

    /// As `start_with`; `fix_log_level` sets NETPOL_GUARD_LOG=info, which
    /// overrides the config's logLevel.
    pub fn start_with_env(args: &[&str], envs: &[(&str, &Path)], fix_log_level: bool) -> Server {
        Self::spawn(args, envs, fix_log_level, true)
    }

    /// Starts `serve` with its own `--tls-cert/--tls-key` in `args`: `ca`
    /// is then not written and callers bring their own TLS client.
    pub fn start_with_certs(args: &[&str]) -> Server {
        Self::spawn(args, &[], true, false)
    }

    fn spawn(args: &[&str], envs: &[(&str, &Path)], fix_log_level: bool, write_ca: bool) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let mut child = Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
            .args(["--log-format", "json", "serve", "--addr", "127.0.0.1:0"])
            .args(if write_ca {
                vec!["--write-ca".as_ref(), ca.as_os_str()]
            } else {
                vec![]
            })
            .args(args)
            .envs(
                envs.iter()
                    .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned())),
            )
            .envs(fix_log_level.then_some(("NETPOL_GUARD_LOG", "info")))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start netpol-guard");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut early_logs = Vec::new();
        let addr = loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!(
                        "netpol-guard did not start listening (exit: {:?})",
                        child.try_wait()
                    )
                });
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("netpol-guard listening"))
            {
                break v["addr"].as_str().unwrap().parse().unwrap();
            } else {
                early_logs.push(line);
            }
        };
        Server {
            child,
            addr,
            ca,
            _dir: dir,
            stderr: rx,
            early_logs,
        }
    }

    pub fn tls_connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(cfg))
    }

    pub async fn tls_stream(
        &self,
        alpn: &[&[u8]],
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let mut connector = self.tls_connector();
        if !alpn.is_empty() {
            let mut cfg = (*connector.config().clone()).clone();
            cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            connector = TlsConnector::from(Arc::new(cfg));
        }
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// An HTTP/1.1 keep-alive connection, as kube-apiserver opens.
    pub async fn connect(&self) -> Client {
        let stream = self.tls_stream(&[b"http/1.1"]).await;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        Client { sender }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Client {
    pub sender: http1::SendRequest<Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    pub async fn request(&mut self, method: &str, path: &str, body: impl Into<Bytes>) -> Reply {
        self.sender.ready().await.unwrap();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .unwrap();
        let resp = self.sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply { status, body }
    }

    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.request("POST", path, body).await
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.request("GET", path, Bytes::new()).await
    }
}

//! Failure drills, against the real binary on 127.0.0.1. netpol-guard sits
//! in the API server's request path: a crash or a hang is felt by the whole
//! cluster. Each drill is bounded in time, and they run one at a time
//! (`SERIAL`) so that one drill's load does not skew another's latencies.
//! Latency bounds are generous on purpose (a ratio plus an absolute floor):
//! they catch a server that stalls, not a slow CI machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

use crate::common::{Client, Server, fixtures_cluster, shared};
use crate::fake_apiserver::{FakeApiServer, RequestMatcher, Served};

/// One drill at a time: each measures latencies or counts requests.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: u64 = 1024 * 1024;

fn fixture(name: &str) -> Bytes {
    Bytes::from(std::fs::read(shared(&format!("fixtures/admission/{name}"))).unwrap())
}

fn median(mut v: Vec<Duration>) -> Duration {
    assert!(!v.is_empty());
    v.sort();
    v[v.len() / 2]
}

/// "Not pathologically worse": under 10x the baseline plus an absolute
/// floor, since a loaded CI machine is noisy.
fn assert_not_pathological(what: &str, baseline: Duration, measured: Duration) {
    let bound = baseline * 10 + Duration::from_millis(25);
    assert!(
        measured <= bound,
        "{what}: median latency {measured:?} vs {baseline:?} without (bound {bound:?})"
    );
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (the server
/// started afterwards inherits it); fails clearly when the hard limit is
/// below what a drill needs.
fn raise_open_files(need: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let hard = now.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= need,
        "this drill needs {need} open files, but the hard RLIMIT_NOFILE is {hard}: raise it (ulimit -Hn) to run it"
    );
    if now.current.is_some_and(|soft| soft < need) {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard.min(1 << 20)),
                maximum: now.maximum,
            },
        )
        .expect("raise the soft RLIMIT_NOFILE to the hard limit");
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// What a client task needs to reach the server (`Server` itself stays with
/// the test: it owns the child process).
#[derive(Clone)]
struct Endpoint {
    addr: SocketAddr,
    connector: TlsConnector,
}

impl Endpoint {
    fn of(server: &Server) -> Self {
        Self {
            addr: server.addr,
            connector: server.tls_connector(),
        }
    }

    /// A TLS connection offering `alpn` (none when empty).
    async fn tls(&self, alpn: &[&[u8]]) -> std::io::Result<Tls> {
        let mut cfg = (*self.connector.config().clone()).clone();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = TcpStream::connect(self.addr).await?;
        TlsConnector::from(Arc::new(cfg))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    }

    /// A keep-alive HTTP/1.1 client (hyper), as kube-apiserver keeps.
    async fn http1(&self) -> std::io::Result<Client> {
        let stream = self.tls(&[b"http/1.1"]).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Client { sender })
    }
}

/// A response as seen by a client that does not panic on errors.
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(
    c: &mut Client,
    method: &str,
    path: &str,
    body: Bytes,
) -> Result<Answer, hyper::Error> {
    c.sender.ready().await?;
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let resp = c.sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The verdicts the fixtures get from the fixture cluster.
fn expected_allowed(name: &str) -> bool {
    match name {
        "deployment-create-covered.json" => true,
        "deployment-create-uncovered.json" => false,
        other => panic!("no expectation for {other}"),
    }
}

/// 200 with an AdmissionReview for `uid` carrying the expected verdict.
fn assert_verdict(status: u16, review: &Value, uid: &str, allowed: bool) {
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["kind"], "AdmissionReview", "{review}");
    assert_eq!(review["response"]["uid"], uid, "{review}");
    assert_eq!(review["response"]["allowed"], allowed, "{review}");
}

fn uid_of(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["request"]["uid"].as_str().unwrap().to_string()
}

/// `n` sequential /validate requests on `c`, each checked; their latencies.
async fn latencies(c: &mut Client, n: usize) -> Vec<Duration> {
    let cases = [
        "deployment-create-covered.json",
        "deployment-create-uncovered.json",
    ]
    .map(|name| (fixture(name), expected_allowed(name)));
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (body, allowed) = &cases[i % 2];
        let t = Instant::now();
        let a = send(c, "POST", "/validate", body.clone())
            .await
            .expect("request on the measuring connection");
        out.push(t.elapsed());
        assert_verdict(a.status, &a.json(), &uid_of(body), *allowed);
    }
    out
}

async fn healthy(ep: &Endpoint) {
    let mut c = ep.http1().await.expect("connect after the drill");
    for path in ["/healthz", "/readyz"] {
        let a = send(&mut c, "GET", path, Bytes::new()).await.unwrap();
        assert_eq!(a.status, 200, "{path}: {}", a.text());
    }
    let body = fixture("deployment-create-uncovered.json");
    let a = send(&mut c, "POST", "/validate", body.clone())
        .await
        .unwrap();
    assert_verdict(a.status, &a.json(), &uid_of(&body), false);
}

fn assert_alive(server: &mut Server) {
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "netpol-guard exited: {:?}",
        server.child.try_wait()
    );
}

// --- hand-written HTTP/1.1, for drills that must control every byte -------

/// A request as bytes.
fn raw_request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why no complete response was read.
#[derive(Debug)]
enum ReadFailure {
    /// The connection ended (EOF or reset) before any byte of a response.
    ClosedBeforeResponse(String),
    /// Part of a response arrived, then the connection ended.
    Truncated { got: usize, error: String },
    /// Nothing, or not all of it, arrived in time.
    TimedOut { got: usize },
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClosedBeforeResponse(e) => write!(f, "closed before any response byte ({e})"),
            Self::Truncated { got, error } => {
                write!(f, "closed after {got} bytes of a response ({error})")
            }
            Self::TimedOut { got } => write!(f, "timed out after {got} bytes of a response"),
        }
    }
}

/// Reads one response (the server always sends `Content-Length`).
async fn read_response<S: AsyncRead + Unpin>(
    s: &mut S,
    within: Duration,
) -> Result<RawResponse, ReadFailure> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // Where the body starts, the status, the headers, the body's length.
    type Head = (usize, u16, Vec<(String, String)>, usize);
    let mut head: Option<Head> = None;
    loop {
        if head.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = text.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("bad status line in {text:?}"));
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or_else(|| panic!("no content-length in {text:?}"));
            head = Some((end + 4, status, headers, len));
        }
        if let Some((start, status, headers, len)) = &head
            && buf.len() >= start + len
        {
            return Ok(RawResponse {
                status: *status,
                headers: headers.clone(),
                body: buf[*start..start + len].to_vec(),
            });
        }
        let got = buf.len();
        let ended = |error: String| {
            if got == 0 {
                ReadFailure::ClosedBeforeResponse(error)
            } else {
                ReadFailure::Truncated { got, error }
            }
        };
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return Err(ReadFailure::TimedOut { got }),
            Ok(Ok(0)) => return Err(ended("EOF".into())),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(ended(e.to_string())),
        }
    }
}

/// Reads until the server closes; how long that took, or `None` if it did
/// not within `within`. Whatever it sent first is returned too.
async fn wait_closed<S: AsyncRead + Unpin>(
    s: &mut S,
    within: Duration,
) -> (Option<Duration>, Vec<u8>) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(within.saturating_sub(t0.elapsed()), s.read(&mut chunk)).await {
            Err(_) => return (None, got),
            Ok(Ok(0)) | Ok(Err(_)) => return (Some(t0.elapsed()), got),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
}

// --- 1. slowloris ----------------------------------------------------------

/// How a misbehaving client fared: how long after it started owing bytes
/// the server closed it (`None`: still open after 8 s), and what it got.
struct Cut {
    kind: &'static str,
    closed_after: Option<Duration>,
    got: Vec<u8>,
}

/// Sends request headers one byte every 100 ms, never finishing them.
async fn slowloris_headers(ep: Endpoint) -> Cut {
    let mut s = ep.tls(&[b"http/1.1"]).await.unwrap();
    let t0 = Instant::now();
    let head =
        b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nx-slow: ";
    let mut bytes = head.iter().copied().chain(std::iter::repeat(b'a'));
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while t0.elapsed() < Duration::from_secs(8) {
        let b = bytes.next().unwrap();
        if s.write_all(&[b]).await.is_err() || s.flush().await.is_err() {
            return Cut {
                kind: "headers byte by byte",
                closed_after: Some(t0.elapsed()),
                got,
            };
        }
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut chunk)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Cut {
                    kind: "headers byte by byte",
                    closed_after: Some(t0.elapsed()),
                    got,
                };
            }
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
    Cut {
        kind: "headers byte by byte",
        closed_after: None,
        got,
    }
}

/// Sends complete headers, then the body one byte every 100 ms.
async fn slowloris_body(ep: Endpoint) -> Cut {
    let mut s = ep.tls(&[b"http/1.1"]).await.unwrap();
    s.write_all(b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{")
        .await
        .unwrap();
    s.flush().await.unwrap();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while t0.elapsed() < Duration::from_secs(8) {
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut chunk)).await {
            Err(_) => {
                if s.write_all(b" ").await.is_err() || s.flush().await.is_err() {
                    break;
                }
            }
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
        }
    }
    let closed_after = (t0.elapsed() < Duration::from_secs(8)).then(|| t0.elapsed());
    Cut {
        kind: "body byte by byte",
        closed_after,
        got,
    }
}

/// Completes the TLS handshake (offering `alpn`), then sends nothing.
async fn silent_after_handshake(ep: Endpoint, alpn: &'static [&'static [u8]]) -> Cut {
    let mut s = ep.tls(alpn).await.unwrap();
    let (closed_after, got) = wait_closed(&mut s, Duration::from_secs(8)).await;
    Cut {
        kind: if alpn.is_empty() {
            "silent after TLS, no ALPN"
        } else {
            "silent after TLS, ALPN http/1.1"
        },
        closed_after,
        got,
    }
}

/// Opens TCP and sends `prefix` (nothing, or the start of a ClientHello).
async fn stalled_handshake(ep: Endpoint, prefix: &'static [u8]) -> Cut {
    let mut s = TcpStream::connect(ep.addr).await.unwrap();
    s.write_all(prefix).await.unwrap();
    let (closed_after, got) = wait_closed(&mut s, Duration::from_secs(8)).await;
    Cut {
        kind: if prefix.is_empty() {
            "TCP, never starts TLS"
        } else {
            "TLS ClientHello cut short"
        },
        closed_after,
        got,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_1_slowloris_and_silent_clients_are_cut_off_while_others_are_served() {
    let _one_at_a_time = SERIAL.lock().await;
    let mut server = Server::start(
        &fixtures_cluster(),
        &["--header-read-timeout", "2s", "--handshake-timeout", "2s"],
    );
    let ep = Endpoint::of(&server);
    let mut client = ep.http1().await.unwrap();
    latencies(&mut client, 20).await; // warm-up
    let before = median(latencies(&mut client, 100).await);

    let mut attackers = JoinSet::new();
    for _ in 0..20 {
        attackers.spawn(slowloris_headers(ep.clone()));
    }
    for _ in 0..5 {
        attackers.spawn(slowloris_body(ep.clone()));
        attackers.spawn(silent_after_handshake(ep.clone(), &[b"http/1.1"]));
        attackers.spawn(silent_after_handshake(ep.clone(), &[]));
        attackers.spawn(stalled_handshake(ep.clone(), b""));
        attackers.spawn(stalled_handshake(ep.clone(), b"\x16\x03\x01\x02\x00\x01"));
    }
    // While they hold their connections (within the 2 s timeouts): the
    // established client and a brand-new one are served as usual.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let attack_started = Instant::now();
    let during = median(latencies(&mut client, 50).await);
    let mut fresh = ep
        .http1()
        .await
        .expect("a new connection during the attack");
    latencies(&mut fresh, 10).await;
    let measured_within = attack_started.elapsed();

    let mut cuts = Vec::new();
    while let Some(cut) = attackers.join_next().await {
        cuts.push(cut.unwrap());
    }
    eprintln!(
        "slowloris: median /validate latency {before:?} before, {during:?} during the attack (measured in {measured_within:?}); {} attackers",
        cuts.len()
    );
    for cut in &cuts {
        let after = cut.closed_after.unwrap_or_else(|| {
            panic!(
                "{}: the server did not close the connection within 8 s",
                cut.kind
            )
        });
        // The 2 s timeouts did it (not the 30 s / 10 s defaults, nor an
        // early accident).
        assert!(
            after >= Duration::from_millis(1800) && after <= Duration::from_secs(5),
            "{}: closed after {after:?}, expected about 2 s",
            cut.kind
        );
        let got = String::from_utf8_lossy(&cut.got);
        if cut.kind == "body byte by byte" {
            assert!(
                got.starts_with("HTTP/1.1 408 "),
                "a body too slow gets 408: {got:?}"
            );
            assert!(got.contains("connection: close"), "{got:?}");
            assert!(got.contains("body not received within 2000 ms"), "{got:?}");
        } else {
            assert!(
                cut.got.is_empty(),
                "{}: unexpected answer {got:?}",
                cut.kind
            );
        }
    }
    let max_close = cuts.iter().filter_map(|c| c.closed_after).max().unwrap();
    eprintln!("slowloris: every attacker was closed after 1.8 s to {max_close:?}");
    assert_not_pathological("during a slowloris attack", before, during);
    assert_alive(&mut server);
    healthy(&ep).await;
}

// --- 2. a thousand idle keep-alive connections -----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_2_a_thousand_idle_keep_alive_connections_do_not_slow_others_down() {
    const IDLE: usize = 1000;
    let _one_at_a_time = SERIAL.lock().await;
    raise_open_files(IDLE as u64 + 200);
    let mut server = Server::start(&fixtures_cluster(), &[]);
    // The server raised its own soft limit at start-up, and said so.
    let limit_line = server
        .early_logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "open files limit (RLIMIT_NOFILE)")
        .expect("serve logs its open files limit");
    let soft = limit_line["soft"].as_str().unwrap();
    assert!(
        soft == "unlimited" || soft.parse::<u64>().unwrap() >= IDLE as u64 + 200,
        "{limit_line}"
    );
    let ep = Endpoint::of(&server);
    let mut client = ep.http1().await.unwrap();
    latencies(&mut client, 20).await; // warm-up
    let without = median(latencies(&mut client, 200).await);

    // 1000 connections, each after one request: idle keep-alive, as an API
    // server's connection pool between requests.
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    while idle.len() < IDLE {
        let mut batch = JoinSet::new();
        for _ in 0..(IDLE - idle.len()).min(100) {
            let ep = ep.clone();
            batch.spawn(async move {
                let mut c = ep.http1().await?;
                let a = send(&mut c, "GET", "/healthz", Bytes::new())
                    .await
                    .map_err(std::io::Error::other)?;
                assert_eq!(a.status, 200);
                Ok::<_, std::io::Error>(c)
            });
        }
        while let Some(c) = batch.join_next().await {
            idle.push(
                c.unwrap()
                    .unwrap_or_else(|e| panic!("opening idle connection {}: {e}", idle.len() + 1)),
            );
        }
    }
    let opened = opened.elapsed();

    let with = median(latencies(&mut client, 200).await);
    eprintln!(
        "idle connections: {IDLE} opened in {opened:?}; median /validate latency {without:?} without, {with:?} with them"
    );
    assert_not_pathological("with 1000 idle connections", without, with);
    // They were really open all along: each one still answers.
    let mut still = JoinSet::new();
    for mut c in idle.into_iter().step_by(10) {
        still.spawn(async move {
            send(&mut c, "GET", "/healthz", Bytes::new())
                .await
                .map(|a| a.status)
        });
    }
    while let Some(status) = still.join_next().await {
        assert_eq!(status.unwrap().expect("idle connection still open"), 200);
    }
    assert_alive(&mut server);
    healthy(&ep).await;
}

// --- 3. oversized bodies ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_3_oversized_bodies_are_refused_early_and_never_hang() {
    let _one_at_a_time = SERIAL.lock().await;
    let mut server = Server::start(&fixtures_cluster(), &[]);
    let ep = Endpoint::of(&server);
    let limit = 4 * MIB; // maxBodyBytes default

    // 100 MB announced, 4 KiB sent: 413 at once, without waiting for the rest.
    let mut s = ep.tls(&[b"http/1.1"]).await.unwrap();
    let t0 = Instant::now();
    s.write_all(b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b' '; 4096]).await.unwrap();
    s.flush().await.unwrap();
    let r = read_response(&mut s, Duration::from_secs(5))
        .await
        .expect("a 413 while the body is still owed, not a wait for 100 MB");
    let answered = t0.elapsed();
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(
        r.text(),
        format!("body of 104857600 bytes is over the limit of {limit} bytes (maxBodyBytes)\n")
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(answered < Duration::from_secs(2), "413 took {answered:?}");
    // ... and the connection is closed, not left hanging.
    let (closed, _) = wait_closed(&mut s, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "connection left open after the 413");

    // A chunked body that never ends: 413 once the limit is crossed, while
    // the client is still streaming (it would stop only at 100 MB).
    let s = ep.tls(&[b"http/1.1"]).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(s);
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, stop) = (written.clone(), stop.clone());
        tokio::spawn(async move {
            wr.write_all(b"POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                .await?;
            let chunk = vec![b' '; 64 * 1024];
            while written.load(Ordering::SeqCst) < 100 * MIB && !stop.load(Ordering::SeqCst) {
                wr.write_all(b"10000\r\n").await?;
                wr.write_all(&chunk).await?;
                wr.write_all(b"\r\n").await?;
                wr.flush().await?;
                written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok::<_, std::io::Error>(())
        })
    };
    let t0 = Instant::now();
    let r = read_response(&mut rd, Duration::from_secs(20))
        .await
        .expect("a 413 for a never-ending chunked body");
    let at = written.load(Ordering::SeqCst);
    let chunked_answered = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(
        r.text(),
        format!("body is over the limit of {limit} bytes (maxBodyBytes)\n")
    );
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        at >= limit && at < 100 * MIB,
        "413 came after {at} bytes were written"
    );
    eprintln!(
        "oversized bodies: 100 MB announced answered in {answered:?}; chunked answered after {} MiB streamed, {chunked_answered:?} after it started",
        at / MIB
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;

    // Just over the limit and sent whole (the client writes everything
    // before reading): still a 413, and the connection stays usable.
    let mut c = ep.http1().await.unwrap();
    let a = send(
        &mut c,
        "POST",
        "/validate",
        Bytes::from(vec![b' '; 5 << 20]),
    )
    .await
    .expect("413 for a 5 MiB body sent whole");
    assert_eq!(a.status, 413, "{}", a.text());
    let a = send(&mut c, "GET", "/healthz", Bytes::new()).await.unwrap();
    assert_eq!(a.status, 200);
    assert_alive(&mut server);
    healthy(&ep).await;
}

// --- 4. deeply nested JSON -------------------------------------------------

fn review_around(field: &str, nested: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"deep","kind":{{"group":"apps","version":"v1","kind":"Deployment"}},"operation":"UPDATE","namespace":"payments","name":"deep","{field}":{nested}}}}}"#
    )
    .into_bytes()
}

/// `depth` nested arrays around a number.
fn nested_arrays(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_4_deeply_nested_json_is_a_400_not_a_stack_overflow() {
    let _one_at_a_time = SERIAL.lock().await;
    let mut server = Server::start(&fixtures_cluster(), &[]);
    let ep = Endpoint::of(&server);
    let mut c = ep.http1().await.unwrap();
    const DEPTH: usize = 100_000;
    let arrays = format!("{}{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH));
    let unclosed = "[".repeat(DEPTH);
    for (what, body) in [
        ("object: 100k [", review_around("object", &arrays)),
        ("object: 100k {\"a\":", review_around("object", &objects)),
        (
            "oldObject: 100k {\"a\":",
            review_around("oldObject", &objects),
        ),
        (
            "object: 100k unclosed [",
            review_around("object", &unclosed),
        ),
    ] {
        for path in ["/validate", "/mutate"] {
            let a = send(&mut c, "POST", path, Bytes::from(body.clone()))
                .await
                .unwrap_or_else(|e| panic!("{what} on {path}: {e}"));
            assert_eq!(a.status, 400, "{what} on {path}: {}", a.text());
            let text = a.text();
            assert!(
                text.starts_with(
                    "body is not valid JSON: recursion limit exceeded at line 1 column "
                ) && text.ends_with('\n')
                    && text.lines().count() == 1,
                "{what} on {path}: {text:?}"
            );
        }
    }
    // Nesting just under serde_json's limit (128) parses: it reaches the
    // engine, which answers with a well-formed review instead of crashing.
    let mut deployment: Value =
        serde_json::from_slice(&fixture("deployment-create-covered.json")).unwrap();
    deployment["request"]["object"]["spec"]["template"]["spec"]["deep"] = nested_arrays(110);
    let a = send(
        &mut c,
        "POST",
        "/validate",
        Bytes::from(serde_json::to_vec(&deployment).unwrap()),
    )
    .await
    .unwrap();
    assert_verdict(
        a.status,
        &a.json(),
        deployment["request"]["uid"].as_str().unwrap(),
        true,
    );
    let mut policy: Value =
        serde_json::from_slice(&fixture("networkpolicy-create-or-mistake.json")).unwrap();
    let deep_selector = json!({"matchLabels": {"app": nested_arrays(100)}});
    policy["request"]["object"]["spec"]["podSelector"] = deep_selector.clone();
    policy["request"]["object"]["spec"]["ingress"][0]["from"][0]["namespaceSelector"] =
        deep_selector;
    let a = send(
        &mut c,
        "POST",
        "/validate",
        Bytes::from(serde_json::to_vec(&policy).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["response"]["uid"], policy["request"]["uid"]);
    assert!(a.json()["response"]["allowed"].is_boolean());
    // Still serving, on the same connection and on new ones.
    let a = send(&mut c, "GET", "/healthz", Bytes::new()).await.unwrap();
    assert_eq!(a.status, 200);
    assert_alive(&mut server);
    healthy(&ep).await;
}

// --- 5. SIGTERM under load -------------------------------------------------

/// One request of a load client, as the client saw it.
#[derive(Debug)]
struct Sent {
    /// When the request's last byte was written (and flushed).
    written_at: Instant,
    outcome: Result<(Instant, RawResponse), ReadFailure>,
    allowed: bool,
}

/// Sends requests back to back on a keep-alive connection (reconnecting
/// when the server closes it) until the server stops accepting or
/// `give_up` passes. Hand-written HTTP, so the instant each request was
/// fully written is known.
async fn load_client(ep: Endpoint, id: usize, give_up: Instant) -> Vec<Sent> {
    let cases = [
        "deployment-create-covered.json",
        "deployment-create-uncovered.json",
    ]
    .map(|name| {
        (
            raw_request("POST", "/validate", &fixture(name)),
            expected_allowed(name),
        )
    });
    let mut log = Vec::new();
    let mut n = id;
    'connections: while Instant::now() < give_up {
        let Ok(mut s) = ep.tls(&[b"http/1.1"]).await else {
            break; // refused: the server has stopped accepting
        };
        while Instant::now() < give_up {
            let (bytes, allowed) = &cases[n % 2];
            n += 1;
            if s.write_all(bytes).await.is_err() || s.flush().await.is_err() {
                continue 'connections; // not sent: the server had closed it
            }
            let written_at = Instant::now();
            let outcome = read_response(&mut s, Duration::from_secs(10))
                .await
                .map(|r| (Instant::now(), r));
            let close = match &outcome {
                Ok((_, r)) => r.header("connection") == Some("close"),
                Err(_) => true,
            };
            log.push(Sent {
                written_at,
                outcome,
                allowed: *allowed,
            });
            if close {
                continue 'connections;
            }
        }
    }
    log
}

fn sigterm(server: &Server) {
    use rustix::process::{Pid, Signal, kill_process};
    kill_process(Pid::from_child(&server.child), Signal::TERM).expect("send SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_5_sigterm_under_load_answers_every_request_in_flight_and_exits_0() {
    const CLIENTS: usize = 8;
    let _one_at_a_time = SERIAL.lock().await;
    let mut server = Server::start(&fixtures_cluster(), &[]);
    let ep = Endpoint::of(&server);
    let uids = [
        "deployment-create-covered.json",
        "deployment-create-uncovered.json",
    ]
    .map(|name| (uid_of(&fixture(name)), expected_allowed(name)));
    // Bystanders that must not hold the exit up: an idle keep-alive
    // connection and a TCP connection that never starts TLS.
    let mut idle = ep.http1().await.unwrap();
    assert_eq!(
        send(&mut idle, "GET", "/healthz", Bytes::new())
            .await
            .unwrap()
            .status,
        200
    );
    let _silent = TcpStream::connect(ep.addr).await.unwrap();

    let give_up = Instant::now() + Duration::from_secs(15);
    let mut clients = JoinSet::new();
    for id in 0..CLIENTS {
        clients.spawn(load_client(ep.clone(), id, give_up));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Everything written before this instant was written before SIGTERM.
    let term_at = Instant::now();
    sigterm(&server);
    let mut logs = Vec::new();
    while let Some(log) = clients.join_next().await {
        logs.push(log.unwrap());
    }
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            term_at.elapsed() < Duration::from_secs(6),
            "not exited within the 5 s drain bound"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let exited_after = term_at.elapsed();
    assert!(status.success(), "exit status {status:?}");
    let mut drain_log = Vec::new();
    while let Ok(line) = server.stderr.recv_timeout(Duration::from_secs(2)) {
        drain_log.push(line);
    }
    assert!(
        drain_log
            .iter()
            .any(|l| l.contains("all connections closed")),
        "the drain did not finish cleanly: {drain_log:#?}"
    );

    // In flight at SIGTERM: written before it, not answered before it.
    let (mut before, mut in_flight, mut after, mut unsent_after) = (0, 0, 0, 0);
    for (client, log) in logs.iter().enumerate() {
        assert!(!log.is_empty(), "client {client} sent nothing");
        for sent in log {
            let pre = sent.written_at < term_at;
            match &sent.outcome {
                Ok((answered_at, r)) => {
                    let review: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                        panic!(
                            "client {client}: HTTP {} not JSON ({e}): {}",
                            r.status,
                            r.text()
                        )
                    });
                    let uid = &uids.iter().find(|(_, a)| *a == sent.allowed).unwrap().0;
                    assert_verdict(r.status, &review, uid, sent.allowed);
                    match (pre, *answered_at < term_at) {
                        (true, true) => before += 1,
                        (true, false) => in_flight += 1,
                        _ => after += 1,
                    }
                }
                // A request fully written before SIGTERM must be answered.
                Err(e) if pre => panic!(
                    "client {client}: a request written before SIGTERM got no complete answer: {e}"
                ),
                // Written after SIGTERM and the connection closed before any
                // byte of an answer: not taken on, the client can retry.
                Err(ReadFailure::ClosedBeforeResponse(_)) => unsent_after += 1,
                Err(e) => panic!("client {client}: a response was cut: {e}"),
            }
        }
        // Every busy connection was told to close (Connection: close) on
        // its last answer rather than cut.
        let last = log.last().unwrap();
        assert!(
            matches!(&last.outcome, Ok((_, r)) if r.header("connection") == Some("close")),
            "client {client}: the last answer did not say Connection: close: {:?}",
            last.outcome
        );
    }
    eprintln!(
        "SIGTERM under load: {CLIENTS} clients; {before} answered before, {in_flight} in flight at SIGTERM and answered, {after} sent and answered after, {unsent_after} refused cleanly after; exit 0 after {exited_after:?}"
    );
    assert!(
        in_flight >= 1,
        "no request was in flight at SIGTERM: the drill tested nothing"
    );
    assert_eq!(
        unsent_after, 0,
        "during the drain grace, requests on open connections are still answered"
    );
}

// --- 6. a burst of 10x the steady rate -------------------------------------

/// A fake API server with the fixture cluster, whose live re-reads of
/// `payments`' policies (made before every require-network-policy denial)
/// take `slow`: a judgement that holds its slot that long.
async fn slow_cluster(slow: Duration) -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    for o in netpol_guard::manifests::load_paths(&[fixtures_cluster()]).unwrap() {
        fake.apply_object(&o.object);
    }
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "netpol-guard", "labels": {"kubernetes.io/metadata.name": "netpol-guard"}}}));
    fake.delay_requests(
        RequestMatcher::path("/apis/networking.k8s.io/v1/namespaces/payments/networkpolicies")
            .watch(false),
        slow,
        usize::MAX,
    );
    fake
}

/// How one burst request ended.
enum BurstOutcome {
    Judged,
    Shed,
}

/// Sends `n` requests back to back on `c`; each must be a correct 200 or a
/// 503 with `Retry-After: 1` and a one-line reason, never a connection error.
async fn burst_client(mut c: Client, n: usize, first: usize) -> Vec<BurstOutcome> {
    let names = [
        "deployment-create-uncovered.json",
        "deployment-create-covered.json",
    ];
    let mut out = Vec::new();
    for i in 0..n {
        let name = names[(first + i) % 2];
        let body = fixture(name);
        let a = send(&mut c, "POST", "/validate", body.clone())
            .await
            .unwrap_or_else(|e| panic!("connection error during the burst: {e}"));
        match a.status {
            200 => {
                assert_verdict(200, &a.json(), &uid_of(&body), expected_allowed(name));
                out.push(BurstOutcome::Judged);
            }
            503 => {
                assert_eq!(
                    a.headers.get("retry-after").map(|v| v.as_bytes()),
                    Some(&b"1"[..])
                );
                assert_eq!(
                    a.text(),
                    "netpol-guard is overloaded: 2 admission requests are already being judged (--max-in-flight); retry in a second\n"
                );
                out.push(BurstOutcome::Shed);
            }
            other => panic!("HTTP {other} during the burst: {}", a.text()),
        }
    }
    out
}

fn shed_total(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("netpol_guard_shed_requests_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_6_a_burst_of_ten_times_the_steady_rate_is_shed_with_503_never_a_crash() {
    const MAX_IN_FLIGHT: usize = 2;
    const SLOW: Duration = Duration::from_millis(300);
    let _one_at_a_time = SERIAL.lock().await;
    let fake = slow_cluster(SLOW).await;
    // Every denial waits for a slow read of its own (no reuse of a recent
    // one): that is the load that fills the slots.
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "netpol-guard", "namespace": "netpol-guard"},
        "data": {"config.yaml": "liveReadReuseMillis: 0\n"}}));
    let max = MAX_IN_FLIGHT.to_string();
    let Served {
        mut server,
        dir: _dir,
    } = fake.serve(
        &[
            "--namespace",
            "netpol-guard",
            "--no-baseline",
            "--max-in-flight",
            &max,
        ],
        None,
    );
    let ep = Endpoint::of(&server);
    let mut ops = ep.http1().await.unwrap();
    let ready_by = Instant::now() + Duration::from_secs(15);
    while send(&mut ops, "GET", "/readyz", Bytes::new())
        .await
        .unwrap()
        .status
        != 200
    {
        assert!(Instant::now() < ready_by, "not ready within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Steady: as many clients as slots, so nothing is shed.
    let steady_started = Instant::now();
    let mut steady = JoinSet::new();
    for id in 0..MAX_IN_FLIGHT {
        let c = ep.http1().await.unwrap();
        steady.spawn(burst_client(c, 6, id));
    }
    let mut steady_outcomes = Vec::new();
    while let Some(o) = steady.join_next().await {
        steady_outcomes.extend(o.unwrap());
    }
    let steady_took = steady_started.elapsed();
    let steady_rate = steady_outcomes.len() as f64 / steady_took.as_secs_f64();
    assert!(
        steady_outcomes
            .iter()
            .all(|o| matches!(o, BurstOutcome::Judged)),
        "shed at the steady rate"
    );

    // The burst: ten times as many clients at once, on open connections.
    let burst_clients = 10 * MAX_IN_FLIGHT;
    let mut conns = Vec::new();
    for _ in 0..burst_clients {
        conns.push(ep.http1().await.unwrap());
    }
    let burst_started = Instant::now();
    let mut burst = JoinSet::new();
    for (id, c) in conns.into_iter().enumerate() {
        burst.spawn(burst_client(c, 5, id));
    }
    // Health, readiness and metrics are never shed, even now.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let a = send(&mut ops, "GET", path, Bytes::new()).await.unwrap();
        assert_eq!(a.status, 200, "{path} during the burst: {}", a.text());
    }
    let (mut judged, mut shed) = (0u64, 0u64);
    while let Some(o) = burst.join_next().await {
        for o in o.unwrap() {
            match o {
                BurstOutcome::Judged => judged += 1,
                BurstOutcome::Shed => shed += 1,
            }
        }
    }
    let burst_took = burst_started.elapsed();
    eprintln!(
        "burst: steady {} requests from {MAX_IN_FLIGHT} clients at {steady_rate:.1}/s in {steady_took:?}; burst of {burst_clients} clients: {judged} judged, {shed} shed (503) in {burst_took:?}",
        steady_outcomes.len()
    );
    assert!(shed >= 1, "nothing was shed: the burst did not overload");
    assert!(judged >= MAX_IN_FLIGHT as u64, "the slots kept working");
    assert_alive(&mut server);
    let metrics = send(&mut ops, "GET", "/metrics", Bytes::new())
        .await
        .unwrap()
        .text();
    assert_eq!(
        shed_total(&metrics),
        shed,
        "netpol_guard_shed_requests_total counts every 503:\n{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "netpol_guard_shed_requests_total{{endpoint=\"/validate\"}} {shed}\n"
        )),
        "{metrics}"
    );
    // Overload over: everything is judged again.
    let c = ep.http1().await.unwrap();
    let after = burst_client(c, 4, 0).await;
    assert!(after.iter().all(|o| matches!(o, BurstOutcome::Judged)));
    healthy(&ep).await;
}

/// A memory figure of a process from `/proc/PID/status`, in bytes (Linux):
/// `VmRSS` (resident now) or `VmHWM` (peak resident so far).
fn status_bytes(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmRSS")
}

/// Announces a body of just under `maxBodyBytes`, sends all of it but the
/// last byte, and holds the connection: what the adversarial review did 64
/// and 128 times at once (RSS 374 MB and 784 MB, past the Deployment's
/// 256Mi). Returns what became of it.
async fn partial_body(ep: Endpoint, hold: Duration) -> PartialBody {
    let len = 4 * MIB - 1;
    let Ok(mut s) = ep.tls(&[b"http/1.1"]).await else {
        return PartialBody::NoConnection;
    };
    let head = format!(
        "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).await.is_err() {
        return PartialBody::NoConnection;
    }
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0u64;
    let mut cut_short = false;
    while sent < len - 1 {
        let n = chunk
            .len()
            .min(usize::try_from(len - 1 - sent).unwrap_or(0));
        if s.write_all(&chunk[..n]).await.is_err() {
            cut_short = true; // refused and closed: the answer is waiting
            break;
        }
        sent += n as u64;
    }
    let _ = s.flush().await;
    let answer = read_response(&mut s, hold).await.ok().map(|r| r.status);
    drop(s);
    match answer {
        Some(status) => PartialBody::Answered(status),
        // The server closed while most of the body was still owed, having
        // read none of it: a refusal whose 503 the client could not read
        // (closing a socket with unread data sends a reset, and a reset
        // discards what the client had not read yet). A body the server
        // took is sent in full and then held.
        None if cut_short => PartialBody::ClosedUnread,
        None => PartialBody::Held,
    }
}

/// What became of one partial body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PartialBody {
    Answered(u16),
    /// Closed by the server before the body was sent, answer unreadable.
    ClosedUnread,
    /// Sent but for its last byte, and held without an answer.
    Held,
    NoConnection,
}

impl PartialBody {
    /// Refused before the server buffered it.
    fn refused(self) -> bool {
        matches!(self, Self::Answered(503) | Self::ClosedUnread)
    }
}

/// Issue 13: request bodies are buffered within a global budget
/// (`--max-body-buffer`, 64 MiB by default); a body that does not fit gets
/// 503 before any of it is read. Memory stays bounded, and a well-formed
/// request from another client keeps being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_7_partial_bodies_cannot_exhaust_memory() {
    let _one_at_a_time = SERIAL.lock().await;
    let mut server = Server::start(&fixtures_cluster(), &[]);
    let ep = Endpoint::of(&server);
    let pid = server.child.id();
    let before = rss_bytes(pid);
    let mut attackers = JoinSet::new();
    for _ in 0..128 {
        attackers.spawn(partial_body(ep.clone(), Duration::from_secs(6)));
    }
    // Meanwhile, the API server's own requests are answered.
    let mut c = ep.http1().await.unwrap();
    let body = fixture("deployment-create-covered.json");
    let mut peak = before;
    let mut served = 0;
    let mut took = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        let sent = Instant::now();
        let r = send(&mut c, "POST", "/validate", body.clone())
            .await
            .expect("an answer during the attack");
        took.push(sent.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
        served += 1;
        peak = peak.max(rss_bytes(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut refused = 0;
    let mut outcomes = std::collections::BTreeMap::new();
    while let Some(answer) = attackers.join_next().await {
        peak = peak.max(rss_bytes(pid));
        let answer = answer.unwrap();
        *outcomes.entry(answer).or_insert(0) += 1;
        if answer.refused() {
            refused += 1;
        }
    }
    println!("drill 7: partial bodies: {outcomes:?}");
    took.sort();
    let p99 = took[(took.len() * 99 / 100).min(took.len() - 1)];
    println!(
        "drill 7: RSS {} MiB before, peak {} MiB; {refused} of 128 partial bodies refused (503, or closed with the body unread); {served} requests served meanwhile, p50 {:?}, p99 {p99:?}, max {:?}",
        before / MIB,
        peak / MIB,
        took[took.len() / 2],
        took[took.len() - 1]
    );
    // The budget holds 16 such bodies at once; the rest are refused as
    // they arrive (112 on a quiet machine). Bodies held until cut free room
    // for late arrivals, so a few more may be taken; nothing else may
    // happen to them. (On a machine loaded far past its cores this drill
    // means little: at a load average of 14 on 2 cores, 95 were refused
    // and a review took 6 s.)
    assert!(
        refused >= 100,
        "only {refused} of 128 were refused: {outcomes:?}"
    );
    assert!(
        outcomes
            .keys()
            .all(|o| o.refused() || *o == PartialBody::Held),
        "{outcomes:?}"
    );
    // 64 MiB of budget, plus connection buffers and what the allocator
    // keeps, under the Deployment's 256Mi limit with room to spare (before
    // the budget: 784 MB; measured here 120 to 150 MiB).
    assert!(
        peak < 200 * MIB,
        "RSS grew from {} MiB to {} MiB",
        before / MIB,
        peak / MIB
    );
    assert!(served > 10);
    let m = ep.http1().await.unwrap().get("/metrics").await.text();
    assert!(
        m.contains("netpol_guard_shed_requests_total{endpoint=\"body-buffer\"}"),
        "{m}"
    );
    assert_alive(&mut server);
}

// --- 8. everything at once, in live mode ------------------------------------

/// Peak resident memory of a process so far, in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM")
}

/// A valid NetworkPolicy in unmanaged namespace `legacy` carrying a 250 KB
/// annotation: what the review filled the watch cache with.
fn bloated_policy(i: usize, filler: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": format!("bloat-{i}"), "namespace": "legacy",
            "annotations": {"bloat": filler}},
        "spec": {"podSelector": {"matchLabels": {"app": format!("a{i}")}},
            "ingress": [{"from": [{"podSelector": {}}]}]}})
}

/// Issue 13, "the bar": every attack of the adversarial review at once,
/// against a live-mode replica (watches on a fake API server):
/// - 800 policies with 250 KB annotations before it starts (a fresh
///   replica's sync), and 200 more created during the attack;
/// - 128 connections each holding 4 MiB − 1 of a 4 MiB body;
/// - 200 HTTP/2 preface-only connections;
/// - 200 forged reviews for a namespace that does not exist;
/// - 100 forged uncovered workloads (each a live re-read before denial);
/// - 20 reviews with a 1 MB `apiVersion`.
///
/// Peak RSS (VmHWM, sync included) stays under the Deployment's 256Mi
/// limit, a separate client's well-formed reviews are all answered
/// correctly (p99 printed for the drill report), the unknown namespace is
/// never listed, and the live re-reads stay coalesced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drill_8_all_attacks_at_once_stay_under_the_memory_limit_and_admission_works() {
    let _one_at_a_time = SERIAL.lock().await;
    raise_open_files(4096);
    let fake = Arc::new(slow_cluster(Duration::from_millis(20)).await);
    let filler = "x".repeat(250 * 1024);
    for i in 0..800 {
        fake.apply_object(&bloated_policy(i, &filler));
    }
    let Served {
        mut server,
        dir: _dir,
    } = fake.serve(&["--namespace", "netpol-guard", "--no-baseline"], None);
    let ep = Endpoint::of(&server);
    let pid = server.child.id();
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c = ep.http1().await.unwrap();
        if send(&mut c, "GET", "/readyz", Bytes::new())
            .await
            .map(|r| r.status)
            .ok()
            == Some(200)
        {
            break;
        }
        assert!(Instant::now() < ready_by, "not ready within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let synced_peak = peak_rss_bytes(pid);
    let synced = rss_bytes(pid);
    let lists_before = fake.requests().len();

    let mut attacks = JoinSet::new();
    for _ in 0..128 {
        let ep = ep.clone();
        attacks.spawn(async move {
            partial_body(ep, Duration::from_secs(6)).await;
        });
    }
    for _ in 0..200 {
        let ep = ep.clone();
        attacks.spawn(async move {
            if let Ok(mut s) = ep.tls(&[b"h2"]).await {
                let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
                let _ = wait_closed(&mut s, Duration::from_secs(6)).await;
            }
        });
    }
    let forged_ns = String::from_utf8(fixture("deployment-create-uncovered.json").to_vec())
        .unwrap()
        .replace("\"payments\"", "\"no-such-namespace\"");
    let uncovered = fixture("deployment-create-uncovered.json");
    let huge = {
        let mut review: Value =
            serde_json::from_slice(&fixture("deployment-create-covered.json")).unwrap();
        review["apiVersion"] = json!("v".repeat(1024 * 1024));
        Bytes::from(serde_json::to_vec(&review).unwrap())
    };
    for _ in 0..10 {
        let ep = ep.clone();
        let forged_ns = Bytes::from(forged_ns.clone());
        let uncovered = uncovered.clone();
        let huge = huge.clone();
        attacks.spawn(async move {
            let Ok(mut c) = ep.http1().await else { return };
            for i in 0..32 {
                let body = match i % 16 {
                    0..=9 => forged_ns.clone(),
                    10..=14 => uncovered.clone(),
                    _ => huge.clone(),
                };
                if send(&mut c, "POST", "/validate", body).await.is_err() {
                    match ep.http1().await {
                        Ok(fresh) => c = fresh,
                        Err(_) => return,
                    }
                }
            }
        });
    }
    {
        let fake = fake.clone();
        let filler = filler.clone();
        attacks.spawn(async move {
            for i in 800..1000 {
                fake.apply_object(&bloated_policy(i, &filler));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }

    // Meanwhile, the API server's own requests.
    let mut c = ep.http1().await.unwrap();
    let body = fixture("deployment-create-covered.json");
    let uid = uid_of(&body);
    let mut took = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) {
        let sent = Instant::now();
        let r = match send(&mut c, "POST", "/validate", body.clone()).await {
            Ok(r) => r,
            Err(e) => panic!("no answer to a well-formed review during the attack: {e}"),
        };
        took.push(sent.elapsed());
        assert_verdict(r.status, &r.json(), &uid, true);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while attacks.join_next().await.is_some() {}
    let peak = peak_rss_bytes(pid);
    took.sort();
    let p99 = took[(took.len() * 99 / 100).min(took.len() - 1)];
    let requests = fake.requests();
    let unknown_lists = requests
        .iter()
        .filter(|r| r.path.contains("/namespaces/no-such-namespace/"))
        .count();
    let rereads = requests[lists_before..]
        .iter()
        .filter(|r| {
            r.path == "/apis/networking.k8s.io/v1/namespaces/payments/networkpolicies"
                && !r.is_watch()
        })
        .count();
    println!(
        "drill 8: RSS {} MiB after syncing 800 policies of 250 KB (peak {} MiB while syncing); peak {} MiB under every \
         attack at once; {} well-formed reviews served meanwhile, p50 {:?}, p99 {p99:?}, max {:?}; {rereads} live \
         re-reads of payments for 100 forged uncovered workloads; {unknown_lists} reads of the unknown namespace",
        synced / MIB,
        synced_peak / MIB,
        peak / MIB,
        took.len(),
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert!(
        peak < 256 * MIB,
        "peak RSS {} MiB: over the Deployment's 256Mi limit",
        peak / MIB
    );
    assert!(took.len() > 20, "only {} reviews served", took.len());
    assert_eq!(
        unknown_lists, 0,
        "a namespace the API server says is absent is never listed"
    );
    assert!(
        rereads < 100,
        "{rereads} re-reads for 100 forged uncovered workloads: not coalesced"
    );
    assert_alive(&mut server);
}

//! TLS and HTTP: the accept loop with its connection limits and timeouts,
//! HTTP/2 (what kube-apiserver speaks to a webhook that offers it, over one
//! connection) and HTTP/1.1 keep-alive, and the drain on SIGTERM.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long shutdown waits for in-flight requests before exiting anyway.
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// At shutdown, how long open HTTP/1.1 connections may still bring requests
/// (each answered with `Connection: close`) before idle ones are closed.
/// Closing an idle keep-alive connection races with a client that is just
/// sending on it; a busy client instead learns from the header to stop.
pub(super) const IDLE_GRACE: Duration = Duration::from_secs(1);
/// Connection-level bounds of the HTTPS (and plain metrics) listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// How long a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers, from the
    /// connection's start or the end of the previous response (slowloris
    /// guard; also closes keep-alive connections idle that long).
    pub header_read_timeout: Duration,
    /// Connections open at once; more are closed as they are accepted.
    pub max_connections: usize,
    /// `--client-ca`: /validate and /mutate answer 403 to a connection
    /// without a verified client certificate.
    pub require_client_cert: bool,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            require_client_cert: false,
        }
    }
}

/// Default of `serve --max-connections`: far above what two API servers
/// keep open, far below what exhausts memory (a connection costs tens of KB).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Serves `app` over TLS on `listener` until `shutdown` completes, then
/// drains (see `drain`) and returns. The protocol follows ALPN: HTTP/2 for
/// `h2`, HTTP/1.1 otherwise, so the header read timeout runs from the first
/// byte a client owes (a client that completes the handshake and then sends
/// nothing is closed after `header_read_timeout`).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    serve_on(
        listener,
        Some(TlsAcceptor::from(tls)),
        app,
        limits,
        shutdown,
    )
    .await;
}

/// As `serve`, over plain HTTP/1.1 (the `--metrics-addr` listener), with the
/// same header timeout and drain.
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    serve_on(listener, None, app, limits, shutdown).await;
}

/// The per-connection service: the router, plus `Connection: close` on
/// HTTP/1.1 responses once shutdown has begun, so a busy keep-alive client
/// stops sending on a connection that is about to close.
pub(super) fn connection_service(
    app: Router,
    draining: watch::Receiver<bool>,
    refuse_admission: bool,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = Response,
    Error = Infallible,
    Future = impl Future<Output = Result<Response, Infallible>> + Send + 'static,
> + Clone {
    let inner = TowerToHyperService::new(app);
    hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let http1 = req.version() < Version::HTTP_2;
        let admission = matches!(req.uri().path(), "/validate" | "/mutate");
        let refused = refuse_admission && admission;
        let response = inner.call(req);
        let draining = draining.clone();
        async move {
            if refused {
                // The body is never read: close after answering.
                let mut refusal = (
                    StatusCode::FORBIDDEN,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "a client certificate signed by the --client-ca is required for admission requests\n",
                )
                    .into_response();
                if http1 {
                    refusal
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return Ok(refusal);
            }
            let mut response = response.await?;
            if http1 && *draining.borrow() {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        }
    })
}

pub(super) async fn serve_on(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let (draining_tx, draining) = watch::channel(false);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Per-connection read buffer (hyper's default grows to ~400 KB):
        // bodies are copied out into their reserved buffer anyway.
        .max_buf_size(64 << 10)
        .keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // HTTP/2 (unless --http2=false): idle connections are pinged and closed
    // when they do not answer, like HTTP/1.1's header read timeout; a client
    // that answers pings is bounded by --max-connections, as an HTTP/1.1
    // client that sends a request now and then is.
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(limits.header_read_timeout))
        .keep_alive_timeout(limits.handshake_timeout)
        .max_header_list_size(64 << 10);
    let (http1, http2) = (Arc::new(http1), Arc::new(http2));
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let last_refusal_warning = Arc::new(AtomicU64::new(0));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Over --max-connections: closed at once, before the handshake.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            drop(stream);
            refused_connection(&last_refusal_warning, limits.max_connections);
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let (http1, http2) = (http1.clone(), http2.clone());
        let mut draining = draining.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let result = match acceptor {
                None => {
                    // Plain HTTP (--metrics-addr) serves no admission.
                    let service = connection_service(app, draining.clone(), false);
                    watcher
                        .watch(http1.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
                    let tls_stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        // Shutting down: a connection still in its handshake
                        // has no request in flight, drop it.
                        _ = draining.wait_for(|d| *d) => return,
                    };
                    // rustls verified any certificate the client sent.
                    let verified = tls_stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|c| !c.is_empty());
                    let service = connection_service(
                        app,
                        draining.clone(),
                        limits.require_client_cert && !verified,
                    );
                    if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        watcher
                            .watch(http2.serve_connection(TokioIo::new(tls_stream), service))
                            .await
                    } else {
                        watcher
                            .watch(http1.serve_connection(TokioIo::new(tls_stream), service))
                            .await
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drain(graceful, &draining_tx).await;
}

/// True for the first call in each wall-clock second (`last` holds the
/// second of the previous one): warnings that anyone can trigger are
/// written at most once a second.
pub(super) fn first_this_second(last: &AtomicU64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    last.swap(now, Ordering::SeqCst) != now
}

/// Counts a connection closed for `--max-connections`, and says so at WARN
/// at most once a second.
pub(super) fn refused_connection(last_warning: &AtomicU64, max: usize) {
    crate::metrics::REFUSED_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    if first_this_second(last_warning) {
        tracing::warn!(
            max_connections = max,
            "too many connections: closing new ones (netpol_guard_refused_connections_total counts them)"
        );
    }
}

/// Shutdown, once the listener is closed. Requests already received are
/// answered. For `IDLE_GRACE`, open connections keep being served and every
/// HTTP/1.1 response says `Connection: close` (the connection closes after
/// it), so a client that keeps sending learns to stop instead of being cut;
/// then connections still idle are closed (HTTP/2 gets GOAWAY) and requests
/// still being judged finish, all within `DRAIN_TIMEOUT` of the signal.
/// (Closing an idle keep-alive connection races with a request the client
/// sends at that very moment, as with any HTTP/1.1 server; the grace period
/// leaves only connections that sat idle through it.) Connections still in
/// their TLS handshake are dropped at once.
pub(super) async fn drain(graceful: GracefulShutdown, draining: &watch::Sender<bool>) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    draining.send_replace(true);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: not accepting; draining in-flight requests"
    );
    let grace_end = tokio::time::Instant::now() + IDLE_GRACE.min(DRAIN_TIMEOUT);
    while graceful.count() > 0 && tokio::time::Instant::now() < grace_end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match tokio::time::timeout_at(deadline, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("drain timed out; exiting with connections still open"),
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

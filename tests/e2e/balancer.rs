//! Loopback TCP forwarders: the balancer that spreads the API server's
//! webhook connections over both replicas (as a Service would), and a
//! pausable link between a replica and the API server (a paused link holds
//! every byte: the replica's API calls hang, as on a broken network).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP forwarder on 127.0.0.1; stops with the runtime it was started on.
pub struct Forwarder {
    pub addr: SocketAddr,
    paused: watch::Sender<bool>,
    /// Which backends receive connections: a Service's ready endpoints.
    enabled: watch::Sender<Vec<bool>>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
}

impl Forwarder {
    /// Forwards each connection to the next backend that accepts it (round
    /// robin), on `rt`.
    pub fn start(rt: &tokio::runtime::Runtime, backends: Vec<SocketAddr>) -> Forwarder {
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the forwarder");
        let addr = listener.local_addr().expect("forwarder address");
        let (paused, rx) = watch::channel(false);
        let (enabled, enabled_rx) = watch::channel(vec![true; backends.len()]);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        rt.spawn(async move {
            let next = Arc::new(AtomicUsize::new(0));
            let backends = Arc::new(backends);
            while let Ok((client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let (backends, next, rx) = (backends.clone(), next.clone(), rx.clone());
                let mut enabled = enabled_rx.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    wait_resumed(rx.clone()).await;
                    let start = next.fetch_add(1, Ordering::SeqCst);
                    for i in 0..backends.len() {
                        let index = (start + i) % backends.len();
                        if !enabled.borrow().get(index).copied().unwrap_or(false) {
                            continue;
                        }
                        if let Ok(server) = TcpStream::connect(backends[index]).await {
                            let _ = server.set_nodelay(true);
                            // Closed when the backend is taken out, as a
                            // Service's proxy resets flows to a removed endpoint.
                            let removed = async move {
                                let _ = enabled
                                    .wait_for(|e| !e.get(index).copied().unwrap_or(false))
                                    .await;
                            };
                            tokio::select! {
                                () = pipe(client, server, rx) => {}
                                () = removed => {}
                            }
                            return;
                        }
                    }
                    // No backend: the client sees the connection close, as
                    // with a Service without endpoints.
                });
            }
        });
        Forwarder {
            addr,
            paused,
            enabled,
            accepted,
        }
    }

    /// Takes backend `index` out of rotation (its open connections close),
    /// as a failing readiness probe takes a pod out of a Service.
    pub fn disable(&self, index: usize) {
        self.enabled.send_modify(|e| {
            if let Some(x) = e.get_mut(index) {
                *x = false;
            }
        });
    }

    pub fn enable(&self, index: usize) {
        self.enabled.send_modify(|e| {
            if let Some(x) = e.get_mut(index) {
                *x = true;
            }
        });
    }

    /// Holds every byte in both directions (and new connections) until
    /// resumed.
    pub fn pause(&self) {
        let _ = self.paused.send(true);
    }

    pub fn resume(&self) {
        let _ = self.paused.send(false);
    }
}

async fn wait_resumed(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|paused| !paused).await;
}

async fn pipe(client: TcpStream, server: TcpStream, rx: watch::Receiver<bool>) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // Not spawned: dropping this future closes both connections.
    tokio::join!(copy(cr, sw, rx.clone()), copy(sr, cw, rx));
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rx: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        wait_resumed(rx.clone()).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        wait_resumed(rx.clone()).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

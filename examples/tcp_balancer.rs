//! A loopback TCP round-robin forwarder for `benches/apiserver/`: the
//! API server reaches two webhook replicas through it, as through a
//! Service. Each accepted connection goes to the next backend in turn (the
//! following one if that one refuses); bytes are copied both ways until
//! either side closes. TLS passes through untouched.
//!
//! The same forwarder sits in front of netpol-guard and of the minimal
//! webhook, so its cost (one extra loopback hop and two copies per byte,
//! its own CPU) is in both configurations alike; the benchmark reports its
//! CPU separately.
//!
//! ```sh
//! cargo run --release --example tcp_balancer -- 127.0.0.1:0 127.0.0.1:9001 127.0.0.1:9002
//! ```
//! prints `listening on 127.0.0.1:PORT` on stdout once it accepts.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .ok_or("usage: tcp_balancer LISTEN BACKEND...")?
        .parse()?;
    let backends: Vec<SocketAddr> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if backends.is_empty() {
        return Err("usage: tcp_balancer LISTEN BACKEND...".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(listen, Arc::new(backends)))
}

async fn serve(listen: SocketAddr, backends: Arc<Vec<SocketAddr>>) -> Result<(), Error> {
    let listener = TcpListener::bind(listen).await?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on {}", listener.local_addr()?)?;
    out.flush()?;
    let next = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off, keep serving.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (backends, next) = (backends.clone(), next.clone());
        tokio::spawn(async move {
            let start = next.fetch_add(1, Ordering::Relaxed);
            for i in 0..backends.len() {
                let backend = backends[(start + i) % backends.len()];
                if let Ok(server) = TcpStream::connect(backend).await {
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (mut client, mut server) = (client, server);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    return;
                }
            }
            // No backend answers: the client sees the connection close.
        });
    }
}

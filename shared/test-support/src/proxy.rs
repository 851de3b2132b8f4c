//! A TCP proxy a test can cut and restore, to see how a service behaves
//! while its database is unreachable; reset (open connections break, new
//! ones pass); or blackhole: connections stay open and nothing gets
//! through, as when a node is lost or a NAT drops a flow.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: AbortHandle,
}

#[derive(Default)]
struct State {
    cut: AtomicBool,
    blackholed: AtomicBool,
    links: Mutex<Vec<AbortHandle>>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(State::default());
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let state = shared.clone();
                let link = tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::join!(
                            pump(client_read, server_write, &state),
                            pump(server_read, client_write, &state),
                        );
                    }
                });
                shared
                    .links
                    .lock()
                    .expect("links")
                    .push(link.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            state,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Breaks every open connection and refuses new ones.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.reset();
    }

    /// Breaks every open connection, as a crash of a middlebox or a peer's
    /// reset does, and goes on accepting new ones.
    pub fn reset(&self) {
        for link in self.state.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
        self.state.blackholed.store(false, Ordering::SeqCst);
    }

    /// Keeps every connection open but lets nothing through, either way,
    /// until `restore`: neither side hears that the other is gone.
    pub fn blackhole(&self) {
        self.state.blackholed.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either closes, swallowing what arrives while
/// blackholed; a close while blackholed is swallowed too (the link stays
/// open and silent until the proxy drops it), so each side can notice the
/// silence only by itself.
async fn pump(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, state: &State) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) if state.blackholed.load(Ordering::SeqCst) => {
                std::future::pending::<()>().await;
            }
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if state.blackholed.load(Ordering::SeqCst) {
                    continue;
                }
                if to.write_all(&buffer[..read]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

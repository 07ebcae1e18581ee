//! A TCP gate in front of a test server: while open it passes every
//! connection through; closed, it does not listen (connections are
//! refused) and the connections it passed are cut. It opens again on the
//! same port, so a URL given to the daemon stays valid.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub struct Gate {
    pub addr: SocketAddr,
    target: SocketAddr,
    /// The accept loop while open (it owns the listener and the connections).
    open: Mutex<Option<JoinHandle<()>>>,
}

impl Gate {
    /// An open gate on a free port of 127.0.0.1 to `target`.
    pub async fn start(target: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gate");
        let addr = listener.local_addr().expect("gate addr");
        Gate {
            addr,
            target,
            open: Mutex::new(Some(tokio::spawn(pass(listener, target)))),
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.lock().expect("gate").is_some()
    }

    /// Stops listening and cuts the connections passed (when this returns,
    /// a connection is refused).
    pub async fn close(&self) {
        let task = self.open.lock().expect("gate").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port (retried while the port is not free
    /// yet, up to a generous deadline).
    pub async fn open(&self) -> std::io::Result<()> {
        if self.is_open() {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if std::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        *self.open.lock().expect("gate") = Some(tokio::spawn(pass(listener, self.target)));
        Ok(())
    }
}

/// Accepts and passes each connection through to `target`; dropped (the
/// gate closed), it drops the listener and every connection with it.
async fn pass(listener: TcpListener, target: SocketAddr) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { continue };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

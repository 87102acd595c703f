//! The state of the API server's listener (address, TLS, stop switch), kept
//! in `Sim` so fault injection can stop and restart it; `api::listener`
//! acts on it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The running (or stopped) listener of one cluster.
#[derive(Default)]
pub struct ListenerCtl {
    pub(super) inner: Mutex<Inner>,
}

#[derive(Default)]
pub(super) struct Inner {
    pub(super) addr: Option<SocketAddr>,
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    /// The cluster-wide shutdown (the Handle's).
    pub(super) global: Option<watch::Receiver<bool>>,
    /// Stops this incarnation of the listener and its connections.
    pub(super) stop: Option<Arc<watch::Sender<bool>>>,
    pub(super) task: Option<JoinHandle<()>>,
}

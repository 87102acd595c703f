//! The API server's listener, which fault injection can stop and restart on
//! the same address while the store (and controllers) keep running.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::sim::Sim;

/// Serve on `listener` (first start, from `kubesim::start`).
pub fn install(
    sim: &Arc<Sim>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    global: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    {
        let mut g = sim.listener.inner.lock().expect("listener lock");
        g.addr = Some(addr);
        g.tls = tls;
        g.global = Some(global);
    }
    spawn(sim, listener);
    Ok(())
}

fn spawn(sim: &Arc<Sim>, listener: TcpListener) {
    let mut g = sim.listener.inner.lock().expect("listener lock");
    let (tx, rx) = watch::channel(false);
    let tx = Arc::new(tx);
    if let Some(mut global) = g.global.clone() {
        let tx = tx.clone();
        let mut local = rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = super::http::stopped(&mut global) => { let _ = tx.send(true); }
                _ = super::http::stopped(&mut local) => {}
            }
        });
    }
    let task = tokio::spawn(super::server::serve(
        sim.clone(),
        listener,
        g.tls.clone(),
        rx,
    ));
    g.stop = Some(tx);
    g.task = Some(task);
}

/// Whether the listener is accepting connections.
pub fn running(sim: &Sim) -> bool {
    sim.listener
        .inner
        .lock()
        .expect("listener lock")
        .task
        .is_some()
}

/// Stop accepting connections and close the open ones (gracefully: open
/// watches end, idle connections close). The store is kept.
pub async fn stop(sim: &Sim) {
    let (stop, task) = {
        let mut g = sim.listener.inner.lock().expect("listener lock");
        (g.stop.take(), g.task.take())
    };
    if let Some(s) = stop {
        let _ = s.send(true);
    }
    if let Some(t) = task {
        let _ = t.await;
    }
}

/// Listen again on the address of the first start.
pub async fn start(sim: &Arc<Sim>) -> std::io::Result<()> {
    let addr = {
        let g = sim.listener.inner.lock().expect("listener lock");
        if g.task.is_some() {
            return Ok(());
        }
        g.addr
    };
    let Some(addr) = addr else {
        return Err(std::io::Error::other("the listener was never started"));
    };
    let listener = TcpListener::bind(addr).await?;
    spawn(sim, listener);
    Ok(())
}

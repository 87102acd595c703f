//! `kubesim`: run a simulated Kubernetes control plane until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// A simulated Kubernetes control plane (API server, controllers, scheduler, kubelet).
#[derive(Debug, Parser)]
#[command(name = "kubesim", version)]
struct Args {
    /// Write an admin kubeconfig here once the server is ready.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Number of simulated nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Allocatable cpu per node.
    #[arg(long, default_value = "2")]
    node_cpu: String,
    /// Allocatable memory per node.
    #[arg(long, default_value = "4Gi")]
    node_memory: String,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long)]
    http: bool,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Extra namespaces to create (repeatable).
    #[arg(long = "namespace")]
    namespaces: Vec<String>,
    /// Serve the plain-HTTP admin API (fault injection, metrics) on this
    /// address, e.g. 127.0.0.1:9090 (see the crate README).
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = kubesim::Config {
        nodes: args.nodes,
        node_cpu: args.node_cpu,
        node_memory: args.node_memory,
        speed: args.speed,
        tls: !args.http,
        bind: SocketAddr::from(([127, 0, 0, 1], args.port)),
        namespaces: args.namespaces,
        ..Default::default()
    };
    let sim = kubesim::start(config).await?;
    if let Some(path) = &args.kubeconfig {
        sim.write_kubeconfig(path)?;
        tracing::info!(path = %path.display(), "kubeconfig written");
    }
    let (admin_stop, admin_rx) = tokio::sync::watch::channel(false);
    let admin = match args.admin_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "admin API listening");
            Some(tokio::spawn(kubesim::api::admin::serve(
                sim.sim.clone(),
                listener,
                admin_rx,
            )))
        }
        None => None,
    };
    println!("{}", sim.base_url);
    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = admin_stop.send(true);
    if let Some(a) = admin {
        let _ = a.await;
    }
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

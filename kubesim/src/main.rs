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
    /// Serve the simulated pods' metrics (Prometheus text, `/metrics`) over
    /// plain HTTP on this address, e.g. 127.0.0.1:9100.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Refuse streaming lists (`sendInitialEvents=true`) with 422, as an API
    /// server with the WatchList feature gate off (1.33, or before 1.32).
    #[arg(long)]
    no_watch_list: bool,
    /// Run a simulated cluster autoscaler whose node group grows up to N
    /// nodes (default with --autoscaler-delay: nodes + 2).
    #[arg(long, value_name = "N")]
    autoscaler_max_nodes: Option<usize>,
    /// Run a simulated cluster autoscaler that adds a node this long
    /// (simulated) after deciding to scale up, e.g. 30s, 2m, 500ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    autoscaler_delay: Option<std::time::Duration>,
    /// Seed of the kubelet's start-up variation (pull and start times).
    #[arg(long)]
    startup_seed: Option<u64>,
}

/// `30s`, `2m`, `1m30s`, `500ms`, `1h`: a duration as Go and kubectl write it.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?} (use e.g. 30s, 2m, 500ms)");
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * unit;
        rest = &rest[unit_len..];
    }
    Ok(std::time::Duration::from_secs_f64(total))
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
    let autoscaler =
        (args.autoscaler_max_nodes.is_some() || args.autoscaler_delay.is_some()).then(|| {
            kubesim::AutoscalerConfig {
                max_nodes: args.autoscaler_max_nodes.unwrap_or(args.nodes + 2),
                scale_up_delay: args
                    .autoscaler_delay
                    .unwrap_or(kubesim::AutoscalerConfig::default().scale_up_delay),
            }
        });
    let config = kubesim::Config {
        autoscaler,
        startup_seed: args
            .startup_seed
            .unwrap_or(kubesim::Config::default().startup_seed),
        nodes: args.nodes,
        node_cpu: args.node_cpu,
        node_memory: args.node_memory,
        speed: args.speed,
        tls: !args.http,
        bind: SocketAddr::from(([127, 0, 0, 1], args.port)),
        namespaces: args.namespaces,
        metrics_listen: args.metrics_listen,
        watch_list: !args.no_watch_list,
        ..Default::default()
    };
    let sim = kubesim::start(config).await?;
    if let Some(addr) = sim.metrics_addr {
        tracing::info!(%addr, "pod metrics listening");
    }
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

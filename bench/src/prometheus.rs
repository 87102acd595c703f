//! A real Prometheus (Debian's `/usr/bin/prometheus`, installed by
//! `.ci/install.sh`) for the metric-gate rows: it scrapes the bench's
//! kubesim pod metrics (`Config::metrics_listen`) every second, on a free
//! loopback port with its own storage directory, and is killed on drop.
//! Without the binary those rows are skipped with [`MISSING`].

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

pub const BIN: &str = "/usr/bin/prometheus";
pub const MISSING: &str =
    "needs Prometheus (/usr/bin/prometheus, Debian package prometheus) for the metric gate";

pub fn available() -> bool {
    Path::new(BIN).is_file()
}

pub struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One plain HTTP/1.0 GET on loopback: the status code and the body.
async fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

impl Prometheus {
    /// Start scraping `target` and wait until it answers `/-/ready` and
    /// has scraped the target once (`up == 1`).
    pub async fn start(target: SocketAddr) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, kubesim::metrics::prometheus_config(target))?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let port = free_port()?;
        let child = kubesim::metrics::prometheus_command(BIN, &config, dir.path(), port)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("{BIN}: {e}"))?;
        let mut p = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                anyhow::bail!("prometheus exited ({status}):\n{}", p.log());
            }
            if let Ok((200, body)) = get(port, "/api/v1/query?query=up%3D%3D1").await
                && body.contains("\"value\"")
            {
                return Ok(p);
            }
            if Instant::now() >= deadline {
                anyhow::bail!("prometheus never scraped kubesim:\n{}", p.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

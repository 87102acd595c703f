//! A real Prometheus (Debian's `/usr/bin/prometheus`, installed by
//! `.ci/install.sh`) scraping one kubesim's pod metrics every second, on a
//! free loopback port with its own storage directory; killed on drop. One
//! per test: it is ready in under a second, so tests stay independent and
//! run in parallel.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use tokio::time::Instant;

use crate::support::free_port;

pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

pub struct Prometheus {
    child: Child,
    pub port: u16,
    /// Basic-auth credentials the server requires (its web config), if any.
    pub auth: Option<(String, String)>,
    dir: tempfile::TempDir,
    /// How long it took to answer `/-/ready`.
    pub started_in: Duration,
}

impl Prometheus {
    /// Scrape `target` (a kubesim `metrics_addr`) every second.
    pub async fn start(target: SocketAddr) -> Prometheus {
        Self::start_with(target, None).await
    }

    /// As [`start`](Self::start), the HTTP API behind basic auth
    /// (`--web.config.file` with a bcrypt hash) when `auth` is given.
    pub async fn start_with(target: SocketAddr, auth: Option<(&str, &str)>) -> Prometheus {
        assert!(
            std::path::Path::new(PROMETHEUS_BIN).exists(),
            "{PROMETHEUS_BIN} is missing: run .ci/install.sh (Debian package prometheus)"
        );
        rollguard::kube_client::install_crypto_provider();
        let mut dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, kubesim::metrics::prometheus_config(target)).unwrap();
        let web_config = auth.map(|(user, password)| {
            let hash = bcrypt::hash_with_result(password, 4)
                .unwrap()
                .format_for_version(bcrypt::Version::TwoY);
            let path = dir.path().join("web.yml");
            std::fs::write(&path, format!("basic_auth_users:\n  {user}: {hash}\n")).unwrap();
            path
        });
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        // A port taken between our probe and Prometheus' bind: try again.
        for _ in 0..5 {
            let port = free_port();
            let began = Instant::now();
            let mut cmd = kubesim::metrics::prometheus_command(
                PROMETHEUS_BIN,
                &config_path,
                dir.path(),
                port,
            );
            cmd.stdout(log.try_clone().unwrap())
                .stderr(log.try_clone().unwrap());
            if let Some(w) = &web_config {
                cmd.arg(format!("--web.config.file={}", w.display()));
            }
            let child = cmd.spawn().expect("prometheus starts");
            let mut p = Prometheus {
                child,
                port,
                auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
                dir,
                started_in: Duration::ZERO,
            };
            if p.wait_ready(Duration::from_secs(30)).await {
                p.started_in = began.elapsed();
                return p;
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
            eprintln!("prometheus on port {port} did not come up:\n{}", p.log());
            dir = std::mem::replace(&mut p.dir, tempfile::tempdir().unwrap());
            drop(p);
        }
        panic!("prometheus did not start");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some((u, p)) => rb.basic_auth(u, Some(p)),
            None => rb,
        }
    }

    /// Wait for `/-/ready` (true) or the child's exit / the deadline (false).
    async fn wait_ready(&mut self, within: Duration) -> bool {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let req = self.authed(client.get(format!("{}/-/ready", self.url())));
            if let Ok(r) = req.send().await
                && r.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// An instant query's result array (`data.result`).
    pub async fn query(&self, q: &str) -> serde_json::Value {
        let client = reqwest::Client::new();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url()),
            [("query", q)],
        )
        .unwrap();
        let r = self
            .authed(client.get(url))
            .send()
            .await
            .expect("query prometheus");
        let v: serde_json::Value = r.json().await.expect("a JSON answer");
        v["data"]["result"].clone()
    }

    /// Wait until `q` returns at least one series (e.g. the first scrape
    /// `up == 1`), up to `within`.
    pub async fn wait_for_series(&self, q: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self
                .query(q)
                .await
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

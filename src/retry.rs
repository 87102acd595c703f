//! Retries of transient Kubernetes API failures, as a tower layer under
//! `kube::Client`.
//!
//! What is retried, with jittered exponential back-off (100 ms doubling to
//! 5 s, ±50 %), honouring `Retry-After` on 429/503, for at most
//! [`RetryConfig::budget`] per request and never past the run's deadline
//! ([`set_deadline`]):
//! - GET/HEAD/LIST/WATCH, PUT, PATCH and DELETE on 429, 500, 502, 503, 504
//!   and on transport errors (connection refused/reset, timeouts). Our
//!   writes are safe to repeat: the JSON patches `test` the
//!   resourceVersion/template and Lease updates carry a resourceVersion, so a
//!   repeat of a write that did land fails with 409/422 and the call site
//!   re-reads and re-checks instead of clobbering.
//! - POST only when the server cannot have acted on it: 429, or a connection
//!   that was never established. Side-effect-free POSTs (access reviews) and
//!   Lease creates (a repeat answers 409 AlreadyExists, which the lock
//!   re-reads) are retried like GETs.
//!
//! 409 Conflict is never retried here: it is the call site's decision.

use std::sync::Mutex;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use tokio::time::Instant;
use tower::BoxError;
use tower::retry::Policy;

/// The run's deadline, shared by every client built here: no back-off sleeps past it.
static DEADLINE: Mutex<Option<Instant>> = Mutex::new(None);

/// Bound every retry of every client to `deadline` (the run's end).
pub fn set_deadline(deadline: Option<Instant>) {
    if let Ok(mut d) = DEADLINE.lock() {
        *d = deadline;
    }
}

fn run_deadline() -> Option<Instant> {
    DEADLINE.lock().ok().and_then(|d| *d)
}

/// Tuning of the retry layer.
#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    /// First back-off.
    pub base: Duration,
    /// Back-off cap (a server's `Retry-After` may ask for more, up to `budget`).
    pub max: Duration,
    /// How long one request may keep being retried.
    pub budget: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
            budget: Duration::from_secs(60),
        }
    }
}

/// The tower retry policy (one clone per request).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    config: RetryConfig,
    attempt: u32,
    started: Option<Instant>,
}

impl RetryPolicy {
    pub fn new(config: RetryConfig) -> Self {
        Self {
            config,
            attempt: 0,
            started: None,
        }
    }
}

/// How a request may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// Reads and guarded writes: repeat on any transient failure.
    Repeatable,
    /// A POST that creates something: repeat only when it cannot have been acted on.
    NotRepeatable,
}

/// Classify a request by method and path.
pub fn safety(method: &Method, path: &str) -> Safety {
    if *method != Method::POST {
        return Safety::Repeatable;
    }
    let safe_post = [
        "/selfsubjectaccessreviews",
        "/selfsubjectrulesreviews",
        "/leases",
    ];
    if safe_post.iter().any(|s| path.ends_with(s)) {
        Safety::Repeatable
    } else {
        Safety::NotRepeatable
    }
}

/// Whether a status is transient; for a POST only 429 is (the server refused before acting).
pub fn retryable_status(status: StatusCode, safety: Safety) -> bool {
    match safety {
        Safety::Repeatable => matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504),
        Safety::NotRepeatable => status == StatusCode::TOO_MANY_REQUESTS,
    }
}

/// Whether a transport error is transient; for a POST only a connection never made is.
pub fn retryable_error(e: &(dyn std::error::Error + 'static), safety: Safety) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut text = String::new();
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => return true,
                K::ConnectionReset
                | K::ConnectionAborted
                | K::BrokenPipe
                | K::TimedOut
                | K::UnexpectedEof
                | K::NotConnected => return safety == Safety::Repeatable,
                _ => {}
            }
        }
        text.push_str(&err.to_string().to_ascii_lowercase());
        text.push(' ');
        cur = err.source();
    }
    // Certificate and protocol problems are not transient.
    if text.contains("certificate") || text.contains("invalid peer") || text.contains("tls") {
        return false;
    }
    if text.contains("connection refused") || text.contains("client error (connect)") {
        return true;
    }
    safety == Safety::Repeatable
        && (text.contains("connection") || text.contains("timed out") || text.contains("closed"))
}

/// `Retry-After` in seconds (the only form the API server sends).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Back-off before attempt `attempt + 1`: `base * 2^attempt` capped at
/// `max`, times a random factor in [0.5, 1.5).
pub fn backoff(config: &RetryConfig, attempt: u32) -> Duration {
    let exp = config
        .base
        .saturating_mul(1u32 << attempt.min(16))
        .min(config.max);
    exp.mul_f64(rand::random_range(0.5..1.5))
}

impl RetryPolicy {
    /// The delay before the next attempt, or None when the budget or the deadline is spent.
    fn next_delay(&mut self, server: Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        let started = *self.started.get_or_insert(now);
        let delay = match server {
            Some(s) => s.max(backoff(&self.config, self.attempt).min(Duration::from_secs(1))),
            None => backoff(&self.config, self.attempt),
        };
        self.attempt += 1;
        let wake = now + delay;
        if wake > started + self.config.budget {
            return None;
        }
        if run_deadline().is_some_and(|d| wake > d) {
            return None;
        }
        Some(delay)
    }
}

impl<B> Policy<Request<Body>, Response<B>, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Self::Future> {
        if self.started.is_none() {
            self.started = Some(Instant::now());
        }
        let safety = safety(req.method(), req.uri().path());
        let (why, server) = match result {
            Ok(resp) if retryable_status(resp.status(), safety) => {
                (resp.status().to_string(), retry_after(resp.headers()))
            }
            Ok(_) => return None,
            Err(e) if retryable_error(e.as_ref(), safety) => (e.to_string(), None),
            Err(_) => return None,
        };
        let delay = self.next_delay(server)?;
        tracing::debug!(
            "retrying {} {} in {delay:?} (attempt {}): {why}",
            req.method(),
            req.uri().path(),
            self.attempt
        );
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        let body = req.body().try_clone()?;
        let mut new = Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version())
            .body(body)
            .ok()?;
        *new.headers_mut() = req.headers().clone();
        *new.extensions_mut() = req.extensions().clone();
        Some(new)
    }
}

/// The layer to add to kube's service stack: a buffer (kube's stack is a
/// `BoxService`, which cannot be cloned per retry) under tower's retry.
#[derive(Debug, Clone, Default)]
pub struct RetryLayer {
    pub config: RetryConfig,
}

impl<S> tower::Layer<S> for RetryLayer
where
    S: tower::Service<Request<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError> + Send + Sync + 'static,
{
    type Service =
        tower::retry::Retry<RetryPolicy, tower::buffer::Buffer<Request<Body>, S::Future>>;

    fn layer(&self, inner: S) -> Self::Service {
        let buffered = tower::buffer::Buffer::new(inner, 1024);
        tower::retry::Retry::new(RetryPolicy::new(self.config), buffered)
    }
}

/// A `kube::Client` for `config` with rollguard's retry layer instead of
/// kube's default one (which retries POSTs on 503 too).
pub fn client(mut config: kube::Config) -> Result<kube::Client, kube::Error> {
    config.default_retry = false;
    // Identify ourselves to the API server (audit logs, kubesim's metrics).
    let user_agent =
        http::HeaderValue::from_static(concat!("rollguard/", env!("CARGO_PKG_VERSION")));
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&RetryLayer::default())
        .with_layer(&tower::util::MapRequestLayer::new(
            move |mut req: http::Request<kube::client::Body>| {
                req.headers_mut()
                    .entry(http::header::USER_AGENT)
                    .or_insert_with(|| user_agent.clone());
                req
            },
        ))
        .build())
}

/// An error with its sources (`a: b: c`), so a TLS failure under
/// "client error (Connect)" is named.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_are_not_retried_blindly() {
        let post = safety(&Method::POST, "/apis/apps/v1/namespaces/x/deployments");
        assert_eq!(post, Safety::NotRepeatable);
        assert!(!retryable_status(StatusCode::INTERNAL_SERVER_ERROR, post));
        assert!(!retryable_status(StatusCode::SERVICE_UNAVAILABLE, post));
        assert!(retryable_status(StatusCode::TOO_MANY_REQUESTS, post));
        let review = safety(
            &Method::POST,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        );
        assert_eq!(review, Safety::Repeatable);
        let get = safety(&Method::GET, "/api/v1/pods");
        assert!(retryable_status(StatusCode::SERVICE_UNAVAILABLE, get));
        assert!(!retryable_status(StatusCode::CONFLICT, get));
        assert!(!retryable_status(StatusCode::NOT_FOUND, get));
    }

    #[test]
    fn transport_errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(retryable_error(&refused, Safety::NotRepeatable));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(retryable_error(&reset, Safety::Repeatable));
        assert!(!retryable_error(&reset, Safety::NotRepeatable));
        let tls = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert!(!retryable_error(&tls, Safety::Repeatable));
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        let c = RetryConfig::default();
        for attempt in 0..40 {
            let d = backoff(&c, attempt);
            assert!(d <= c.max.mul_f64(1.5), "{d:?}");
            assert!(d >= c.base.mul_f64(0.5), "{d:?}");
        }
        let mut h = http::HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }

    #[tokio::test]
    async fn budget_bounds_retries() {
        let mut p = RetryPolicy::new(RetryConfig {
            base: Duration::from_millis(10),
            max: Duration::from_millis(20),
            budget: Duration::from_millis(100),
        });
        assert!(p.next_delay(None).is_some());
        assert!(p.next_delay(Some(Duration::from_secs(1))).is_none());
    }
}

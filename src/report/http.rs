//! What the HTTP sinks (GitHub, GitLab, Slack) share: the client and the
//! one-line errors of an API answer or a transport failure, neither ever
//! carrying a URL (a webhook URL is a secret) or a token.

use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::escape::truncate;

/// An HTTP error answer from a sink's API (status + the API's message).
#[derive(Debug)]
pub struct ApiError {
    pub service: &'static str,
    pub what: String,
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: HTTP {}",
            self.service,
            self.what,
            self.status.as_u16()
        )?;
        if !self.message.trim().is_empty() {
            write!(f, ": {}", self.message.trim())?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// An API error answer. `path` must not contain secrets (no host, no query).
pub(crate) fn api_error(
    service: &'static str,
    method: &Method,
    path: &str,
    status: StatusCode,
    message: &str,
) -> anyhow::Error {
    let message: String = truncate(&message.replace(['\r', '\n'], " "), 200);
    anyhow::Error::new(ApiError {
        service,
        what: format!("{method} {path}"),
        status,
        message,
    })
}

/// A transport error, without the URL (a webhook URL is a secret).
pub(crate) fn http_error(
    service: &'static str,
    method: &Method,
    path: &str,
    e: reqwest::Error,
) -> anyhow::Error {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    anyhow::anyhow!("{service} {method} {path}: {kind} ({detail})")
}

/// Send a forge API request (`req`, `method` on `path`: no host, no query)
/// and read its JSON answer (null when empty) and headers; an error answer
/// becomes an [`ApiError`] with the API's own message (`message`, else
/// `error`, else the raw text).
pub(crate) async fn send_json(
    service: &'static str,
    method: &Method,
    path: &str,
    req: reqwest::RequestBuilder,
) -> anyhow::Result<(serde_json::Value, reqwest::header::HeaderMap)> {
    let resp = req
        .send()
        .await
        .map_err(|e| http_error(service, method, path, e))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp
        .text()
        .await
        .map_err(|e| http_error(service, method, path, e))?;
    if !status.is_success() {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v["message"]
                    .as_str()
                    .or(v["error"].as_str())
                    .map(str::to_string)
                    .or_else(|| v.get("message").map(|m| m.to_string()))
            })
            .unwrap_or(text);
        return Err(api_error(service, method, path, status, &msg));
    }
    let v = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{service} {method} {path}: invalid JSON: {e}"))?
    };
    Ok((v, headers))
}

/// The sinks' HTTP client: our user agent, `timeout` per request.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("rollguard/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("could not build the HTTP client: {}", e.without_url()))
}

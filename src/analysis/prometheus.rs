//! The Prometheus HTTP API's instant query (`POST /api/v1/query`, form
//! fields `query` and `time`), as Prometheus, Thanos, Mimir,
//! VictoriaMetrics and the managed services serve it.
//!
//! The answer the gate needs is one number: a scalar, or an instant vector
//! of exactly one series. An empty vector or NaN is "no data"; several
//! series are a misconfigured query (the gate cannot pick one).

use std::time::Duration;

use serde::Deserialize;

pub use super::settings::Auth;

/// What one query answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Value(f64),
    NoData,
    /// A vector of several series (their count).
    Series(usize),
    /// A result type the gate cannot judge (`matrix`, `string`).
    Unusable(String),
}

/// Why a query got no answer. The text never holds a credential: the URL is
/// left out of transport errors, response text is cleaned and cut.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// A sample value: Prometheus sends `[<unix time>, "<value>"]`.
fn sample_value(v: &serde_json::Value) -> Option<f64> {
    let s = v.get(1)?.as_str()?;
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}

fn as_answer(value: Option<f64>) -> Answer {
    match value {
        Some(v) if v.is_nan() => Answer::NoData,
        Some(v) => Answer::Value(v),
        None => Answer::NoData,
    }
}

/// The answer in a `/api/v1/query` response body (any HTTP status: the API
/// puts its errors in the same envelope).
pub fn parse(status: u16, body: &[u8]) -> Result<Answer, QueryError> {
    let Ok(env) = serde_json::from_slice::<Envelope>(body) else {
        let text = String::from_utf8_lossy(body);
        return Err(QueryError(format!(
            "HTTP {status}, not a Prometheus API response: {}",
            crate::text::quote(&text, 200)
        )));
    };
    if env.status != "success" {
        return Err(QueryError(format!(
            "HTTP {status}, {}: {}",
            crate::text::quote(env.error_type.as_deref().unwrap_or("error"), 40),
            crate::text::quote(env.error.as_deref().unwrap_or("(no message)"), 300)
        )));
    }
    let Some(data) = env.data else {
        return Err(QueryError(format!("HTTP {status}, a success without data")));
    };
    Ok(match data.result_type.as_str() {
        "scalar" => as_answer(sample_value(&data.result)),
        "vector" => match data.result.as_array().map(Vec::as_slice) {
            None | Some([]) => Answer::NoData,
            Some([one]) => as_answer(one.get("value").and_then(sample_value)),
            Some(many) => Answer::Series(many.len()),
        },
        other => Answer::Unusable(crate::text::quote(other, 20)),
    })
}

/// A client of one Prometheus-compatible API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// `<base>/api/v1/query`.
    endpoint: reqwest::Url,
    auth: Auth,
}

impl Client {
    /// `base` is the server's URL (a path prefix such as Mimir's
    /// `/prometheus` is kept); each request may take up to `timeout`.
    pub fn new(base: &str, auth: Auth, timeout: Duration) -> Result<Client, String> {
        let mut endpoint =
            reqwest::Url::parse(base.trim_end_matches('/')).map_err(|e| e.to_string())?;
        endpoint
            .path_segments_mut()
            .map_err(|_| "cannot be a base URL".to_string())?
            .pop_if_empty()
            .extend(["api", "v1", "query"]);
        let http = reqwest::Client::builder()
            .user_agent(concat!("rollguard/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("could not build the HTTP client: {}", e.without_url()))?;
        Ok(Client {
            http,
            endpoint,
            auth,
        })
    }

    /// Evaluate `query` at `time` (Unix seconds).
    pub async fn query(&self, query: &str, time: f64) -> Result<Answer, QueryError> {
        let time = format!("{time:.3}");
        let mut req = self
            .http
            .post(self.endpoint.clone())
            .form(&[("query", query), ("time", time.as_str())]);
        req = match &self.auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic { username, password } => req.basic_auth(username, password.as_deref()),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| QueryError(format!("request failed: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(QueryError(format!(
                "HTTP {status}: the Prometheus API refused the credentials (prometheus-token, or prometheus-username and prometheus-password)"
            )));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| QueryError(format!("reading the answer failed: {}", e.without_url())))?;
        parse(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_number_from_a_vector_or_a_scalar() {
        let one = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"0.2"]}]}}"#;
        assert_eq!(parse(200, one).unwrap(), Answer::Value(0.2));
        let scalar =
            br#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"3"]}}"#;
        assert_eq!(parse(200, scalar).unwrap(), Answer::Value(3.0));
    }

    #[test]
    fn empty_and_nan_are_no_data_several_series_are_counted() {
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse(200, empty).unwrap(), Answer::NoData);
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert_eq!(parse(200, nan).unwrap(), Answer::NoData);
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#;
        assert_eq!(parse(200, two).unwrap(), Answer::Series(2));
        let inf = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#;
        assert_eq!(parse(200, inf).unwrap(), Answer::Value(f64::INFINITY));
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(
            parse(200, matrix).unwrap(),
            Answer::Unusable("matrix".into())
        );
    }

    #[test]
    fn errors_are_one_clean_line() {
        let bad = b"{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error\\n\\u001b[31m::error::x\"}";
        let e = parse(400, bad).unwrap_err().0;
        assert!(e.starts_with("HTTP 400, bad_data: parse error"), "{e}");
        assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e}");
        let html = b"<html>\n<h1>502 Bad Gateway</h1></html>";
        let e = parse(502, html).unwrap_err().0;
        assert!(e.contains("HTTP 502") && !e.contains('\n'), "{e}");
    }
}

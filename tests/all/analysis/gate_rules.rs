//! The metric gate's counting and retry rules against a local HTTP receiver
//! speaking the Prometheus API, with the evaluation moments given
//! explicitly (no waiting).

use std::time::Duration;

use rollguard::analysis::prometheus::Auth;
use rollguard::analysis::template::Vars;
use rollguard::analysis::{Condition, Failure, FailureKind, Gate, Outcome, Settings};
use serde_json::json;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn answer(value: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, value]}]}
    }))
}

fn gate(server: &MockServer, limit: u32) -> Gate {
    rollguard::kube_client::install_crypto_provider();
    let settings = Settings {
        url: server.uri(),
        auth: Auth::Bearer("gate-token".into()),
        query: r#"ratio{v="{{ version }}"}"#.into(),
        condition: Condition::parse("< 0.05").unwrap(),
        interval: Duration::from_secs(1),
        failure_limit: limit,
    };
    let vars = Vars {
        version: "v2".into(),
        ..Default::default()
    };
    Gate::new(&settings, &vars).unwrap()
}

/// A gate begun now, with what it writes.
struct Begun {
    g: Gate,
    out: Vec<u8>,
    t0: Instant,
}

impl Begun {
    fn new(server: &MockServer, limit: u32) -> Self {
        let mut g = gate(server, limit);
        let mut out = Vec::new();
        let t0 = Instant::now();
        g.begin(t0, &mut out);
        Begun { g, out, t0 }
    }

    /// The gate's turn `secs` seconds after it began: the failure it has
    /// come to, if any.
    async fn at(&mut self, secs: u64) -> Option<Failure> {
        let now = self.t0 + Duration::from_secs(secs);
        self.g.tick(now, &mut self.out).await.cloned()
    }
}

#[tokio::test]
async fn no_data_neither_counts_nor_resets_the_failures_in_a_row() {
    let server = MockServer::start().await;
    for v in ["0.2", "NaN", "0.01", "0.3", "NaN", "0.4"] {
        Mock::given(method("POST"))
            .and(path("/api/v1/query"))
            .respond_with(answer(v))
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    let mut g = Begun::new(&server, 2);
    // fail, no data, pass (resets), fail, no data, fail → the limit of 2.
    for s in 1..=5 {
        assert!(g.at(s).await.is_none(), "after {s}");
    }
    let f = g.at(6).await.expect("the second failure in a row fails");
    assert_eq!(f.kind, FailureKind::Threshold);
    assert_eq!(f.value, Some(0.4));
    let outcomes: Vec<Outcome> =
        g.g.summary()
            .evaluations
            .iter()
            .map(|e| e.outcome)
            .collect();
    use Outcome::*;
    assert_eq!(outcomes, [Fail, NoData, Pass, Fail, NoData, Fail]);
    // On the wire: a POST form with the rendered query, a time, the token.
    let reqs = server.received_requests().await.unwrap();
    let body = String::from_utf8_lossy(&reqs[0].body).to_string();
    assert!(
        body.starts_with("query=ratio%7Bv%3D%22v2%22%7D&time="),
        "{body}"
    );
    assert_eq!(
        reqs[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        "Bearer gate-token"
    );
    let text = String::from_utf8(g.out).unwrap();
    assert!(!text.contains("gate-token"), "{text}");
}

#[tokio::test]
async fn errors_are_retried_within_the_interval_then_fail() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream down\n\x1b[2J"))
        .mount(&server)
        .await;
    let mut g = Begun::new(&server, 1);
    assert!(g.at(1).await.is_none());
    let f = g.at(2).await.expect("an interval without an answer fails");
    assert_eq!(f.kind, FailureKind::Error);
    assert!(
        f.message.contains("HTTP 503") && !f.message.contains('\x1b'),
        "{f:?}"
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    assert!(g.g.summary().evaluations.is_empty());
}

#[tokio::test]
async fn several_series_fail_at_once_as_misconfigured() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": {"pod": "a"}, "value": [1.0, "0.1"]},
                {"metric": {"pod": "b"}, "value": [1.0, "0.2"]}]}
        })))
        .mount(&server)
        .await;
    let f = Begun::new(&server, 3).at(1).await.expect("misconfigured");
    assert_eq!(f.kind, FailureKind::Misconfigured);
    assert!(f.message.contains("2 series"), "{}", f.message);
}

//! The admin API (`kubesim --admin-addr ADDR`): fault injection and metrics
//! over plain HTTP, for tests and benchmarks that drive the binary.
//!
//! | Request | Effect |
//! |---|---|
//! | `GET /faults` | what is armed |
//! | `POST /faults/drop-watches` | end every open watch |
//! | `POST /faults/fail-next` `{"count":3,"method":"PATCH","path":"/apis/apps/v1/*","code":503,"retryAfter":1}` | fail the next N matching requests |
//! | `POST /faults/fail-fraction` `{"fraction":0.2,"codes":[500,503],"seed":7}` | fail a random fraction until cleared |
//! | `POST /faults/latency` `{"ms":500}` | delay every response |
//! | `POST /faults/conflict-next-write` `{"resource":"deployments","namespace":"default","name":"web"}` | 409 on the next update/patch of the object |
//! | `POST /faults/compact` | forget history (old resourceVersions get 410) |
//! | `DELETE /faults` | disarm everything |
//! | `POST /listener/stop`, `POST /listener/start` | stop/restart the API listener (same port) |
//! | `GET /metrics`, `DELETE /metrics` | per-User-Agent counters and per-request-shape counts, reset |

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::http::{Resp, json as json_resp};
use crate::faults::{ConflictRule, DEFAULT_SEED, FailRule};
use crate::inject::FaultHandle;
use crate::sim::Sim;

/// Serve the admin API on `listener` until `shutdown` turns true.
pub async fn serve(sim: Arc<Sim>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
    super::http::serve_plain(listener, shutdown, "admin", move |req| {
        handle(sim.clone(), req)
    })
    .await;
}

#[derive(Deserialize)]
struct Latency {
    ms: u64,
}

#[derive(Deserialize)]
struct Fraction {
    fraction: f64,
    #[serde(default)]
    codes: Vec<u16>,
    #[serde(default)]
    seed: Option<u64>,
}

fn ok() -> Resp {
    json_resp(200, &json!({"ok": true}))
}

fn bad(msg: impl std::fmt::Display) -> Resp {
    json_resp(400, &json!({"error": msg.to_string()}))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Box<Resp>> {
    serde_json::from_slice(body).map_err(|e| Box::new(bad(format!("invalid body: {e}"))))
}

async fn handle(sim: Arc<Sim>, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad(e),
    };
    let faults = FaultHandle::new(sim.clone());
    let path = parts.uri.path().trim_end_matches('/');
    let r = match (&parts.method, path) {
        (&Method::GET, "/faults") => Ok(json_resp(200, &json!(faults.view()))),
        (&Method::DELETE, "/faults") => {
            faults.clear();
            Ok(ok())
        }
        (&Method::POST, "/faults/drop-watches") => {
            faults.drop_watches();
            Ok(ok())
        }
        (&Method::POST, "/faults/fail-next") => parse::<FailRule>(&body).map(|r| {
            sim.faults.fail_next(r);
            ok()
        }),
        (&Method::POST, "/faults/fail-fraction") => parse::<Fraction>(&body).map(|f| {
            let codes = if f.codes.is_empty() {
                vec![500, 503]
            } else {
                f.codes
            };
            sim.faults
                .fail_fraction(f.fraction, &codes, f.seed.unwrap_or(DEFAULT_SEED));
            ok()
        }),
        (&Method::POST, "/faults/latency") => parse::<Latency>(&body).map(|l| {
            faults.latency(l.ms);
            ok()
        }),
        (&Method::POST, "/faults/conflict-next-write") => parse::<ConflictRule>(&body).map(|c| {
            sim.faults.conflict_next_write(c);
            ok()
        }),
        (&Method::POST, "/faults/compact") => {
            faults.compact();
            Ok(json_resp(
                200,
                &json!({"ok": true, "resourceVersion": sim.store.current_rv().to_string()}),
            ))
        }
        (&Method::POST, "/listener/stop") => {
            faults.stop_listener().await;
            Ok(ok())
        }
        (&Method::POST, "/listener/start") => match faults.start_listener().await {
            Ok(()) => Ok(ok()),
            Err(e) => Ok(json_resp(500, &json!({"error": e.to_string()}))),
        },
        (&Method::GET, "/listener") => {
            Ok(json_resp(200, &json!({"listening": faults.listening()})))
        }
        (&Method::GET, "/metrics") => {
            let m: Value = json!(sim.metrics.snapshot());
            let b: Value = json!(sim.metrics.breakdown());
            Ok(json_resp(200, &json!({"byUserAgent": m, "byRequest": b})))
        }
        (&Method::DELETE, "/metrics") => {
            sim.metrics.reset();
            Ok(ok())
        }
        _ => Ok(json_resp(404, &json!({"error": "not found"}))),
    };
    r.unwrap_or_else(|e| *e)
}

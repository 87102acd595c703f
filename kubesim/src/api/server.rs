//! The API server's connections: accept (TLS or plain), serve HTTP/1.1 and
//! HTTP/2, read each request, apply injected faults and latency, dispatch,
//! and count the response per User-Agent.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::http::{Req, Resp, error, request_shape, stopped};
use crate::error::ApiError;
use crate::sim::Sim;

/// Largest request body accepted.
const MAX_BODY: usize = 16 << 20;

/// Accept connections until `shutdown` turns true.
pub async fn serve(
    sim: Arc<Sim>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let builder = Builder::new(TokioExecutor::new());
    loop {
        if *shutdown.borrow() {
            return;
        }
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let sim = sim.clone();
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acc) => {
                    match tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await {
                        Ok(Ok(s)) => serve_conn(sim, builder, s, shutdown).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
                None => serve_conn(sim, builder, stream, shutdown).await,
            }
        });
    }
}

async fn serve_conn<I>(
    sim: Arc<Sim>,
    builder: Builder<TokioExecutor>,
    io: I,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn_shutdown = shutdown.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        let sim = sim.clone();
        let shutdown = conn_shutdown.clone();
        async move { Ok::<_, Infallible>(handle(sim, req, shutdown).await) }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::trace!(error = %e, "connection closed");
            }
        }
        _ = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_millis(500), conn).await;
        }
    }
}

async fn handle(sim: Arc<Sim>, req: Request<Incoming>, shutdown: watch::Receiver<bool>) -> Resp {
    let (parts, body) = req.into_parts();
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let resp = error(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("reading body: {e}"),
            ));
            sim.metrics.record(&user_agent, 0);
            return resp;
        }
    };
    let mut query = BTreeMap::new();
    if let Some(q) = parts.uri.query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            query.insert(k.into_owned(), v.into_owned());
        }
    }
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body,
        user_agent,
    };
    // Injected faults answer before authentication, as an overloaded or
    // failing apiserver (or a proxy in front of it) would.
    let resp = match sim.faults.check(req.method.as_str(), &req.path) {
        Some(e) => error(&e),
        None => super::dispatch::dispatch(&sim, &req, shutdown).await,
    };
    let latency = sim.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let len = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    sim.metrics.record(&req.user_agent, len.unwrap_or(0));
    sim.metrics.record_shape(
        &req.user_agent,
        request_shape(req.method.as_str(), &req.path, &req.query),
    );
    tracing::debug!(method = %req.method, path = %req.path, status = resp.status().as_u16(), "request");
    resp
}

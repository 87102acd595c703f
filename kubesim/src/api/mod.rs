//! The API server: HTTP(S) transport, authentication and RBAC, discovery,
//! OpenAPI, and the REST verbs over the store.
//!
//! From the bottom up: `http` (the request and response vocabulary),
//! `views` and `objects` (how objects are shown and written, which the
//! controllers use too), the verbs (`rest`, `apply`, `watch`, `logs`, ...),
//! `dispatch` (authentication, authorization, routing) and `server` (the
//! connections).

pub mod admin;
pub mod apply;
pub mod defaults;
pub mod discovery;
pub mod dispatch;
pub mod fields;
pub mod http;
pub mod listener;
pub mod listener_ctl;
pub mod logs;
pub mod metrics;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rest;
pub mod routes;
pub mod selectors;
pub mod server;
pub mod ssar;
pub mod table;
pub mod validate;
pub mod views;
pub mod watch;

pub use metrics::{AgentStats, Metrics};
pub use objects::{DeleteOptions, create_object, delete_object, resource_of};

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch as wch;

use crate::sim::Sim;

/// Serve until `shutdown` turns true.
pub async fn serve(
    sim: Arc<Sim>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: wch::Receiver<bool>,
) {
    server::serve(sim, listener, tls, shutdown).await
}

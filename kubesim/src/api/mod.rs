//! The API server: HTTP(S) transport, authentication and RBAC, discovery,
//! OpenAPI, and the REST verbs over the store.

use std::sync::Arc;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Sim;
use crate::error::ApiResult;

/// Serve until `shutdown` turns true.
pub async fn serve(
    _sim: Arc<Sim>,
    _listener: TcpListener,
    _tls: Option<Arc<rustls::ServerConfig>>,
    _shutdown: watch::Receiver<bool>,
) {
}

/// Create an object as `POST` would (defaulting, validation), bypassing HTTP.
pub fn create_object(_sim: &Sim, _obj: Value) -> ApiResult<Arc<Value>> {
    Err(crate::error::ApiError::internal("TODO"))
}

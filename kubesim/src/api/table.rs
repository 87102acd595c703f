//! Server-side printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).

use serde_json::Value;

use super::http::Req;
use crate::Sim;
use crate::resources::ResourceType;

pub fn wants_table(_req: &Req) -> bool {
    false
}

pub fn list_table(_sim: &Sim, _rt: &ResourceType, list: &Value) -> Value {
    list.clone()
}

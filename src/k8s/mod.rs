//! The Kubernetes vocabulary shared by every layer: workload kinds and
//! references, raw objects by kind, selectors.

pub mod kind;
pub mod objects;

//! The Kubernetes vocabulary shared by every layer: workload kinds and
//! references, raw objects by kind, selectors.

pub mod kind;
pub mod names;
pub mod objects;
pub mod placement;
pub mod quantity;

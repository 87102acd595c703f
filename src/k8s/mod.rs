//! The Kubernetes vocabulary shared by every layer: workload kinds and
//! references, names and labels, raw objects by kind, selectors,
//! quantities and placement. No imports from the rest of the crate.

pub mod kind;
pub mod names;
pub mod objects;
pub mod placement;
pub mod quantity;

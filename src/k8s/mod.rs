//! Kubernetes vocabulary that every layer may use: no I/O, no imports from
//! the rest of the crate.

pub mod names;

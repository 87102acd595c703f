//! kubesim's integration tests, in one binary: the crate is linked once
//! instead of once per suite. Each module is one suite (`cargo test -p
//! kubesim --test all api_e2e::` runs one).
//!
//! The start-up timing suite is a binary of its own (see its file).

#[macro_use]
mod common;

mod api_e2e;
mod api_kubectl;
mod api_reads;
mod control_plane_fidelity;
mod controllers_daemons;
mod controllers_deployment;
mod controllers_kubelet;
mod controllers_workloads;
mod faults;
mod helm;
mod kubectl_fidelity;
mod kubectl_workloads;
mod layering;
mod layers;
mod node_fidelity;
mod scale;

//! rollguard's integration tests, in one test binary: one link after a
//! change instead of one per suite, and every suite's tests share the
//! harness's threads. Each module is one suite (`cargo test --test all
//! <module>` runs one); `support` is what they share: a kubesim cluster
//! with its workloads (`support::Fixture`), rollguard's inputs and runs.
//!
//! The tests share one process: none may change it (no `std::env::set_var`,
//! no current directory, no signal to the test process itself); a run of
//! the binary gets its environment through `Command::env`/`envs` only.

#[path = "all/support/mod.rs"]
mod support;

#[path = "all/analysis.rs"]
mod analysis;
#[path = "all/binary.rs"]
mod binary;
#[path = "all/canary.rs"]
mod canary;
#[path = "all/canary_gate.rs"]
mod canary_gate;
#[path = "all/canary_realspeed.rs"]
mod canary_realspeed;
#[path = "all/canary_statefulset.rs"]
mod canary_statefulset;
#[path = "all/cancel.rs"]
mod cancel;
#[path = "all/cancel_group.rs"]
mod cancel_group;
#[path = "all/deployments.rs"]
mod deployments;
#[path = "all/e2e.rs"]
mod e2e;
#[path = "all/faults.rs"]
mod faults;
#[path = "all/golden.rs"]
mod golden;
#[path = "all/hostile_input.rs"]
mod hostile_input;
#[path = "all/image.rs"]
mod image;
#[path = "all/kubeconfig.rs"]
mod kubeconfig;
#[path = "all/layers.rs"]
mod layers;
#[path = "all/lock.rs"]
mod lock;
#[path = "all/logs.rs"]
mod logs;
#[path = "all/preflight.rs"]
mod preflight;
#[path = "all/prometheus.rs"]
mod prometheus;
#[path = "all/realspeed.rs"]
mod realspeed;
#[path = "all/recovery.rs"]
mod recovery;
#[path = "all/render.rs"]
mod render;
#[path = "all/secrets.rs"]
mod secrets;
#[path = "all/security.rs"]
mod security;
#[path = "all/ship.rs"]
mod ship;
#[path = "all/sinks.rs"]
mod sinks;
#[path = "all/unified.rs"]
mod unified;
#[path = "all/watch_list.rs"]
mod watch_list;
#[path = "all/workloads.rs"]
mod workloads;

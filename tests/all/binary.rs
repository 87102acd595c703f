//! The built binary: `--help`, and one full rollout driven by env vars.

use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::support::{DeploymentSpec, Fixture, PodLabel};

#[test]
fn help_lists_every_input() {
    for flag in ["--help", "-h"] {
        let out = Command::new(env!("CARGO_BIN_EXE_rollguard"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for input in rollguard::config::INPUTS {
            assert!(text.contains(input.name), "--help lacks {}", input.name);
        }
        assert!(text.contains("default: 5m"));
        assert!(text.contains("example: deployment/api"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_rolls_out_from_env_vars() {
    let h = Fixture::new()
        .deployment(DeploymentSpec {
            replicas: 2,
            label: PodLabel::App,
            ..Default::default()
        })
        .start()
        .await;
    let kubeconfig = base64::engine::general_purpose::STANDARD.encode(h.kubeconfig_yaml());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollguard"))
        .env("ROLLGUARD_KUBECONFIG", kubeconfig)
        // kubesim simulates images by name; no registry holds them.
        .env("ROLLGUARD_VERIFY_IMAGE", "false")
        .env("ROLLGUARD_WORKLOAD", "deployment/web")
        .env("INPUT_TAG", "v2")
        .env("ROLLGUARD_TIMEOUT", "60s")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = crate::support::succeeded(&child);
    assert!(stdout.contains("rolled out example/web:v2"), "{stdout}");
    assert!(!stderr.contains('\u{1b}'), "NO_COLOR ignored: {stderr}");
    let d: Value = (*h.get("apps/v1", "Deployment", "default", "web").unwrap()).clone();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "example/web:v2"
    );
    // The API server sees who is calling (audit logs; kubesim's per-client metrics).
    let agents = h.metrics();
    let ours = format!("rollguard/{}", env!("CARGO_PKG_VERSION"));
    assert!(
        agents.get(&ours).is_some_and(|a| a.requests > 0),
        "no requests from {ours}: {:?}",
        agents.keys().collect::<Vec<_>>()
    );
    h.shutdown().await;
}

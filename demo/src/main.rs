//! `cargo run -p rollguard-demo --profile demo`: a simulated cluster in-process, an app of
//! two containers (node-api + a fluentd sidecar), and four deploys through
//! rollguard's real entry point with its default inputs: a good tag, a tag
//! nobody pushed, a build that crashes on start, and a build that is Ready
//! and then crashes (the case `kubectl rollout status` reports as success).
//! Prints what a user would see in the CI log, then one line per deploy.

use std::time::Duration;

use serde_json::{Value, json};

/// Simulated seconds per real second: the whole demo takes a few seconds.
const SPEED: f64 = 25.0;
/// rollguard's default `stable-for` (20 s) in real time at [`SPEED`].
const STABLE_FOR: &str = "800ms";

struct Case {
    title: &'static str,
    tag: &'static str,
    /// The exit code a correct verdict gives (0 rolled out, 1 rolled back).
    expect: i32,
}

const CASES: &[Case] = &[
    Case {
        title: "1. a good build: tag v2",
        tag: "v2",
        expect: 0,
    },
    Case {
        title: "2. a tag nobody pushed: v10-missing",
        tag: "v10-missing",
        expect: 1,
    },
    Case {
        title: "3. a build that exits 1 one second after it starts: v11-crash",
        tag: "v11-crash",
        expect: 1,
    },
    Case {
        title: "4. a build that is Ready, then crashes ten seconds later: v12-late-crash",
        tag: "v12-late-crash",
        expect: 1,
    },
];

fn banner(title: &str) {
    println!("\n================================================================");
    println!("  {title}");
    println!("================================================================");
}

fn app_image(d: &Value) -> String {
    d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "node-api-container"))
        .and_then(|c| c["image"].as_str())
        .unwrap_or("?")
        .to_string()
}

fn healthy(h: &kubesim::Handle) -> bool {
    h.get("apps/v1", "Deployment", "default", "api")
        .is_some_and(|d| {
            let s = &d["status"];
            s["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64()
                && s["availableReplicas"] == 3
                && s["updatedReplicas"] == 3
                && s["replicas"] == 3
        })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let sim = kubesim::start(kubesim::Config {
        speed: SPEED,
        tls: true,
        ..Default::default()
    })
    .await?;
    println!(
        "kubesim: a simulated cluster at {} (3 nodes, {SPEED}× time)",
        sim.base_url
    );
    sim.create(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "default", "labels": {"name": "api-pods"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"name": "api-pods"}},
            "template": {
                "metadata": {"labels": {"name": "api-pods"}},
                "spec": {"containers": [
                    {"name": "node-api-container", "image": "example/node-api:v1", "ports": [{"containerPort": 3000}]},
                    {"name": "fluentd-container", "image": "example/fluentd:1"}
                ]}
            }
        }
    }))?;
    if !sim.wait_for(Duration::from_secs(30), healthy).await {
        anyhow::bail!("the demo app never became ready on kubesim");
    }
    println!("deployment/api is running example/node-api:v1 with a fluentd sidecar, 3 replicas");

    let kubeconfig = sim.kubeconfig_yaml();
    let mut results = Vec::new();
    for case in CASES {
        banner(case.title);
        let before = sim
            .get("apps/v1", "Deployment", "default", "api")
            .map(|d| app_image(&d))
            .unwrap_or_default();
        let env: rollguard::Env = [
            ("ROLLGUARD_KUBECONFIG", kubeconfig.as_str()),
            ("ROLLGUARD_WORKLOAD", "deployment/api"),
            ("ROLLGUARD_CONTAINER", "node-api-container"),
            ("ROLLGUARD_TAG", case.tag),
            ("ROLLGUARD_TIMEOUT", "60s"),
            // The stability window after Ready is cluster time: its default
            // 20 s, at the simulator's speed.
            ("ROLLGUARD_STABLE_FOR", STABLE_FOR),
            // kubesim simulates images by name: no registry holds them, so
            // the pre-flight registry check is off for the demo.
            ("ROLLGUARD_VERIFY_IMAGE", "false"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut stdout = std::io::stdout();
        let outcome = rollguard::run(&env, &mut stdout).await;
        println!("(rollguard exited {})", outcome.exit_code);
        // What the cluster runs now, once it has settled.
        sim.wait_for(Duration::from_secs(20), healthy).await;
        let after = sim
            .get("apps/v1", "Deployment", "default", "api")
            .map(|d| app_image(&d))
            .unwrap_or_default();
        results.push((case, outcome.exit_code, before, after));
    }

    banner("what happened");
    let mut wrong = 0;
    for (case, code, before, after) in &results {
        let verdict = match (*code, case.expect) {
            (0, 0) => "rolled out".to_string(),
            (c, 1) if c != 0 => format!("caught and rolled back (exit {c})"),
            (0, _) => {
                wrong += 1;
                "MISSED: reported as rolled out".to_string()
            }
            (c, _) => {
                wrong += 1;
                format!("WRONG: a good build failed (exit {c})")
            }
        };
        println!(
            "{:<14} {verdict}; deployment/api: {before} -> {after}",
            case.tag
        );
    }
    println!("demo took {:.1}s", started.elapsed().as_secs_f64());
    sim.shutdown().await;
    if wrong > 0 {
        anyhow::bail!("{wrong} deploy(s) got the wrong verdict");
    }
    Ok(())
}

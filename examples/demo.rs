//! `cargo run --example demo`: a simulated cluster in-process, a
//! seed-001-shaped app (node-api + fluentd sidecar), and three deploys
//! through rollguard's real entry point: a good tag, a missing tag, a
//! crashing build. Prints what a user would see in the CI log.

use std::time::Duration;

use serde_json::json;

fn banner(title: &str) {
    println!("\n================================================================");
    println!("  {title}");
    println!("================================================================");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let sim = kubesim::start(kubesim::Config {
        speed: 25.0,
        tls: true,
        ..Default::default()
    })
    .await?;
    println!(
        "kubesim: a simulated cluster at {} (3 nodes, 25× time)",
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
    let ready = |h: &kubesim::Handle| {
        h.get("apps/v1", "Deployment", "default", "api")
            .is_some_and(|d| {
                d["status"]["availableReplicas"] == 3
                    && d["status"]["updatedReplicas"] == 3
                    && d["status"]["replicas"] == 3
            })
    };
    if !sim.wait_for(Duration::from_secs(30), ready).await {
        anyhow::bail!("the demo app never became ready on kubesim");
    }
    println!("deployment/api is running example/node-api:v1 with a fluentd sidecar, 3 replicas");

    let kubeconfig = sim.kubeconfig_yaml();
    for (title, tag) in [
        ("1. a good build: tag v2", "v2"),
        ("2. a tag nobody pushed: v10-missing", "v10-missing"),
        ("3. a build that crashes on start: v11-crash", "v11-crash"),
    ] {
        banner(title);
        let env: rollguard::Env = [
            ("ROLLGUARD_KUBECONFIG", kubeconfig.as_str()),
            ("ROLLGUARD_WORKLOAD", "deployment/api"),
            ("ROLLGUARD_CONTAINER", "node-api-container"),
            ("ROLLGUARD_TAG", tag),
            ("ROLLGUARD_TIMEOUT", "60s"),
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
    }
    let d = sim.get("apps/v1", "Deployment", "default", "api");
    let image = d
        .as_ref()
        .and_then(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default();
    println!(
        "\ndeployment/api ends on {image}; demo took {:.1}s",
        started.elapsed().as_secs_f64()
    );
    sim.shutdown().await;
    Ok(())
}

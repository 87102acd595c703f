//! GitHub Deployments (the `environment` input): real runs on kubesim, the
//! GitHub REST API played by a local HTTP receiver that records every
//! request. A run creates the deployment for its commit and environment,
//! posts `in_progress` before the rollout and `success` or `failure` at the
//! end, with the log URL and the environment URL; a refusal by GitHub is one
//! warning and changes nothing else.

use crate::support::{self, serve};

use kubesim::Handle;
use rollguard::Env;
use serde_json::{Value, json};
use wiremock::{MockServer, Request};

const TOKEN: &str = "ghs_deploymentsToken0123456789abcdef";

async fn github(deployments_status: u16) -> MockServer {
    let server = MockServer::start().await;
    let answer = if deployments_status == 201 {
        json!({"id": 4242, "environment": "production"})
    } else {
        support::github_forbidden()
    };
    serve(
        &server,
        "POST",
        "/repos/acme/shop/deployments",
        deployments_status,
        answer,
    )
    .await;
    serve(
        &server,
        "POST",
        "/repos/acme/shop/deployments/4242/statuses",
        201,
        json!({"id": 1}),
    )
    .await;
    server
}

fn env(h: &Handle, api: &str, tag: &str, files: &tempfile::TempDir) -> Env {
    let out = files.path().join("output").to_string_lossy().into_owned();
    let summary = files.path().join("summary").to_string_lossy().into_owned();
    support::env(
        h,
        &[
            ("INPUT_TAG", tag),
            ("INPUT_ENVIRONMENT", "production"),
            ("INPUT_ENVIRONMENT-URL", "https://shop.example.com"),
            ("INPUT_GITHUB-TOKEN", TOKEN),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_API_URL", api),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_SHA", "4f6c2a91d0b7e3c5a8f1"),
            ("GITHUB_EVENT_NAME", "workflow_dispatch"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_RUN_ID", "31"),
            ("GITHUB_OUTPUT", &out),
            ("GITHUB_STEP_SUMMARY", &summary),
        ],
    )
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

async fn posts(server: &MockServer) -> Vec<(String, Value)> {
    let reqs = server.received_requests().await.unwrap();
    for r in &reqs {
        assert_eq!(
            r.headers.get("authorization").and_then(|v| v.to_str().ok()),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(
            r.headers.get("accept").and_then(|v| v.to_str().ok()),
            Some("application/vnd.github+json")
        );
    }
    reqs.iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(|r| (r.url.path().to_string(), body(r)))
        .collect()
}

/// `tag` rolled out with GitHub answering `status` to the deployment's
/// creation; the run ended with `code`. The cluster, what was posted to
/// GitHub, the run's output and its files (output, summary).
async fn rolled_out(
    status: u16,
    tag: &str,
    code: i32,
) -> (Handle, Vec<(String, Value)>, String, tempfile::TempDir) {
    let h = support::web_cluster(25.0, 2).await;
    let server = github(status).await;
    let files = tempfile::tempdir().unwrap();
    let (o, out) = support::run(&env(&h, &server.uri(), tag, &files)).await;
    assert_eq!(o.exit_code, code, "{out}");
    let posts = posts(&server).await;
    (h, posts, out, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_rollout_is_a_successful_deployment() {
    let (h, posts, _, _) = rolled_out(201, "v2", 0).await;
    assert_eq!(support::image(&h), "example/web:v2");
    assert_eq!(posts.len(), 3, "{posts:#?}");
    let (p, created) = &posts[0];
    assert_eq!(p, "/repos/acme/shop/deployments");
    assert_eq!(created["ref"], "4f6c2a91d0b7e3c5a8f1");
    assert_eq!(created["environment"], "production");
    assert_eq!(created["required_contexts"], json!([]));
    assert_eq!(created["auto_merge"], false);
    assert!(
        created["description"]
            .as_str()
            .unwrap()
            .contains("deployment/web → v2")
    );
    let states: Vec<&str> = posts[1..]
        .iter()
        .map(|(p, b)| {
            assert_eq!(p, "/repos/acme/shop/deployments/4242/statuses");
            assert_eq!(b["environment_url"], "https://shop.example.com");
            assert_eq!(b["log_url"], "https://github.com/acme/shop/actions/runs/31");
            assert!(b["description"].as_str().unwrap().chars().count() <= 140);
            b["state"].as_str().unwrap()
        })
        .collect();
    assert_eq!(states, ["in_progress", "success"]);
    assert_eq!(posts[2].1["auto_inactive"], true);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_rollout_is_a_failed_deployment() {
    let (h, posts, _, _) = rolled_out(201, "v2-missing", 1).await;
    assert!(support::healthy(&h));
    assert_eq!(support::image(&h), "example/web:v1");
    let states: Vec<&str> = posts[1..]
        .iter()
        .map(|(_, b)| b["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["in_progress", "failure"]);
    let description = posts[2].1["description"].as_str().unwrap();
    assert!(description.contains("does not exist"), "{description}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_deployment_is_one_warning_and_the_rollout_goes_on() {
    let (h, posts, out, files) = rolled_out(403, "v2", 0).await;
    assert_eq!(support::image(&h), "example/web:v2");
    // The creation was refused: no status is posted for it.
    assert_eq!(posts.len(), 1, "{posts:#?}");
    // One warning in the log, naming the permission; the token only in
    // the runner's mask command.
    let warnings = support::lines_where(&out, |l| l.starts_with("::warning::GitHub deployment"));
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("HTTP 403") && warnings[0].contains("deployments: write"),
        "{out}"
    );
    assert!(
        out.lines()
            .filter(|l| l.contains(TOKEN))
            .all(|l| l.starts_with("::add-mask::")),
        "{out}"
    );
    // The other GitHub sinks still wrote their part.
    let summary = std::fs::read_to_string(files.path().join("summary")).unwrap();
    assert!(summary.contains("deployment/web"), "{summary}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_records_no_deployment() {
    let h = support::web_cluster(25.0, 2).await;
    let server = github(201).await;
    let files = tempfile::tempdir().unwrap();
    let mut e = env(&h, &server.uri(), "v2", &files);
    e.insert("INPUT_DRY-RUN".into(), "true".into());
    let (o, out) = support::run(&e).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(posts(&server).await.is_empty());
    h.shutdown().await;
}

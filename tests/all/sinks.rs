//! The CI sinks (GitHub, GitLab, Slack) against local HTTP receivers on
//! 127.0.0.1 that record method, path, headers and body.
//!
//! (Over 500 lines: one suite of end-to-end tests of one concern; each
//! test is a story of its own, set up by `support`.)

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use rollguard::config::{CiContext, Env, SlackOn};
use rollguard::diagnose::{self, Finding};
use rollguard::report::publish::{self, Posted, SinkConfig};
use rollguard::report::slack::{Retry, SlackThread};
use rollguard::report::timeline::{Mark, Sample};
use rollguard::report::{Conclusion, Report, Rollback};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{
    env_of, free_port, github_forbidden, json_at, no_comments, serve, takes_comment,
};

const GH_TOKEN: &str = "ghs_secretGitHubToken0123456789";
const GL_TOKEN: &str = "glpat-secretGitLabToken98765";
const SLACK_TOKEN: &str = "xoxb-secret-slack-bot-token-4242";
const KUBE_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.kube-secret-token";

/// rustls's process-wide provider, the one rollguard installs (ring): the
/// sinks tests call the reporters without a run that would install it. The
/// first install in the test process wins; every later one is a no-op.
fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn fixture<T: serde::de::DeserializeOwned>(dir: &str, file: &str) -> Vec<T> {
    let candidates = [
        format!("/work/shared/fixtures/real-k8s-v1.36/{dir}/{file}"),
        format!(
            "{}/../shared/fixtures/real-k8s-v1.36/{dir}/{file}",
            env!("CARGO_MANIFEST_DIR")
        ),
    ];
    let path = candidates
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("fixture present");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::from_value(v["items"].clone()).unwrap()
}

/// Findings from the core's diagnosis of a captured fixture.
fn real_findings(dir: &str, pod_prefix: &str, image: &str) -> Vec<Finding> {
    let pods: Vec<Pod> = fixture(dir, "pods.json");
    let events: Vec<Event> = fixture(dir, "events.json");
    let new: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.name.as_deref().unwrap().starts_with(pod_prefix))
        .collect();
    let signals: Vec<_> = new
        .iter()
        .flat_map(|p| diagnose::pod_signals(p, &events))
        .collect();
    diagnose::findings(&signals, new.len(), None, image, &BTreeMap::new())
}

fn base_report() -> Report {
    let mut r = Report::new("2026-11-25T13:51:20Z".into());
    r.result = Conclusion::RolledBack;
    r.exit_code = 3;
    r.workload = "deployment/web".into();
    r.namespace = Some("fx".into());
    r.container = Some("web".into());
    r.previous_image = Some("nginx:1.27".into());
    r.image = Some("nginx:does-not-exist".into());
    r.revision = Some("3".into());
    r.serving_revision = Some("4".into());
    r.finished_at = "2026-11-25T13:52:20Z".into();
    r.inputs
        .insert("report-file".into(), "rollguard-report.json".into());
    r.rollback = Some(Rollback {
        attempted: true,
        confirmed: true,
        detail: "back to revision 1 (nginx:1.27), 3/3 ready".into(),
    });
    r
}

/// A rolled-back run with the real image-missing finding.
fn image_missing_report() -> Report {
    let mut r = base_report();
    r.findings = real_findings("03-image-missing", "web-5978c69877", "nginx:does-not-exist");
    assert!(!r.findings.is_empty(), "the core diagnoses the fixture");
    r.cause = r.findings.first().map(|f| f.summary.clone());
    r.headline = "deployment/web failed and was rolled back".into();
    r.timeline = vec![
        Sample::new(0, 3, 0, 3),
        Sample::new(5_000, 3, 0, 3),
        Sample::new(12_000, 2, 0, 2),
        Sample {
            mark: Some(Mark::Verdict),
            ..Sample::new(30_000, 3, 0, 3)
        },
    ];
    r
}

/// Cluster text written by an attacker.
fn hostile_report() -> Report {
    let mut r = base_report();
    r.headline = "::error::pwned-headline".into();
    r.cause = Some("crash <!channel> @here </details> ```".into());
    r.findings = vec![Finding {
        cause: diagnose::Cause::CrashLoop,
        summary: "container web keeps exiting <!here> <@U123ABC> @channel".into(),
        container: Some("web".into()),
        pods: "1/3 new pods".into(),
        evidence: vec![
            "terminated with exit code 1 (Error): ::error::pwned".into(),
            "</details><script>alert(1)</script>".into(),
        ],
        per_pod: vec!["web-1: ``` | pipe".into()],
        logs: vec![
            "::error::pwned-from-logs".into(),
            "````\n::add-mask::x\n</details>".into(),
            "<!channel> deploy done @channel".into(),
        ],
        fix: "Fix the `start-up` error.".into(),
    }];
    r
}

fn sinks() -> SinkConfig {
    SinkConfig {
        slack_retry: Retry {
            max_retries: 3,
            max_wait: Duration::from_millis(5),
        },
        http_timeout: Duration::from_secs(5),
        ..SinkConfig::default()
    }
}

/// The CI context the run would read from this environment.
/// Only the GitHub sink, with its token.
fn github_sink() -> SinkConfig {
    SinkConfig {
        github_token: Some(GH_TOKEN.into()),
        ..sinks()
    }
}

/// Only the GitLab sink, with its token.
fn gitlab_sink() -> SinkConfig {
    SinkConfig {
        gitlab_token: Some(GL_TOKEN.into()),
        ..sinks()
    }
}

fn ci(env: &Env) -> CiContext {
    CiContext::from_env(env)
}

struct GhFiles {
    dir: tempfile::TempDir,
}

impl GhFiles {
    fn new() -> GhFiles {
        GhFiles {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
    fn event(&self, payload: Value) -> String {
        let p = self.path("event.json");
        std::fs::write(&p, payload.to_string()).unwrap();
        p
    }
}

/// GitHub env for a pull_request run against `api`.
fn gh_env(files: &GhFiles, api: &str, pr: u64) -> Env {
    let event = files.event(json!({ "pull_request": { "number": pr } }));
    env_of(&[
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_API_URL", api),
        ("GITHUB_REPOSITORY", "o/r"),
        ("GITHUB_EVENT_NAME", "pull_request"),
        ("GITHUB_EVENT_PATH", &event),
        ("GITHUB_SERVER_URL", "https://github.com"),
        ("GITHUB_RUN_ID", "99"),
        ("GITHUB_OUTPUT", &files.path("output")),
        ("GITHUB_STEP_SUMMARY", &files.path("summary")),
    ])
}

/// Publish `r` through `cfg` in `ci`, with nothing posted before.
async fn publish_first(r: &Report, cfg: &SinkConfig, ci: &CiContext) -> publish::Published {
    publish::publish_with(r, cfg, ci, &Posted::default()).await
}

/// The one warning publishing gave.
fn only_warning(p: &publish::Published) -> &str {
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    &p.warnings[0]
}

fn body_json(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

fn hdr<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

fn assert_github_headers(r: &Request) {
    assert_eq!(
        hdr(r, "authorization"),
        Some(format!("Bearer {GH_TOKEN}").as_str())
    );
    assert_eq!(hdr(r, "accept"), Some("application/vnd.github+json"));
    assert_eq!(hdr(r, "x-github-api-version"), Some("2022-11-28"));
    assert!(hdr(r, "user-agent").unwrap().starts_with("rollguard/"));
}

/// Parse a GITHUB_OUTPUT file (both forms).
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        } else {
            let (k, v) = line.split_once('=').unwrap();
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

#[tokio::test]
async fn github_outputs_summary_and_annotation() {
    init();
    let files = GhFiles::new();
    let mut env = gh_env(&files, "http://127.0.0.1:9", 1);
    env.remove("GITHUB_EVENT_PATH");
    let mut r = image_missing_report();
    r.cause = Some("line one\nline two".into());
    let p = publish_first(&r, &sinks(), &ci(&env)).await;
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    let outputs = parse_outputs(&files.read("output"));
    assert_eq!(outputs["result"], "rolled-back");
    // After a confirmed rollback: what serves now, and what was attempted.
    assert_eq!(outputs["revision"], "4");
    assert_eq!(outputs["image"], "nginx:1.27");
    assert_eq!(outputs["previous-image"], "nginx:1.27");
    assert_eq!(outputs["attempted-image"], "nginx:does-not-exist");
    assert_eq!(outputs["attempted-revision"], "3");
    assert_eq!(outputs["rolled-back"], "true");
    // Cluster text is one line in every sink: a line break cannot split it.
    assert_eq!(outputs["cause"], "line one line two");
    assert_eq!(outputs["report-file"], "rollguard-report.json");
    assert!(files.read("output").contains("cause=line one line two\n"));

    let summary = files.read("summary");
    let f = &r.findings[0];
    // The evidence is in plain sight (not folded), with the pod names.
    let folded: String = summary
        .split("<details>")
        .skip(1)
        .map(|d| d.split("</details>").next().unwrap())
        .collect();
    let shown = f.per_pod.first().unwrap_or(&f.evidence[0]);
    assert!(summary.contains(shown.as_str()), "{summary}");
    assert!(!folded.contains(shown.as_str()), "{summary}");
    assert!(summary.contains(f.cause.title()));
    assert!(summary.contains("```mermaid\n---\nconfig:"), "{summary}");
    assert!(summary.contains("xychart-beta"));
    assert!(
        summary.contains("**Exposure:** lowest available 2/3 for 18 s"),
        "{summary}"
    );
    assert!(summary.contains("| Result | `rolled-back` (exit code 3) |"));

    // One line: the title names workload and verdict, the message the cause.
    assert!(
        p.stdout.starts_with(
            "::error title=rollguard%3A deployment/web failed and rolled back::line one line two\n"
        ),
        "{}",
        p.stdout
    );
}

#[tokio::test]
async fn github_comment_marker_on_page_two_is_patched() {
    init();
    let server = MockServer::start().await;
    let api = server.uri();
    serve(&server, "GET", "/user", 403, github_forbidden()).await;
    let page2 = format!("{api}/repos/o/r/issues/7/comments?per_page=100&page=2");
    Mock::given(method("GET"))
        .and(path("/repos/o/r/issues/7/comments"))
        .and(query_param_is_missing("page"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Link", format!("<{page2}>; rel=\"next\", <{page2}>; rel=\"last\"").as_str())
                .set_body_json(json!([
                    {"id": 111, "body": "LGTM", "user": {"login": "alice", "type": "User"}},
                    {"id": 112, "body": "<!-- rollguard:fx/deployment/other -->", "user": {"login": "github-actions[bot]", "type": "Bot"}}
                ])),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/issues/7/comments"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 222, "body": "<!-- rollguard:fx/deployment/web -->\nold", "user": {"login": "github-actions[bot]", "type": "Bot"}}
        ])))
        .mount(&server)
        .await;
    json_at(
        "PATCH",
        "/repos/o/r/issues/comments/222",
        200,
        json!({"id": 222}),
    )
    .expect(1)
    .mount(&server)
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(0)
        .mount(&server)
        .await;

    let files = GhFiles::new();
    let env = gh_env(&files, &api, 7);
    let cfg = github_sink();
    let r = image_missing_report();
    let p = publish_first(&r, &cfg, &ci(&env)).await;
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.done, vec!["GitHub: updated PR comment 222".to_string()]);

    let reqs = server.received_requests().await.unwrap();
    for q in &reqs {
        assert_github_headers(q);
    }
    let patch = reqs.iter().find(|q| q.method.as_str() == "PATCH").unwrap();
    let body = body_json(patch)["body"].as_str().unwrap().to_string();
    assert!(body.starts_with("<!-- rollguard:fx/deployment/web -->\n"));
    assert!(body.contains(&r.findings[0].evidence[0]));
    assert!(body.contains("https://github.com/o/r/actions/runs/99"));
    assert!(body.len() <= 65_536);
}

#[tokio::test]
async fn github_comment_created_for_push_when_absent() {
    init();
    let server = MockServer::start().await;
    serve(&server, "GET", "/user", 200, json!({"login": "deploy-bot"})).await;
    json_at(
        "GET",
        "/repos/o/r/commits/abc123/pulls",
        200,
        json!([
            {"number": 5, "state": "closed"},
            {"number": 9, "state": "open"}
        ]),
    )
    .expect(1)
    .mount(&server)
    .await;
    no_comments(&server, "o/r", 9).await;
    json_at(
        "POST",
        "/repos/o/r/issues/9/comments",
        201,
        json!({"id": 333}),
    )
    .expect(1)
    .mount(&server)
    .await;

    let files = GhFiles::new();
    let mut env = gh_env(&files, &server.uri(), 0);
    env.insert("GITHUB_EVENT_NAME".into(), "push".into());
    env.insert("GITHUB_SHA".into(), "abc123".into());
    let cfg = github_sink();
    let p = publish_first(&image_missing_report(), &cfg, &ci(&env)).await;
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.done, vec!["GitHub: created PR comment 333".to_string()]);
    let reqs = server.received_requests().await.unwrap();
    let post = reqs.iter().find(|q| q.method.as_str() == "POST").unwrap();
    assert_github_headers(post);
    assert!(
        body_json(post)["body"]
            .as_str()
            .unwrap()
            .starts_with("<!-- rollguard:fx/deployment/web -->")
    );
}

#[tokio::test]
async fn github_comment_of_someone_else_is_not_overwritten() {
    init();
    let server = MockServer::start().await;
    serve(&server, "GET", "/user", 200, json!({"login": "deploy-bot"})).await;
    serve(&server, "GET", "/repos/o/r/issues/4/comments", 200, json!([
            {"id": 41, "body": "copied <!-- rollguard:fx/deployment/web -->", "user": {"login": "mallory", "type": "User"}}
        ])).await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(0)
        .mount(&server)
        .await;
    json_at(
        "POST",
        "/repos/o/r/issues/4/comments",
        201,
        json!({"id": 42}),
    )
    .expect(1)
    .mount(&server)
    .await;
    let files = GhFiles::new();
    let env = gh_env(&files, &server.uri(), 4);
    let cfg = github_sink();
    let p = publish_first(&image_missing_report(), &cfg, &ci(&env)).await;
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.done, vec!["GitHub: created PR comment 42".to_string()]);
}

#[tokio::test]
async fn github_403_on_fork_is_one_warning() {
    init();
    let server = MockServer::start().await;
    no_comments(&server, "o/r", 3).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_json(github_forbidden()))
        .mount(&server)
        .await;
    let files = GhFiles::new();
    let env = gh_env(&files, &server.uri(), 3);
    let cfg = github_sink();
    let r = image_missing_report();
    let p = publish_first(&r, &cfg, &ci(&env)).await;
    let w = only_warning(&p);
    assert!(w.contains("HTTP 403"), "{w}");
    assert!(w.contains("Resource not accessible by integration"), "{w}");
    assert!(w.contains("fork"), "{w}");
    assert!(!w.contains(GH_TOKEN));
    // The other GitHub sinks still worked; the warning reaches the log.
    assert!(files.read("summary").contains("#### 1. "));
    assert!(
        p.stdout
            .contains("::warning::GitHub PR comment not written")
    );
    assert_eq!(r.exit_code, 3);
}

#[tokio::test]
async fn gitlab_note_skips_system_notes_and_updates_own() {
    init();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/user"))
        .and(header("PRIVATE-TOKEN", GL_TOKEN))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": 42, "username": "project_1_bot"})),
        )
        .mount(&server)
        .await;
    let notes = "/api/v4/projects/17/merge_requests/5/notes";
    Mock::given(method("GET"))
        .and(path(notes))
        .and(query_param("page", "1"))
        .and(query_param("per_page", "100"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Next-Page", "2")
                .set_body_json(json!([
                    {"id": 1, "system": true, "body": "changed <!-- rollguard:fx/deployment/web -->", "author": {"id": 42}},
                    {"id": 3, "system": false, "body": "<!-- rollguard:fx/deployment/web --> copy", "author": {"id": 7}}
                ])),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(notes))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Next-Page", "")
                .set_body_json(json!([
                    {"id": 2, "system": false, "body": "<!-- rollguard:fx/deployment/web -->\nold", "author": {"id": 42}}
                ])),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{notes}/2")))
        .and(header("PRIVATE-TOKEN", GL_TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 2})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 9})))
        .expect(0)
        .mount(&server)
        .await;
    let api = format!("{}/api/v4", server.uri());
    let env = env_of(&[
        ("GITLAB_CI", "true"),
        ("CI_API_V4_URL", &api),
        ("CI_PROJECT_ID", "17"),
        ("CI_MERGE_REQUEST_IID", "5"),
        ("CI_JOB_URL", "https://gitlab.example.com/g/p/-/jobs/1"),
    ]);
    let cfg = gitlab_sink();
    let r = image_missing_report();
    let p = publish_first(&r, &cfg, &ci(&env)).await;
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.done, vec!["GitLab: updated MR note 2".to_string()]);
    assert!(p.stdout.is_empty(), "no GitHub commands on GitLab");
    let reqs = server.received_requests().await.unwrap();
    let put = reqs.iter().find(|q| q.method.as_str() == "PUT").unwrap();
    let body = body_json(put)["body"].as_str().unwrap().to_string();
    assert!(body.starts_with("<!-- rollguard:fx/deployment/web -->"));
    assert!(body.contains("https://gitlab.example.com/g/p/-/jobs/1"));
    assert!(body.contains(&r.findings[0].evidence[0]));
}

#[tokio::test]
async fn gitlab_500_is_one_warning() {
    init();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_string("{\"message\":\"500 Internal Server Error\"}"),
        )
        .mount(&server)
        .await;
    let api = format!("{}/api/v4", server.uri());
    let env = env_of(&[
        ("GITLAB_CI", "true"),
        ("CI_API_V4_URL", &api),
        ("CI_PROJECT_ID", "17"),
        ("CI_MERGE_REQUEST_IID", "5"),
    ]);
    let cfg = gitlab_sink();
    let p = publish_first(&image_missing_report(), &cfg, &ci(&env)).await;
    let w = only_warning(&p);
    assert!(w.contains("HTTP 500"), "{w}");
    assert!(!w.contains(GL_TOKEN));
}

/// A GitLab job's context (the Slack message links the job).
fn slack_ci() -> CiContext {
    ci(&env_of(&[(
        "CI_JOB_URL",
        "https://gitlab.example.com/g/p/-/jobs/1",
    )]))
}

/// The bot token and channel, against the Slack Web API at `api`.
fn slack_bot(api: &str) -> SinkConfig {
    SinkConfig {
        slack_token: Some(SLACK_TOKEN.into()),
        slack_channel: Some("#deploys".into()),
        slack_api: api.into(),
        ..sinks()
    }
}

#[tokio::test]
async fn slack_429_retry_after_then_post_then_update() {
    init();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "30"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    let posted = json!({"ok": true, "channel": "C0123", "ts": "1700000000.000100"});
    json_at("POST", "/chat.postMessage", 200, posted.clone())
        .with_priority(2)
        .mount(&server)
        .await;
    json_at("POST", "/chat.update", 200, posted)
        .expect(1)
        .mount(&server)
        .await;
    let ci = slack_ci();
    let cfg = slack_bot(&server.uri());
    let mut r = image_missing_report();
    r.result = Conclusion::Failed;
    r.rollback = Some(Rollback {
        attempted: true,
        confirmed: false,
        detail: "in progress".into(),
    });
    let started = std::time::Instant::now();
    let p = publish_first(&r, &cfg, &ci).await;
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.done, vec!["Slack: message posted".to_string()]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "Retry-After is capped"
    );
    let thread = p.slack_thread.unwrap();
    assert_eq!(
        thread,
        SlackThread {
            channel: "C0123".into(),
            ts: "1700000000.000100".into()
        }
    );

    // The rollback is confirmed: a later publish updates that message.
    let r = image_missing_report();
    let posted = Posted {
        slack_thread: Some(thread.clone()),
        ..Posted::default()
    };
    let p = publish::publish_with(&r, &cfg, &ci, &posted).await;
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.done, vec!["Slack: message updated".to_string()]);

    let reqs = server.received_requests().await.unwrap();
    assert_eq!(reqs.len(), 4, "2 × 429, 1 post, 1 update");
    for q in &reqs {
        assert_eq!(
            hdr(q, "authorization"),
            Some(format!("Bearer {SLACK_TOKEN}").as_str())
        );
        assert!(
            hdr(q, "content-type")
                .unwrap()
                .starts_with("application/json")
        );
    }
    let post = body_json(&reqs[2]);
    assert_eq!(post["channel"], "#deploys");
    assert!(post["text"].as_str().unwrap().contains("deployment/web"));
    let update = body_json(&reqs[3]);
    assert_eq!(update["channel"], "C0123");
    assert_eq!(update["ts"], "1700000000.000100");
    let blocks = update["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    assert_eq!(blocks[0]["type"], "header");
    let all = update.to_string();
    assert!(all.contains("*Rollback:* confirmed healthy"), "{all}");
    assert!(all.contains("<https://gitlab.example.com/g/p/-/jobs/1|CI job>"));
}

#[tokio::test]
async fn slack_429_forever_is_bounded() {
    init();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .expect(4)
        .mount(&server)
        .await;
    let p = publish_first(
        &image_missing_report(),
        &slack_bot(&server.uri()),
        &slack_ci(),
    )
    .await;
    let w = only_warning(&p);
    assert!(w.contains("429"), "{w}");
}

#[tokio::test]
async fn slack_ok_false_is_one_warning() {
    init();
    let server = MockServer::start().await;
    serve(
        &server,
        "POST",
        "/chat.postMessage",
        200,
        json!({"ok": false, "error": "channel_not_found"}),
    )
    .await;
    let p = publish_first(
        &image_missing_report(),
        &slack_bot(&server.uri()),
        &slack_ci(),
    )
    .await;
    let w = only_warning(&p);
    assert!(w.contains("channel_not_found"));
    assert!(p.slack_thread.is_none());
}

#[tokio::test]
async fn slack_webhook_500_is_a_warning_without_the_url() {
    init();
    let server = MockServer::start().await;
    let hook_path = "/services/T000/B000/XXXXsecretHOOKpart";
    Mock::given(method("POST"))
        .and(path(hook_path))
        .respond_with(ResponseTemplate::new(500).set_body_string("internal error"))
        .expect(1)
        .mount(&server)
        .await;
    let webhook = format!("{}{hook_path}", server.uri());
    let cfg = SinkConfig {
        slack_webhook: Some(webhook.clone()),
        ..sinks()
    };
    let p = publish_first(&image_missing_report(), &cfg, &CiContext::default()).await;
    let w = only_warning(&p);
    assert!(w.contains("HTTP 500"));
    assert!(!w.contains("XXXXsecretHOOKpart"));
    assert!(!w.contains(&server.uri()));

    // A dead webhook (nothing listens on the port): the transport error
    // must not echo the URL either.
    let port = free_port();
    let cfg = SinkConfig {
        slack_webhook: Some(format!("http://127.0.0.1:{port}{hook_path}")),
        ..sinks()
    };
    let p = publish_first(&image_missing_report(), &cfg, &CiContext::default()).await;
    let w = only_warning(&p);
    assert!(!w.contains("XXXXsecretHOOKpart"), "{w}");
    assert!(w.contains("could not connect"), "{w}");
}

#[tokio::test]
async fn slack_on_failure_skips_success_and_always_posts_it() {
    init();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let mut r = base_report();
    r.result = Conclusion::Succeeded;
    r.exit_code = 0;
    r.rollback = None;
    r.headline = "deployment/web rolled out: 3/3 new pods ready".into();
    let mut cfg = SinkConfig {
        slack_webhook: Some(format!("{}/hook", server.uri())),
        ..sinks()
    };
    let p = publish_first(&r, &cfg, &CiContext::default()).await;
    assert!(p.done.is_empty() && p.warnings.is_empty());
    cfg.slack_on = SlackOn::Always;
    let p = publish_first(&r, &cfg, &CiContext::default()).await;
    assert_eq!(p.done, vec!["Slack: message posted".to_string()]);
    let reqs = server.received_requests().await.unwrap();
    let v = body_json(&reqs[0]);
    assert!(v["text"].as_str().unwrap().contains("deployed"));
}

#[tokio::test]
async fn hostile_cluster_text_is_escaped_in_every_sink() {
    init();
    let server = MockServer::start().await;
    takes_comment(&server, "o/r", 8, 1).await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let files = GhFiles::new();
    let env = gh_env(&files, &server.uri(), 8);
    let cfg = SinkConfig {
        github_token: Some(GH_TOKEN.into()),
        slack_webhook: Some(format!("{}/hook", server.uri())),
        ..sinks()
    };
    let r = hostile_report();
    let p = publish_first(&r, &cfg, &ci(&env)).await;
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    // stdout: exactly one command line, our annotation; nothing injected.
    let lines: Vec<&str> = p.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("::error title="));
    assert!(!lines[0].contains('\r'));

    let reqs = server.received_requests().await.unwrap();
    let comment = reqs
        .iter()
        .find(|q| q.url.path() == "/repos/o/r/issues/8/comments" && q.method.as_str() == "POST")
        .map(|q| body_json(q)["body"].as_str().unwrap().to_string())
        .unwrap();
    for md in [files.read("summary"), comment] {
        // No line of the Markdown starts a workflow command, in code
        // blocks included.
        assert!(
            !md.lines().any(|l| l.trim_start().starts_with("::")),
            "{md}"
        );
        // Outside code blocks the only HTML is ours: every <details>
        // (a long log tail's fold) closes, cluster text cannot close one
        // early, add a script or mention anyone. Every fence closes.
        let (prose, unclosed) = outside_fences(&md);
        assert!(!unclosed, "unclosed fence in {md}");
        assert_eq!(
            prose.matches("<details>").count(),
            prose.matches("</details>").count(),
            "{prose}"
        );
        assert!(prose.matches("<details>").count() <= r.findings.len());
        assert!(!prose.contains("<script>"));
        assert!(!prose.contains("<!channel>"));
        for mention in ["@here", "@channel", "<@U123ABC>"] {
            assert!(!prose.contains(mention), "{mention} in {prose}");
        }
        // The hostile text is still shown (escaped, not dropped).
        assert!(md.contains("pwned-from-logs"));
        assert!(md.contains("&lt;/details&gt;"));
    }

    let slack = reqs
        .iter()
        .find(|q| q.url.path() == "/hook")
        .map(body_json)
        .unwrap();
    let text = slack.to_string();
    for bad in ["<!channel>", "<!here>", "<@U123ABC>", "@channel", "@here"] {
        assert!(!text.contains(bad), "{bad} in {text}");
    }
    assert!(text.contains("&lt;!channel&gt;"));
    for b in slack["blocks"].as_array().unwrap() {
        if let Some(t) = b["text"]["text"].as_str()
            && let Some(code) = t.split("```").nth(1)
        {
            assert!(
                !code.contains('`'),
                "a backtick inside a Slack code block: {t}"
            );
        }
    }
}

/// The Markdown outside fenced code blocks, and whether a fence was left
/// open. A fence closes with a line of at least as many backticks.
fn outside_fences(md: &str) -> (String, bool) {
    let mut prose = String::new();
    let mut open: Option<usize> = None;
    for l in md.lines() {
        let run = l.chars().take_while(|c| *c == '`').count();
        match open {
            None if run >= 3 => open = Some(run),
            None => {
                prose.push_str(l);
                prose.push('\n');
            }
            Some(n) if run >= n && l.trim_end().len() == run => open = None,
            Some(_) => {}
        }
    }
    (prose, open.is_some())
}

#[tokio::test]
async fn no_secret_value_appears_in_any_output() {
    init();
    let server = MockServer::start().await;
    no_comments(&server, "o/r", 6).await;
    Mock::given(method("POST"))
        .and(path("/repos/o/r/issues/6/comments"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&server)
        .await;
    serve(
        &server,
        "GET",
        "/api/v4/projects/17/merge_requests/5/notes",
        200,
        json!([]),
    )
    .await;
    serve(
        &server,
        "POST",
        "/api/v4/projects/17/merge_requests/5/notes",
        201,
        json!({"id": 5}),
    )
    .await;
    serve(
        &server,
        "POST",
        "/chat.postMessage",
        200,
        json!({"ok": false, "error": "invalid_auth"}),
    )
    .await;
    let webhook = format!("{}/services/T1/B1/webhookSECRETpart", server.uri());
    let files = GhFiles::new();
    let mut env = gh_env(&files, &server.uri(), 6);
    env.insert("GITLAB_CI".into(), "true".into());
    env.insert("CI_API_V4_URL".into(), format!("{}/api/v4", server.uri()));
    env.insert("CI_PROJECT_ID".into(), "17".into());
    env.insert("CI_MERGE_REQUEST_IID".into(), "5".into());
    let cfg = SinkConfig {
        github_token: Some(GH_TOKEN.into()),
        gitlab_token: Some(GL_TOKEN.into()),
        slack_webhook: Some(webhook.clone()),
        slack_token: Some(SLACK_TOKEN.into()),
        slack_channel: Some("#deploys".into()),
        slack_api: server.uri(),
        extra_secrets: vec![KUBE_TOKEN.into()],
        ..sinks()
    };
    // A container that logged secrets the redaction did not catch.
    let mut r = image_missing_report();
    r.findings[0].logs = vec![
        format!("connecting with {GH_TOKEN}"),
        format!("bearer {KUBE_TOKEN}"),
        format!("hook {webhook} slack {SLACK_TOKEN} gitlab {GL_TOKEN}"),
    ];
    r.cause = Some(format!("leaked {KUBE_TOKEN}"));

    let masks = publish::start(&cfg, &ci(&env));
    for s in [
        GH_TOKEN,
        GL_TOKEN,
        SLACK_TOKEN,
        KUBE_TOKEN,
        webhook.as_str(),
    ] {
        assert!(
            masks.contains(&format!("::add-mask::{s}\n")),
            "mask for a secret"
        );
    }
    let p = publish_first(&r, &cfg, &ci(&env)).await;
    // Two failing sinks (GitHub 500, Slack invalid_auth), each one line.
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);

    let reqs = server.received_requests().await.unwrap();
    let mut outputs = vec![
        ("stdout", p.stdout.clone()),
        ("warnings", p.warnings.join("\n")),
        ("output file", files.read("output")),
        ("summary", files.read("summary")),
    ];
    for q in &reqs {
        outputs.push((
            "request body",
            String::from_utf8_lossy(&q.body).into_owned(),
        ));
        outputs.push(("request path", q.url.to_string()));
    }
    for (what, text) in &outputs {
        for s in [
            GH_TOKEN,
            GL_TOKEN,
            SLACK_TOKEN,
            KUBE_TOKEN,
            webhook.as_str(),
            "webhookSECRETpart",
        ] {
            assert!(!text.contains(s), "a secret in the {what}: {text}");
        }
    }
    // The bodies were really sent (and redacted, not dropped).
    assert!(
        reqs.iter()
            .any(|q| String::from_utf8_lossy(&q.body).contains("connecting with ***"))
    );
}

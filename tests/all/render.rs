//! The reports as a person sees them: real kubesim runs (a good rollout, a
//! missing tag, a crash during the bake, unschedulable pods, a group where
//! one workload fails), their GitHub step summary and PR comment rendered
//! as GitHub does (marked + mermaid in headless Chromium, by
//! tests/render/render.mjs), and assertions on the rendered page: the
//! chart's ticks, series, legend and verdict mark; no sentence said twice;
//! no Markdown or HTML escape left visible; the evidence in sight without
//! clicking. Screenshots are kept under target/render/ (CI artefacts).
//!
//! Needs node, /usr/bin/chromium and the npm packages of
//! .ci/install-render-tools.sh; without them the test is skipped, except
//! under CI=true, where a missing tool is a failure.

use crate::support;
use crate::support::{DeploymentSpec, Fixture, PodLabel};

use std::path::{Path, PathBuf};
use std::time::Duration;

use kubesim::Handle;
use kubesim::scenario::ImageBehaviour;
use rollguard::Outcome;
use rollguard::report::github;
use serde_json::{Value, json};

/// Slow enough that a rollout spans a few real seconds (a chart to draw).
const SPEED: f64 = 4.0;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the npm packages are, or why the test cannot run.
fn tools() -> Result<PathBuf, String> {
    let modules = root().join(".tools/render/node_modules");
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("node is not installed".into());
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Err("/usr/bin/chromium is not installed".into());
    }
    for m in ["marked", "mermaid", "playwright-core"] {
        if !modules.join(m).exists() {
            return Err(format!(
                "{m} is not in .tools/render (run .ci/install-render-tools.sh)"
            ));
        }
    }
    Ok(modules)
}

fn deployment(name: &str, image: &str, replicas: i64, extra: Value) -> Value {
    let mut container = json!({"name": name, "image": image});
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            container[k] = v.clone();
        }
    }
    DeploymentSpec {
        name,
        containers: Some(json!([container])),
        replicas,
        label: PodLabel::App,
        labelled: true,
        min_ready_seconds: Some(2),
        ..Default::default()
    }
    .into()
}

/// A real run with GitHub's environment: the step summary as the sink wrote
/// it, and the PR comment body for the same report.
struct Rendered {
    name: String,
    outcome: Outcome,
    summary: String,
    comment: String,
}

async fn run(name: &str, h: &Handle, dir: &Path, pairs: &[(&str, &str)]) -> Rendered {
    let summary = dir.join(format!("{name}.summary.raw"));
    let _ = std::fs::remove_file(&summary);
    let summary_path = summary.to_string_lossy().into_owned();
    let output_path = dir
        .join(format!("{name}.output"))
        .to_string_lossy()
        .into_owned();
    let env = support::env_with(
        h,
        &[
            ("INPUT_VERIFY-IMAGE", "false"),
            ("INPUT_CAPACITY-CHECK", "off"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_SHA", "4f6c2a91d0b7e3c5a8f1"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_REF", "refs/pull/42/merge"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_RUN_ID", "7"),
            ("GITHUB_STEP_SUMMARY", &summary_path),
            ("GITHUB_OUTPUT", &output_path),
        ],
        pairs,
    );
    let (outcome, _) = support::run(&env).await;
    let summary = std::fs::read_to_string(&summary).expect("the step summary was written");
    let comment = github::comment_body(
        &outcome.report,
        &rollguard::config::CiContext::from_env(&env),
    );
    Rendered {
        name: name.to_string(),
        outcome,
        summary,
        comment,
    }
}

async fn stories(dir: &Path) -> Vec<Rendered> {
    let web = || deployment("web", "example/web:v1", 3, json!({}));
    vec![
        // A good rollout of 3 replicas.
        story(
            "good",
            cluster().deployment(web()).image(
                "example/web:v2",
                ImageBehaviour::Ok {
                    ready_after: Duration::from_secs(3),
                },
            ),
            dir,
            &[("INPUT_TAG", "v2")],
            0,
        )
        .await,
        // A tag that does not exist.
        story(
            "missing-tag",
            cluster().deployment(web()),
            dir,
            &[("INPUT_TAG", "v2-missing")],
            1,
        )
        .await,
        // Ready, then crashing during the bake.
        story(
            "crash-during-bake",
            cluster().deployment(web()).image(
                "example/web:v2-late-crash",
                ImageBehaviour::LateCrash {
                    after: Duration::from_secs(12),
                },
            ),
            dir,
            &[("INPUT_TAG", "v2-late-crash"), ("INPUT_BAKE", "60s")],
            1,
        )
        .await,
        // New pods that fit on no node (the surge pod of 1200m on 2-cpu nodes).
        story(
            "unschedulable",
            cluster().node_cpu("2").deployment(deployment(
                "web",
                "example/web:v1",
                2,
                json!({"resources": {"requests": {"cpu": "1200m"}}}),
            )),
            dir,
            &[("INPUT_TAG", "v2"), ("INPUT_UNSCHEDULABLE-GRACE", "3s")],
            1,
        )
        .await,
        // A group: b crashes, a is rolled back with it.
        story(
            "group",
            cluster()
                .deployment(deployment("a", "example/a:v1", 2, json!({})))
                .deployment(deployment("b", "example/b:v1", 2, json!({})))
                .image(
                    "example/b:v2",
                    ImageBehaviour::Crash {
                        after: Duration::from_secs(1),
                        exit_code: 1,
                    },
                ),
            dir,
            &[
                ("INPUT_WORKLOAD", "deployment/a, deployment/b"),
                ("INPUT_TAG", "v2"),
            ],
            1,
        )
        .await,
    ]
}

/// Two nodes of 4 cpu.
fn cluster() -> Fixture {
    Fixture::new().speed(SPEED).nodes(2).node_cpu("4")
}

/// One story: its cluster started, rollguard run on `web` (unless `pairs`
/// name the workload) with `pairs`, ending with exit `code`.
async fn story(
    name: &str,
    fixture: Fixture,
    dir: &Path,
    pairs: &[(&str, &str)],
    code: i32,
) -> Rendered {
    let h = fixture.start().await;
    let mut inputs = vec![("INPUT_WORKLOAD", "web")];
    inputs.extend_from_slice(pairs);
    let r = run(name, &h, dir, &inputs).await;
    assert_eq!(r.outcome.exit_code, code, "{name}");
    h.shutdown().await;
    r
}

/// The texts that must be visible without clicking: the first evidence
/// line of each finding (its pod names in it), and its fix.
fn must_show(o: &Outcome) -> Vec<String> {
    o.report
        .findings
        .iter()
        .flat_map(|f| {
            let evidence = f.per_pod.first().or(f.evidence.first()).cloned();
            // The first words are enough to find it (the rest may wrap).
            let cut = |s: String| s.chars().take(60).collect::<String>();
            evidence.map(cut).into_iter().chain([cut(f.fix.clone())])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_render_well_in_a_real_browser() {
    let modules = match tools() {
        Ok(m) => m,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the rendering tests need their tools under CI: {why}")
        }
        Err(why) => {
            eprintln!("skipping the rendering test: {why}");
            return;
        }
    };
    let dir = root().join("target/render");
    std::fs::create_dir_all(&dir).unwrap();
    let stories = stories(&dir).await;

    let mut manifest = Vec::new();
    for s in &stories {
        for (kind, md) in [("summary", &s.summary), ("comment", &s.comment)] {
            let file = dir.join(format!("{}-{kind}.md", s.name));
            std::fs::write(&file, md).unwrap();
            manifest.push(json!({
                "name": format!("{}-{kind}", s.name),
                "markdown": file,
                "png": dir.join(format!("{}-{kind}.png", s.name)),
                "visible": must_show(&s.outcome),
            }));
        }
    }
    let manifest_path = dir.join("manifest.json");
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let output = tokio::process::Command::new("node")
        .arg(root().join("tests/render/render.mjs"))
        .arg(&manifest_path)
        .arg(&modules)
        .output()
        .await
        .expect("node runs");
    assert!(
        output.status.success(),
        "render.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per report"))
        .collect();
    assert_eq!(results.len(), manifest.len());
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results).unwrap(),
    )
    .unwrap();

    let mut charts = 0;
    for (r, story) in results.iter().zip(stories.iter().flat_map(|s| [s, s])) {
        let name = r["name"].as_str().unwrap();
        let failed = story.outcome.exit_code != 0;
        assert_eq!(r["pageErrors"], json!([]), "{name}: page errors");
        assert!(r["mermaidError"].is_null(), "{name}: {}", r["mermaidError"]);
        assert_eq!(r["repeated"], json!([]), "{name}: a sentence said twice");
        assert_eq!(r["escapes"], json!([]), "{name}: escapes visible");
        for (want, shown) in r["shown"].as_object().unwrap() {
            assert_eq!(
                shown,
                &json!(true),
                "{name}: not visible without clicking: {want}"
            );
        }
        let text = r["text"].as_str().unwrap();
        // The heading says workload, verdict and (on failure) the cause.
        let heading = text.lines().next().unwrap_or("");
        if let Some(cause) = &story.outcome.report.cause
            && story.outcome.report.workloads.is_empty()
        {
            let start: String = cause.chars().take(40).collect();
            assert!(
                heading.contains(&start),
                "{name}: heading {heading:?} lacks {start:?}"
            );
        }
        assert!(text.contains("acme/shop") && text.contains("#42") && text.contains("octocat"));
        if failed && story.outcome.report.workloads.is_empty() {
            assert!(text.contains("Exposure:"), "{name}: no exposure line");
        }
        for c in r["charts"].as_array().unwrap() {
            charts += 1;
            let x = support::strs(&c["xTicks"]);
            let mut uniq = x.clone();
            uniq.sort();
            uniq.dedup();
            assert!(x.len() >= 4, "{name}: too few ticks {x:?}");
            assert_eq!(uniq.len(), x.len(), "{name}: repeated ticks {x:?}");
            let verdict = if failed { '✘' } else { '✔' };
            assert!(
                x.iter().any(|t| t.contains(verdict)),
                "{name}: no verdict tick in {x:?}"
            );
            for y in c["yTicks"].as_array().unwrap() {
                let y = y.as_str().unwrap();
                assert!(y.parse::<u32>().is_ok(), "{name}: fractional pod tick {y}");
            }
            assert_eq!(c["lines"], 2, "{name}: both series");
            assert!(
                text.contains("old version") && text.contains("new version"),
                "{name}: legend"
            );
            assert!(
                c["height"].as_f64().unwrap() <= 300.0,
                "{name}: chart too tall"
            );
        }
        // The group says who failed and who was rolled back with it.
        if story.name == "group" {
            assert!(heading.contains("deployment/b failed"), "{heading}");
            assert!(
                heading.contains("deployment/a rolled back with it"),
                "{heading}"
            );
        }
    }
    // The stories that ran long enough drew a chart (the good one, the
    // bake crash at least).
    assert!(charts >= 4, "only {charts} charts drawn");
}

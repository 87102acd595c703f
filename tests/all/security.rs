//! Security: hostile cluster text on every sink, secrets in parse errors,
//! in-progress markers that `kubectl rollout undo` copies around, the
//! permission pre-check, input validation, credentials over plain HTTP, a
//! signal during the rollback, the lock wait. Each test drives the real
//! binary (or the library entry point) against kubesim and checks what was
//! printed and what the cluster holds afterwards.
//!
//! (Over 500 lines: one suite of end-to-end tests of one concern; each
//! test is a story of its own, set up by `support`.)

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::*;
use proptest::prelude::*;
use rollguard::Env;
use rollguard::diagnose::{Cause, Finding};
use rollguard::report::{Conclusion, Report, Rollback, Sink};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

// ------------------------------------------------------------ helpers

/// Characters no sink may carry raw (line feeds are the sinks' own).
fn bad_char(c: char) -> bool {
    (c.is_control() && c != '\n') || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Lines that would be a workflow command on a GitHub runner.
fn command_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.trim_start().starts_with("::"))
        .collect()
}

/// rollguard's own workflow commands.
fn is_own_command(line: &str) -> bool {
    line.starts_with("::group::rollguard: ")
        || line == "::group::rollguard-rollout"
        || line == "::endgroup::"
        || line.starts_with("::error title=rollguard%3A ")
        || line.starts_with("::warning::")
        || line.starts_with("::add-mask::")
}

/// The real binary's stdout and stderr, and its exit code.
async fn run_binary(env: &Env) -> (Option<i32>, String, String) {
    let child = spawn(env);
    let out = child.wait_with_output().await.expect("rollguard ran");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    (out.status.code(), stdout, stderr)
}

const HOSTILE: &str = "boom\n::stop-commands::pwnedtoken\n::add-mask::rollguard\n::error title=PWNED::owned\r\n  ::warning::w \u{1b}]8;;https://evil.example/\u{7}click here\u{1b}]8;;\u{7} \u{1b}[31;1mred\u{1b}[0m \u{9b}2J\u{202E}end";

fn hostile_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<char>().prop_map(|c| c.to_string()),
        "[a-z :@<>`|*_]{0,8}",
        Just("\n::error::x".to_string()),
        Just("\n  ::add-mask::rollguard".to_string()),
        Just("::stop-commands::t\n".to_string()),
        Just("\r".to_string()),
        Just("\u{1b}[31m".to_string()),
        Just("\u{1b}]8;;https://e/\u{7}".to_string()),
        Just("\u{1b}P1$r\u{1b}\\".to_string()),
        Just("\u{9b}0m".to_string()),
        Just("\u{85}\u{2028}".to_string()),
        Just("\u{202E}".to_string()),
        Just("\u{0}".to_string()),
    ]
}

fn hostile() -> impl Strategy<Value = String> {
    proptest::collection::vec(hostile_piece(), 0..12).prop_map(|v| v.concat())
}

/// A failed run's report with `t` in every field the cluster can fill.
fn hostile_report(t: &str) -> Report {
    let mut r = Report::new("2026-01-01T00:00:00Z".into());
    r.result = Conclusion::RolledBack;
    r.exit_code = 1;
    r.headline = format!("deployment/web: rollout failed {t}");
    r.workload = "deployment/web".into();
    r.namespace = Some("default".into());
    r.container = Some("web".into());
    r.previous_image = Some(format!("example/web:v1{t}"));
    r.image = Some("example/web:v2".into());
    r.version_label = Some("app.kubernetes.io/version".into());
    r.version = Some("v2".into());
    r.cause = Some(format!("container web crashed: {t}"));
    r.findings = vec![Finding {
        cause: Cause::CrashLoop,
        summary: format!("crash {t}"),
        container: Some("web".into()),
        pods: "1/1 new pods".into(),
        evidence: vec![t.to_string(), format!("Back-off {t}")],
        per_pod: vec![format!("web-1: {t}")],
        logs: vec![t.to_string(), "plain".into()],
        fix: format!("fix {t}"),
    }];
    r.rollback = Some(Rollback {
        attempted: true,
        confirmed: true,
        detail: format!("done {t}"),
    });
    r.inputs.insert("tag".into(), t.to_string());
    r
}

fn assert_clean(sink: &str, text: &str) {
    assert!(
        !text.chars().any(bad_char),
        "{sink}: a control character survived: {text:?}"
    );
    let cmds: Vec<&str> = command_lines(text)
        .into_iter()
        .filter(|l| !is_own_command(l))
        .collect();
    assert!(cmds.is_empty(), "{sink}: {cmds:?} in {text:?}");
}

fn kubectl() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/kubectl");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "NOTE: kubectl not found at .tools/bin/kubectl (bash .ci/install-tools.sh); skipping"
        );
        None
    }
}

fn run_kubectl(kubectl: &PathBuf, kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "kubectl {args:?}: {text}");
    text
}

// ------------------------------------------------------------ property tests per sink

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn safe_writer_lets_no_command_or_escape_through(chunks in proptest::collection::vec(hostile(), 0..6)) {
        let mut out = Vec::new();
        {
            let mut w = rollguard::text::SafeWriter::new(&mut out);
            write!(w, "{}", rollguard::text::trusted("::group::rollguard-rollout\n")).unwrap();
            for c in &chunks {
                w.write_all(c.as_bytes()).unwrap();
                w.flush().unwrap();
            }
            writeln!(w).unwrap();
            write!(w, "{}", rollguard::text::trusted("::endgroup::\n")).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert_clean("stdout", &text);
        prop_assert_eq!(command_lines(&text), vec!["::group::rollguard-rollout", "::endgroup::"]);
    }

    #[test]
    fn one_line_is_one_clean_line(s in hostile()) {
        let l = rollguard::text::one_line(&s);
        prop_assert!(!l.contains('\n'));
        prop_assert!(!l.trim_start().starts_with("::"));
        prop_assert!(!l.chars().any(bad_char));
    }

    #[test]
    fn console_sink_is_clean(s in hostile()) {
        let r = hostile_report(&s);
        let mut out = Vec::new();
        rollguard::report::console::Console { out: &mut out }.emit(&r).unwrap();
        assert_clean("console", &String::from_utf8(out).unwrap());
    }

    #[test]
    fn markdown_slack_and_gitlab_sinks_are_clean(s in hostile()) {
        let r = rollguard::report::sanitise::report(&hostile_report(&s));
        let ci = rollguard::config::CiContext::default();
        assert_clean("PR comment", &rollguard::report::github::comment_body(&r, &ci));
        assert_clean("step summary", &rollguard::report::github::summary_text(&r));
        assert_clean("GitLab note", &rollguard::report::gitlab::note_body(&r, &ci));
        let slack = rollguard::report::slack::message(&r, None);
        fn strings(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
                Value::Object(o) => o.values().for_each(|x| strings(x, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        strings(&slack, &mut all);
        for t in all {
            assert_clean("Slack", &t);
        }
    }
}

#[test]
fn github_sinks_are_clean_for_hostile_reports() {
    // Through publish_with (the boundary itself): annotation, outputs, summary.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&hostile(), |s| {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let summary = dir.path().join("summary");
            let env: Env = [
                ("GITHUB_ACTIONS", "true".to_string()),
                ("GITHUB_OUTPUT", out.display().to_string()),
                ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let sinks = rollguard::report::publish::SinkConfig::default();
            let p = rt.block_on(rollguard::report::publish::publish_with(
                &hostile_report(&s),
                &sinks,
                &rollguard::config::CiContext::from_env(&env),
                &Default::default(),
            ));
            assert_clean("annotation", &p.stdout);
            let outputs = std::fs::read_to_string(&out).unwrap();
            assert_clean("GITHUB_OUTPUT", &outputs);
            // One line per output: nothing can add a key or a delimiter.
            assert_eq!(outputs.lines().count(), 9, "{outputs:?}");
            assert_clean("summary", &std::fs::read_to_string(&summary).unwrap());
            Ok(())
        })
        .unwrap();
}

// ------------------------------------------------------------ hostile text end to end

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_probe_and_event_text_never_becomes_a_workflow_command_or_escape() {
    // The app's own spec carries the text (an exec readiness probe), and so
    // does an event about its pod.
    let mut web = web("example/web:v1", 1);
    web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = json!({
        "exec": {"command": ["sh", "-c", HOSTILE]},
        "periodSeconds": 1,
    });
    let h = Fixture::new().speed(20.0).deployment(web).start().await;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("output");
    let summary = dir.path().join("summary");
    let mut e = env(
        &h,
        &[
            ("ROLLGUARD_TAG", "unready"),
            ("ROLLGUARD_TIMEOUT", "12s"),
            ("GITHUB_ACTIONS", "true"),
        ],
    );
    e.insert("GITHUB_OUTPUT".into(), output.display().to_string());
    e.insert("GITHUB_STEP_SUMMARY".into(), summary.display().to_string());
    let child = spawn(&e);
    // Once a new pod exists, an Unhealthy event with the hostile message.
    assert!(
        h.wait_for(WAIT, |h| live_pods(h).iter().any(
            |p| p["spec"]["containers"][0]["image"] == "example/web:unready"
        ))
        .await
    );
    let pod = live_pods(&h)
        .into_iter()
        .find(|p| p["spec"]["containers"][0]["image"] == "example/web:unready")
        .unwrap();
    let pod_name = pod["metadata"]["name"].as_str().unwrap().to_string();
    h.create(json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{pod_name}.hostile"), "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": pod_name, "namespace": "default",
                           "uid": pod["metadata"]["uid"], "fieldPath": "spec.containers{web}"},
        "reason": "Unhealthy",
        "message": format!("Readiness probe failed: {HOSTILE}"),
        "type": "Warning",
        "count": 1,
        "firstTimestamp": "2099-01-01T00:00:00Z",
        "lastTimestamp": "2099-01-01T00:00:00Z",
        "source": {"component": "kubelet"},
    }))
    .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!("--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert_eq!(out.status.code(), Some(70), "timed out, rolled back");
    // The hostile text did reach the report (so the test can fail) …
    assert!(stdout.contains("stop-commands"), "{stdout}");
    // … but no line starts a command except rollguard's own, and no escape is left.
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains('\u{1b}'), "{name} has an ESC byte");
        assert_clean(name, text);
    }
    let own = command_lines(&stdout);
    assert!(
        own.iter().any(|l| l.starts_with("::group::rollguard: ")),
        "{own:?}"
    );
    assert!(
        own.iter()
            .any(|l| l.starts_with("::error title=rollguard%3A")),
        "{own:?}"
    );
    assert!(command_lines(&stderr).is_empty());
    let outputs = std::fs::read_to_string(&output).unwrap();
    assert_clean("GITHUB_OUTPUT", &outputs);
    assert!(
        outputs.lines().any(|l| l.starts_with("cause=")),
        "the cause is one plain line: {outputs}"
    );
    assert_clean("summary", &std::fs::read_to_string(&summary).unwrap());
    assert_eq!(image(&h), "example/web:v1", "rolled back");
    h.shutdown().await;
}

// ------------------------------------------------------------ secrets in parse errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_yaml_errors_never_quote_the_token() {
    use base64::Engine as _;
    let h = web_cluster(20.0, 1).await;
    let good = h.kubeconfig_yaml();
    let token_line = good
        .lines()
        .find(|l| l.trim_start().starts_with("token:"))
        .unwrap()
        .to_string();
    let token = token_line.trim_start().trim_start_matches("token:").trim();
    assert!(token.len() > 8);
    // Errors right next to the token (its excerpt would show it), and a
    // type error whose message would quote it.
    let broken = [
        good.replace(&token_line, &format!("{token_line}\n   bad: [unclosed")),
        good.replace(&token_line, &format!("    token: {token}: x")),
        good.replace(&token_line, &format!("    token: [{token}]")),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, yaml) in broken.iter().enumerate() {
        let file = dir.path().join(format!("kubeconfig-{i}"));
        std::fs::write(&file, yaml).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(yaml);
        for (form, value) in [
            ("file", file.display().to_string()),
            ("inline", yaml.clone()),
            ("base64", b64),
        ] {
            let mut e = env(&h, &[("ROLLGUARD_TAG", "v2")]);
            e.insert("ROLLGUARD_KUBECONFIG".into(), value);
            e.insert("RUST_LOG".into(), "trace".into());
            let (code, stdout, stderr) = run_binary(&e).await;
            assert_eq!(code, Some(78), "{form} {i}: {stdout}");
            for text in [&stdout, &stderr] {
                assert!(!text.contains(token), "{form} {i}: the token leaked");
            }
            let said = stdout
                .lines()
                .find(|l| l.starts_with("rollguard: "))
                .unwrap_or_default();
            assert!(said.contains("line "), "{form} {i}: {said}");
            assert!(!said.contains("does not exist"), "{form} {i}: {said}");
        }
    }
    assert_eq!(image(&h), "example/web:v1");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_problems_are_all_exit_78_without_the_value() {
    let h = web_cluster(20.0, 1).await;
    let dir = tempfile::tempdir().unwrap();
    for (what, value) in [
        ("missing file", "/nonexistent/kubeconfig".to_string()),
        ("directory", dir.path().display().to_string()),
        (
            "garbage",
            "not a kubeconfig at all: SECRETgarbage".to_string(),
        ),
        (
            "base64 of garbage",
            "Z2FyYmFnZSBTRUNSRVRnYXJiYWdl".to_string(),
        ),
    ] {
        let mut e = env(&h, &[("ROLLGUARD_TAG", "v2")]);
        e.insert("ROLLGUARD_KUBECONFIG".into(), value);
        let (o, out) = run(&e).await;
        assert_eq!(o.exit_code, 78, "{what}: {out}");
        assert!(!out.contains("SECRETgarbage"), "{what}: {out}");
        assert!(
            !out.contains("Z2FyYmFnZSBTRUNSRVRnYXJiYWdl"),
            "{what}: {out}"
        );
    }
    assert_eq!(image(&h), "example/web:v1");
    h.shutdown().await;
}

// ------------------------------------------------------------ markers and kubectl rollout undo

fn rs_with_marker(h: &kubesim::Handle) -> usize {
    h.list("apps/v1", "ReplicaSet", "default")
        .iter()
        .filter(|rs| rs["metadata"]["annotations"][rollguard::recovery::IN_PROGRESS].is_string())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_undo_does_not_resurrect_a_finished_runs_marker() {
    let Some(kubectl) = kubectl() else { return };
    let h = web_cluster(20.0, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    h.write_kubeconfig(&kc).unwrap();
    for tag in ["v2", "v3"] {
        let (code, stdout, _) = run_binary(&env(&h, &[("ROLLGUARD_TAG", tag)])).await;
        assert_eq!(code, Some(0), "{stdout}");
        assert!(annotation(&h, rollguard::recovery::IN_PROGRESS).is_none());
    }
    // The Deployment controller copied the marker onto the ReplicaSets.
    assert!(rs_with_marker(&h) >= 1, "the precondition of this test");
    for (to, expect) in [("2", "example/web:v2"), ("1", "example/web:v1")] {
        run_kubectl(
            &kubectl,
            &kc,
            &[
                "rollout",
                "undo",
                "deployment/web",
                &format!("--to-revision={to}"),
            ],
        );
        assert!(h.wait_for(WAIT, |h| image(h) == expect).await);
        assert!(h.wait_for(WAIT, healthy).await);
        let copied = annotation(&h, rollguard::recovery::IN_PROGRESS);
        // The third run deploys from the undone template.
        let (code, stdout, stderr) = run_binary(&env(&h, &[("ROLLGUARD_TAG", "v4")])).await;
        assert_eq!(code, Some(0), "{stdout}");
        assert!(
            !stdout.contains("found an interrupted rollguard run"),
            "after undo to {to} (copied marker: {copied:?}): {stdout}"
        );
        assert!(!stderr.contains("found an interrupted"), "{stderr}");
        assert!(
            stdout.contains(&format!("{expect} → example/web:v4")),
            "deployed from the undone template: {stdout}"
        );
        assert_eq!(image(&h), "example/web:v4");
        assert!(annotation(&h, rollguard::recovery::IN_PROGRESS).is_none());
    }
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_undo_during_a_run_exits_3_at_once_and_leaves_no_marker() {
    let Some(kubectl) = kubectl() else { return };
    let h = web_cluster(5.0, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    h.write_kubeconfig(&kc).unwrap();
    slow_image(&h, "example/web:v2", 600);
    let child = spawn(&env(
        &h,
        &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_TIMEOUT", "5m")],
    ));
    // (The at-once detection belongs to the follow loop.)
    assert!(h.wait_for(WAIT, |h| image(h) == "example/web:v2").await);
    let t0 = std::time::Instant::now();
    run_kubectl(&kubectl, &kc, &["rollout", "undo", "deployment/web"]);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("rollguard ends at once, not at its 5 m timeout")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The marker side: whatever the verdict, no marker is left behind.
    assert_eq!(image(&h), "example/web:v1", "the undo stands");
    assert!(annotation(&h, rollguard::recovery::IN_PROGRESS).is_none());
    // The verdict: someone else changed the template during the run.
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(t0.elapsed() < Duration::from_secs(60));
    h.shutdown().await;
}

// ------------------------------------------------------------ permissions

/// The rules of a Role document, as kubesim rules in `default`.
fn role_rules(role: &serde_yaml::Value) -> Vec<kubesim::Rule> {
    crate::support::role_rules(&serde_json::to_value(role).unwrap(), "default")
}

/// The minimal Role exactly as the README shows it (its Security section).
fn readme_role() -> Vec<kubesim::Rule> {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let block = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains("kind: Role\n"))
        .expect("the README shows the minimal Role");
    role_rules(&serde_yaml::from_str(block).unwrap())
}

#[test]
fn the_readme_role_is_the_cronjob_recipes_role() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/cronjob/rollguard.yaml"),
    )
    .unwrap();
    let role = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .find(|d| d["kind"] == "Role")
        .unwrap();
    assert_eq!(role_rules(&role), readme_role());
}

use serde::Deserialize as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_role_runs_with_the_deploy_lock() {
    let h = web_cluster(20.0, 1).await;
    h.add_identity("ci", "readme-role-token", readme_role());
    let mut e = env(&h, &[("ROLLGUARD_TAG", "v2")]);
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        h.kubeconfig_for("readme-role-token", "ci"),
    );
    let (code, stdout, stderr) = run_binary(&e).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!stderr.contains("without the deploy lock"), "{stderr}");
    assert!(stderr.contains("holding the deploy lock"), "{stderr}");
    assert_eq!(image(&h), "example/web:v2");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_list_watch_on_the_workload_or_leases_is_exit_78_before_any_change() {
    let h = web_cluster(20.0, 1).await;
    // The README's Role without list/watch on deployments, and without leases.
    let mut rules = readme_role();
    for r in &mut rules {
        if r.resources.contains(&"deployments".to_string()) {
            r.verbs.retain(|v| v != "list" && v != "watch");
        }
    }
    rules.retain(|r| !r.resources.contains(&"leases".to_string()));
    h.add_identity("ci", "partial-token", rules);
    let mut e = env(&h, &[("ROLLGUARD_TAG", "v2")]);
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        h.kubeconfig_for("partial-token", "ci"),
    );
    let (code, stdout, _) = run_binary(&e).await;
    assert_eq!(code, Some(78), "{stdout}");
    for needed in [
        "list, watch deployments.apps",
        "get, create, update, watch, delete leases.coordination.k8s.io",
    ] {
        assert!(stdout.contains(needed), "{needed}: {stdout}");
    }
    assert_eq!(image(&h), "example/web:v1", "nothing changed");
    // With lock=false the leases are not needed, list/watch still are.
    e.insert("ROLLGUARD_LOCK".into(), "false".into());
    let (code, stdout, _) = run_binary(&e).await;
    assert_eq!(code, Some(78), "{stdout}");
    assert!(!stdout.contains("leases"), "{stdout}");
    assert_eq!(image(&h), "example/web:v1", "nothing changed");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_rules_review_falls_back_to_access_reviews() {
    let h = web_cluster(20.0, 1).await;
    h.faults().incomplete_rules_review(true);
    // Enough permissions: every one is confirmed by an access review.
    h.add_identity("ci", "readme-role-token", readme_role());
    let mut e = env(&h, &[("ROLLGUARD_TAG", "v2")]);
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        h.kubeconfig_for("readme-role-token", "ci"),
    );
    let (code, stdout, _) = run_binary(&e).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(image(&h), "example/web:v2");
    // Not enough: the access reviews find what is missing.
    let mut rules = readme_role();
    for r in &mut rules {
        if r.resources.contains(&"deployments".to_string()) {
            r.verbs.retain(|v| v != "list" && v != "watch");
        }
    }
    h.add_identity("ci2", "partial-token", rules);
    let mut e = env(&h, &[("ROLLGUARD_TAG", "v3")]);
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        h.kubeconfig_for("partial-token", "ci2"),
    );
    let (code, stdout, _) = run_binary(&e).await;
    assert_eq!(code, Some(78), "{stdout}");
    assert!(stdout.contains("list, watch deployments.apps"), "{stdout}");
    assert!(!stdout.contains("leases"), "{stdout}");
    assert_eq!(image(&h), "example/web:v2", "nothing changed");
    h.shutdown().await;
}

// ------------------------------------------------------------ validation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_exit_2_in_one_line_and_change_nothing() {
    let h = web_cluster(20.0, 1).await;
    let long_repo = format!("example/{}:v2", "a".repeat(300));
    let huge_repo = format!("example/{}:v2", "b".repeat(10_000));
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("image", vec![("ROLLGUARD_IMAGE", long_repo)]),
        ("image", vec![("ROLLGUARD_IMAGE", huge_repo)]),
        ("timeout", vec![("ROLLGUARD_TIMEOUT", "999999h".into())]),
        (
            "rollback-timeout",
            vec![("ROLLGUARD_ROLLBACK_TIMEOUT", "0s".into())],
        ),
        (
            "lock-timeout",
            vec![("ROLLGUARD_LOCK_TIMEOUT", "48h".into())],
        ),
        (
            "slack-webhook",
            vec![("ROLLGUARD_SLACK_WEBHOOK", "not a url".into())],
        ),
        (
            "slack-webhook",
            vec![("ROLLGUARD_SLACK_WEBHOOK", "javascript:alert(1)".into())],
        ),
        (
            "github-token",
            vec![("ROLLGUARD_GITHUB_TOKEN", "ghp_abc\ndef".into())],
        ),
        (
            "gitlab-token",
            vec![("ROLLGUARD_GITLAB_TOKEN", "glpat\r\nx".into())],
        ),
        (
            "report-file",
            vec![("ROLLGUARD_REPORT_FILE", "/nonexistent-dir/r.json".into())],
        ),
        (
            "timeout",
            vec![
                ("INPUT_TIMEOUT", "1m".into()),
                ("ROLLGUARD_TIMEOUT", "2m".into()),
            ],
        ),
        (
            "version",
            vec![(
                "ROLLGUARD_VERSION",
                "x\n::error::x\" contains whitespace".into(),
            )],
        ),
    ];
    for (input, pairs) in cases {
        let mut e = env(&h, &[]);
        e.insert("ROLLGUARD_TAG".into(), "v2".into());
        for (k, v) in &pairs {
            e.insert(k.to_string(), v.clone());
        }
        if pairs.iter().any(|(k, _)| *k == "ROLLGUARD_IMAGE") {
            e.remove("ROLLGUARD_TAG");
        }
        let (o, out) = run(&e).await;
        assert_eq!(o.exit_code, 2, "{input} {pairs:?}: {out}");
        let lines = lines_where(&out, |l| l.starts_with("rollguard: "));
        assert_eq!(lines.len(), 1, "{input}: {out}");
        assert!(
            lines[0].contains(&format!("invalid input \"{input}\"")),
            "{input}: {out}"
        );
        assert!(lines[0].len() < 600, "{input}: one short line");
        assert!(command_lines(&out).is_empty(), "{input}: {out}");
        for (_, v) in &pairs {
            if v.contains("ghp_") || v.contains("glpat") {
                assert!(
                    !out.contains(v.lines().next().unwrap()),
                    "a secret echoed: {out}"
                );
            }
        }
        assert_eq!(image(&h), "example/web:v1", "{input}: nothing changed");
    }
    // Both spellings name both variables.
    let mut e = env(&h, &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_TIMEOUT", "2m")]);
    e.insert("INPUT_TIMEOUT".into(), "1m".into());
    let (_, out) = run(&e).await;
    assert!(
        out.contains("INPUT_TIMEOUT") && out.contains("ROLLGUARD_TIMEOUT"),
        "{out}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_namespace_is_exit_2_in_one_line() {
    let h = web_cluster(20.0, 1).await;
    for lock in ["true", "false"] {
        let e = env(
            &h,
            &[
                ("ROLLGUARD_TAG", "v2"),
                ("ROLLGUARD_NAMESPACE", "no-such-ns"),
                ("ROLLGUARD_LOCK", lock),
            ],
        );
        let (code, stdout, stderr) = run_binary(&e).await;
        assert_eq!(code, Some(2), "lock={lock}: {stdout}");
        let said = lines_where(&stdout, |l| l.starts_with("rollguard: "));
        assert_eq!(said.len(), 1, "{stdout}");
        assert!(said[0].contains("no-such-ns"), "{stdout}");
        assert!(!stdout.contains("Status {") && !stderr.contains("Status {"));
    }
    assert_eq!(image(&h), "example/web:v1");
    h.shutdown().await;
}

// ------------------------------------------------------------ credentials over plain HTTP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_bearer_token_to_a_plain_http_api_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let server = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).to_string());
                    let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
                    let resp = format!(
                        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    use tokio::io::AsyncWriteExt;
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        })
    };
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: http://127.0.0.1:{port}\n  name: plain\ncontexts:\n- context:\n    cluster: plain\n    user: u\n  name: plain\ncurrent-context: plain\nusers:\n- name: u\n  user:\n    token: PLAINHTTPSECRETTOKEN\n"
    );
    let e = env_of(&[
        ("ROLLGUARD_KUBECONFIG", &kubeconfig),
        ("ROLLGUARD_WORKLOAD", "deployment/web"),
        ("ROLLGUARD_TAG", "v2"),
        ("ROLLGUARD_VERIFY_IMAGE", "false"),
    ]);
    let (code, stdout, stderr) = run_binary(&e).await;
    assert_eq!(code, Some(78), "{stdout}");
    let requests = seen.lock().unwrap().clone();
    assert!(!requests.is_empty(), "rollguard called the server");
    for r in &requests {
        assert!(!r.to_ascii_lowercase().contains("authorization:"), "{r}");
        assert!(!r.contains("PLAINHTTPSECRETTOKEN"));
    }
    assert!(stderr.contains("sending no credentials"), "{stderr}");
    server.abort();
}

// ------------------------------------------------------------ the lock wait

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_another_runs_lock_is_announced_at_once() {
    let h = web_cluster(20.0, 1).await;
    let now = jiff::Timestamp::now();
    h.create(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "rollguard-deployment-web", "namespace": "default"},
        "spec": {
            "holderIdentity": "https://ci.example/run/41",
            "leaseDurationSeconds": 600,
            "acquireTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "renewTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        },
    }))
    .unwrap();
    let mut child = spawn(&env(
        &h,
        &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_LOCK_TIMEOUT", "5m")],
    ));
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let said = tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains("waiting for the deploy lock") {
            let n = stdout.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await;
    assert!(said.is_ok(), "not announced while waiting: {seen}");
    assert!(seen.contains("https://ci.example/run/41"), "{seen}");
    assert!(child.try_wait().unwrap().is_none(), "still waiting");
    // And again on the heartbeat while the wait goes on.
    let again = tokio::time::timeout(
        rollguard::lock::WAIT_HEARTBEAT + Duration::from_secs(15),
        async {
            while !seen.contains("still waiting for the deploy lock") {
                let n = stdout.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        },
    )
    .await;
    assert!(again.is_ok(), "no heartbeat line: {seen}");
    signal(&child, "KILL");
    let _ = child.wait().await;
    assert_eq!(image(&h), "example/web:v1");
    h.shutdown().await;
}

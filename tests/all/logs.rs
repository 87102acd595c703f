//! The CI log as GitHub shows it: the real binary under GITHUB_ACTIONS with
//! stderr piped (as on a runner): no ANSI colour and no timestamps of our
//! own in the tracing lines, a readable group title, one clean `::error`
//! line; FORCE_COLOR asks for colour, NO_COLOR always wins.

use crate::support;

use kubesim::Handle;

async fn binary(h: &Handle, pairs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let env = support::env(h, pairs);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_rollguard"))
        .env_clear()
        .envs(&env)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("rollguard runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn stamped(line: &str) -> bool {
    regex::Regex::new(r"^\s*\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
        .unwrap()
        .is_match(line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_log_is_plain_grouped_and_has_one_error_line() {
    let h = support::web_cluster(25.0, 2).await;
    let (code, stdout, stderr) = binary(
        &h,
        &[
            ("GITHUB_ACTIONS", "true"),
            ("INPUT_TAG", "v2-missing"),
            // An unknown input: one tracing warning on stderr.
            ("INPUT_NO-SUCH-INPUT", "x"),
        ],
    )
    .await;
    println!("{stdout}");
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("ignoring unknown input INPUT_NO-SUCH-INPUT"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "colour in a CI log: {stderr:?}");
    assert!(!stderr.lines().any(stamped), "own timestamps: {stderr}");
    assert!(
        stdout.contains("::group::rollguard: deployment/web → v2-missing\n"),
        "{stdout}"
    );
    let errors = support::lines_where(&stdout, |l| l.starts_with("::error"));
    assert_eq!(errors.len(), 1, "{stdout}");
    assert!(!errors[0].contains("%0A"), "{}", errors[0]);
    assert!(
        errors[0].starts_with(
            "::error title=rollguard%3A deployment/web failed and rolled back::image "
        ),
        "{}",
        errors[0]
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colour_only_when_asked_and_never_with_no_color() {
    let h = support::web_cluster(25.0, 2).await;
    let dry = [
        ("INPUT_TAG", "v2"),
        ("INPUT_DRY-RUN", "true"),
        ("INPUT_NO-SUCH-INPUT", "x"),
    ];
    let mut forced = dry.to_vec();
    forced.push(("FORCE_COLOR", "1"));
    let (code, _, stderr) = binary(&h, &forced).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains('\u{1b}'), "FORCE_COLOR ignored: {stderr:?}");
    forced.push(("NO_COLOR", "1"));
    let (_, _, stderr) = binary(&h, &forced).await;
    assert!(stderr.contains("ignoring unknown input"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "NO_COLOR ignored: {stderr:?}");
    let mut stamped_run = dry.to_vec();
    stamped_run.push(("LOG_TIMESTAMPS", "true"));
    let (_, _, stderr) = binary(&h, &stamped_run).await;
    assert!(
        stderr.lines().any(stamped),
        "LOG_TIMESTAMPS ignored: {stderr}"
    );
    h.shutdown().await;
}

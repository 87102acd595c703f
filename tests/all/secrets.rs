//! Secrets and TLS: the kube token and secret inputs never appear
//! in any output of a real run of the binary; TLS is verified unless the
//! kubeconfig says insecure-skip-tls-verify.

use crate::support::*;

fn without_ca(yaml: &str, insecure: bool) -> String {
    let mut kc: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    for c in kc["clusters"].as_sequence_mut().unwrap() {
        let m = c["cluster"].as_mapping_mut().unwrap();
        m.remove("certificate-authority-data");
        m.remove("certificate-authority");
        if insecure {
            m.insert("insecure-skip-tls-verify".into(), true.into());
        }
    }
    serde_yaml::to_string(&kc).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_unless_the_kubeconfig_skips_it() {
    let h = web_cluster(25.0, 1).await;
    let mut e = env(&h, &[("ROLLGUARD_TAG", "v2")]);
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        without_ca(&h.kubeconfig_yaml(), false),
    );
    let (o, out) = run(&e).await;
    assert_eq!(o.exit_code, 78, "{out}");
    assert!(out.to_ascii_lowercase().contains("certificate"), "{out}");
    assert_eq!(image(&h), "example/web:v1");
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        without_ca(&h.kubeconfig_yaml(), true),
    );
    let (o, out) = run(&e).await;
    assert_eq!(o.exit_code, 0, "{out}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output_of_a_failed_run() {
    let h = web_cluster(25.0, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).display().to_string();
    let secrets = [
        ("ROLLGUARD_GITHUB_TOKEN", "ghp_SECRETgithubTOKEN0123456789"),
        ("ROLLGUARD_GITLAB_TOKEN", "glpat-SECRETgitlabTOKEN01234"),
        ("ROLLGUARD_SLACK_TOKEN", "xoxb-SECRET-slack-token-0123"),
        (
            "ROLLGUARD_SLACK_WEBHOOK",
            "http://127.0.0.1:9/services/SECRETHOOKPATH",
        ),
    ];
    let mut pairs = vec![
        ("ROLLGUARD_TAG", "v2-missing"),
        ("ROLLGUARD_SLACK_CHANNEL", "#deploys"),
        ("ROLLGUARD_SLACK_ON", "always"),
    ];
    pairs.extend_from_slice(&secrets);
    let report = path("report.json");
    let output = path("output");
    let summary = path("summary.md");
    pairs.push(("ROLLGUARD_REPORT_FILE", &report));
    pairs.push(("GITHUB_OUTPUT", &output));
    pairs.push(("GITHUB_STEP_SUMMARY", &summary));
    pairs.push(("GITHUB_ACTIONS", "true"));
    let child = spawn(&env(&h, &pairs));
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mut all = String::from_utf8_lossy(&out.stdout).to_string();
    all.push_str(&String::from_utf8_lossy(&out.stderr));
    for f in [&report, &output, &summary] {
        all.push_str(&std::fs::read_to_string(f).unwrap_or_default());
    }
    assert!(
        all.contains("v2-missing"),
        "the outputs were written: {all}"
    );
    let token = h.token.clone();
    for s in secrets.iter().map(|(_, v)| *v).chain([token.as_str()]) {
        // GitHub's `::add-mask::` is the one place a secret may be named.
        let leaked = all
            .lines()
            .filter(|l| !l.starts_with("::add-mask::"))
            .any(|l| l.contains(s));
        assert!(!leaked, "{s} leaked:\n{all}");
    }
    h.shutdown().await;
}

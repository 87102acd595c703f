//! Shipping: the static release binary runs with an empty
//! environment; action.yml matches the config module's inputs one to one;
//! the GitHub workflows and the recipes in examples/ have the structure they
//! need; the CronJob recipe's Role is enough for a redeploy, and a Role
//! missing a verb stops before anything changes (exit 78 naming it).
//!
//! (Over 500 lines: one suite of end-to-end tests of one concern; each
//! test is a story of its own, set up by `support`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kubesim::{Handle, Rule};
use serde_json::{Value, json};

use crate::support::{DeploymentSpec, Fixture, PodLabel};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A YAML file as JSON values, one per document.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"));
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(rel: &str) -> Value {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel}: one document expected");
    docs.remove(0)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

// ---------------------------------------------------------------- binary

/// The static binary `.ci/run` builds (`ROLLGUARD_STATIC_BIN`, else the
/// known path); None (the test skips with a note) when it was not built.
fn static_binary() -> Option<PathBuf> {
    let path = match std::env::var_os("ROLLGUARD_STATIC_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let host = if cfg!(target_arch = "aarch64") {
                "aarch64-unknown-linux-gnu"
            } else {
                "x86_64-unknown-linux-gnu"
            };
            root().join(format!("target/static/{host}/release/rollguard"))
        }
    };
    if path.is_file() {
        Some(path)
    } else {
        println!(
            "SKIPPED: no static binary at {} (.ci/run builds it; set ROLLGUARD_STATIC_BIN)",
            path.display()
        );
        None
    }
}

#[test]
fn static_binary_help_with_an_empty_environment() {
    let Some(bin) = static_binary() else { return };
    let out = std::process::Command::new(&bin)
        .arg("--help")
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    for input in rollguard::config::INPUTS {
        assert!(text.contains(input.name), "--help lacks {}", input.name);
    }
    let out = std::process::Command::new(&bin)
        .arg("--version")
        .env_clear()
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rollguard "));
}

/// `api` in `namespace`, two pods of `example/api:v1`, ready.
async fn cluster(namespace: &str) -> Handle {
    Fixture::new()
        .namespace(namespace)
        .deployment(DeploymentSpec {
            name: "api",
            namespace,
            image: "example/api:v1",
            replicas: 2,
            label: PodLabel::App,
            ..Default::default()
        })
        .start()
        .await
}

fn image_of(h: &Handle, ns: &str) -> String {
    h.get("apps/v1", "Deployment", ns, "api").unwrap()["spec"]["template"]["spec"]["containers"][0]
        ["image"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A full rollout by the static binary with nothing in its environment but
/// rollguard's inputs (the kubeconfig inline, CA included: no CA bundle or
/// /etc file is needed to reach the cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_binary_rolls_out_with_an_empty_environment() {
    let Some(bin) = static_binary() else { return };
    let h = cluster("default").await;
    let out = tokio::process::Command::new(&bin)
        .env_clear()
        .env("ROLLGUARD_KUBECONFIG", h.kubeconfig_yaml())
        // kubesim simulates images by name; no registry holds them.
        .env("ROLLGUARD_VERIFY_IMAGE", "false")
        .env("ROLLGUARD_WORKLOAD", "deployment/api")
        .env("ROLLGUARD_TAG", "v2")
        .env("ROLLGUARD_TIMEOUT", "60s")
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = crate::support::succeeded(&out);
    assert!(!stdout.contains(&h.token) && !stderr.contains(&h.token));
    assert_eq!(image_of(&h, "default"), "example/api:v2");
    h.shutdown().await;
}

// ---------------------------------------------------------------- action.yml

#[test]
fn action_inputs_match_the_config_module_one_to_one() {
    let action = yaml("action.yml");
    let inputs = action["inputs"].as_object().expect("action.yml has inputs");
    let declared: BTreeSet<&str> = inputs.keys().map(String::as_str).collect();
    let known: BTreeSet<&str> = rollguard::config::INPUTS.iter().map(|i| i.name).collect();
    assert_eq!(
        declared.difference(&known).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "action.yml declares inputs rollguard does not know"
    );
    assert_eq!(
        known.difference(&declared).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "rollguard inputs missing from action.yml (add them with rollguard::config::action_default's default)"
    );
    for spec in rollguard::config::INPUTS {
        let input = &inputs[spec.name];
        assert!(
            !s(&input["description"]).is_empty(),
            "{}: no description",
            spec.name
        );
        let default = input.get("default").map(|d| match d {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        assert_eq!(
            default.as_deref(),
            rollguard::config::action_default(spec),
            "action.yml default of {}",
            spec.name
        );
        assert_eq!(
            input["required"].as_bool().unwrap_or(false),
            spec.name == "workload",
            "{}: required",
            spec.name
        );
    }
    assert_eq!(s(&inputs["github-token"]["default"]), "${{ github.token }}");
    let outputs: BTreeSet<&str> = action["outputs"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let written: BTreeSet<&str> = rollguard::report::github::outputs(
        &rollguard::report::Report::new("2026-01-01T00:00:00Z".into()),
    )
    .into_iter()
    .map(|(k, _)| k)
    .collect();
    assert_eq!(
        outputs, written,
        "action.yml outputs vs what rollguard writes"
    );
    for o in [
        "result",
        "revision",
        "image",
        "previous-image",
        "rolled-back",
        "cause",
        "report-file",
    ] {
        assert!(outputs.contains(o), "output {o}");
    }
    assert_eq!(s(&action["runs"]["using"]), "docker");
    let image = s(&action["runs"]["image"]);
    assert!(
        image.starts_with("docker://ghcr.io/") && image.ends_with("/rollguard:v1"),
        "runs.image must be the prebuilt major tag: {image}"
    );
    assert!(!s(&action["branding"]["icon"]).is_empty());
    assert!(!s(&action["branding"]["color"]).is_empty());
}

// ---------------------------------------------------------------- workflows

fn steps(job: &Value) -> &Vec<Value> {
    job["steps"].as_array().expect("job has steps")
}

fn uses<'a>(job: &'a Value, prefix: &str) -> Vec<&'a Value> {
    steps(job)
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix)))
        .collect()
}

fn runs(job: &Value) -> String {
    steps(job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn ci_workflow_runs_fmt_clippy_and_tests() {
    let ci = yaml(".github/workflows/ci.yml");
    assert_eq!(s(&ci["permissions"]["contents"]), "read");
    let job = &ci["jobs"]["test"];
    assert!(runs(job).contains("bash .ci/run"));
    // The static binary's build is shared with .ci/test (.ci/static.sh).
    let ci_run = read(".ci/run") + &read(".ci/static.sh");
    for needed in [
        "cargo fmt --all -- --check",
        "cargo clippy --workspace --all-targets -- -D warnings",
        "target-feature=+crt-static",
        "ROLLGUARD_STATIC_BIN",
        "bash .ci/test",
    ] {
        assert!(ci_run.contains(needed), ".ci/run lacks {needed}");
    }
}

#[test]
fn e2e_workflow_runs_the_action_on_kind() {
    let e2e = yaml(".github/workflows/e2e.yml");
    let job = &e2e["jobs"]["kind"];
    assert_eq!(uses(job, "helm/kind-action").len(), 1);
    let action_steps = uses(job, "./");
    let ids: Vec<&str> = action_steps.iter().map(|st| s(&st["id"])).collect();
    assert_eq!(
        ids,
        ["good", "bad"],
        "a good and a bad rollout through uses: ./"
    );
    for step in &action_steps {
        let with = step["with"].as_object().unwrap();
        for key in with.keys() {
            assert!(
                rollguard::config::is_known_input(key),
                "e2e.yml passes unknown input {key}"
            );
        }
        assert!(with.contains_key("workload") && with.contains_key("kubeconfig"));
    }
    assert_eq!(action_steps[1]["continue-on-error"], json!(true));
    let checks = runs(job);
    assert!(checks.contains("test \"$RESULT\" = succeeded"));
    assert!(checks.contains("test \"$RESULT\" = rolled-back"));
    assert!(
        checks.contains("image: Dockerfile"),
        "e2e runs this commit's image"
    );
    let env_text = serde_json::to_string(&job["steps"]).unwrap();
    assert!(env_text.contains("steps.good.outputs.result"));
    assert!(env_text.contains("steps.bad.outputs.result"));
}

#[test]
fn release_workflow_pushes_multiarch_images_and_moves_the_major_tag() {
    let rel = yaml(".github/workflows/release.yml");
    // serde_yaml reads the key `on` as a string (YAML 1.2).
    let tags = &rel["on"]["push"]["tags"];
    assert_eq!(tags, &json!(["v*.*.*"]));
    assert_eq!(s(&rel["permissions"]["packages"]), "write");
    assert_eq!(s(&rel["permissions"]["contents"]), "write");
    let build = &rel["jobs"]["build"];
    let archs = &build["strategy"]["matrix"]["arch"];
    assert_eq!(archs, &json!(["amd64", "arm64"]));
    let bp = uses(build, "docker/build-push-action");
    assert_eq!(bp.len(), 1);
    assert!(s(&bp[0]["with"]["outputs"]).contains("push=true"));
    assert_eq!(uses(build, "docker/login-action").len(), 1);
    assert!(runs(build).contains("-le 12000000"), "image size check");
    let publish = &rel["jobs"]["publish"];
    let script = runs(publish);
    assert!(script.contains("imagetools create") && script.contains("$major$SUFFIX"));
    assert!(runs(&rel["jobs"]["major-tag"]).contains("git push -f origin \"refs/tags/$major\""));
}

// ---------------------------------------------------------------- recipes

/// `ROLLGUARD_*` names in a text must be rollguard inputs (no typos).
fn check_rollguard_vars(text: &str, what: &str) {
    for (i, _) in text.match_indices("ROLLGUARD_") {
        let name: String = text[i + "ROLLGUARD_".len()..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        let input = name.to_ascii_lowercase().replace('_', "-");
        if ["note-token", "static-bin", "mr-token", "story"].contains(&input.as_str())
            || input.is_empty()
        {
            continue; // the recipes' and the tests' own variables, not inputs
        }
        assert!(
            rollguard::config::is_known_input(&input),
            "{what}: ROLLGUARD_{name} is not a rollguard input"
        );
    }
}

#[test]
fn recipes_have_what_their_platform_needs() {
    for doc in [
        "examples/github/README.md",
        "examples/gitlab/README.md",
        "examples/cloudbuild/README.md",
        "examples/cronjob/README.md",
    ] {
        assert!(read(doc).len() > 200, "{doc}");
    }
    // GitHub: least permissions, kubeconfig from a secret.
    let gh = yaml("examples/github/deploy.yml");
    assert_eq!(
        gh["permissions"],
        json!({"contents": "read", "pull-requests": "write"})
    );
    let step = uses(&gh["jobs"]["deploy"], "rollguard/rollguard@v1");
    assert_eq!(step.len(), 1);
    assert!(s(&step[0]["with"]["kubeconfig"]).contains("secrets."));
    for key in step[0]["with"].as_object().unwrap().keys() {
        assert!(
            rollguard::config::is_known_input(key),
            "github recipe: {key}"
        );
    }

    // GitLab: MR pipelines, agent context, PRIVATE-TOKEN, allowed exit 1.
    let text = read("examples/gitlab/.gitlab-ci.yml");
    check_rollguard_vars(&text, "gitlab recipe");
    let gl = yaml("examples/gitlab/.gitlab-ci.yml");
    assert!(
        serde_json::to_string(&gl["workflow"]["rules"])
            .unwrap()
            .contains("merge_request_event")
    );
    let base = &gl[".rollguard"];
    assert_eq!(base["allow_failure"]["exit_codes"], json!([1]));
    assert!(base["variables"]["ROLLGUARD_CONTEXT"].is_string());
    assert!(base["variables"]["ROLLGUARD_GITLAB_TOKEN"].is_string());
    assert_eq!(base["image"]["entrypoint"], json!([""]));
    assert!(s(&base["image"]["name"]).ends_with(":v1-shell"));

    // Cloud Build: env from substitutions, gke auth, allowExitCodes.
    let text = read("examples/cloudbuild/cloudbuild.yaml");
    check_rollguard_vars(&text, "cloud build recipe");
    let cb = yaml("examples/cloudbuild/cloudbuild.yaml");
    let step = &cb["steps"][0];
    let env: Vec<&str> = step["env"].as_array().unwrap().iter().map(s).collect();
    for needed in [
        "ROLLGUARD_AUTH=gke",
        "ROLLGUARD_CLUSTER_ENDPOINT=$_CLUSTER_ENDPOINT",
        "ROLLGUARD_CLUSTER_CA=$_CLUSTER_CA",
        "ROLLGUARD_TAG=$SHORT_SHA",
    ] {
        assert!(env.contains(&needed), "cloud build env lacks {needed}");
    }
    assert_eq!(step["allowExitCodes"], json!([1]));

    // CronJob: ServiceAccount, Role, RoleBinding, a non-root CronJob.
    let text = read("examples/cronjob/rollguard.yaml");
    check_rollguard_vars(&text, "cronjob recipe");
    let docs = yaml_docs("examples/cronjob/rollguard.yaml");
    let kinds: Vec<&str> = docs.iter().map(|d| s(&d["kind"])).collect();
    assert_eq!(kinds, ["ServiceAccount", "Role", "RoleBinding", "CronJob"]);
    let pod = &docs[3]["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "rollguard");
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let env = serde_json::to_string(&pod["containers"][0]["env"]).unwrap();
    assert!(env.contains("in-cluster"));
    assert_eq!(docs[2]["roleRef"]["name"], docs[1]["metadata"]["name"]);

    // The README's snippets parse and use only real inputs.
    let readme = read("README.md");
    check_rollguard_vars(&readme, "README");
    let mut blocks = 0;
    for block in readme.split("```yaml\n").skip(1) {
        let text = block.split("```").next().unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(text)
            .unwrap_or_else(|e| panic!("README yaml snippet does not parse: {e}\n{text}"));
        let v = serde_json::to_value(v).unwrap();
        let text = serde_json::to_string(&v).unwrap();
        if text.contains("rollguard/rollguard@v1") {
            let step = &v["jobs"]["deploy"]["steps"][0];
            for key in step["with"].as_object().unwrap().keys() {
                assert!(rollguard::config::is_known_input(key), "README: {key}");
            }
        }
        blocks += 1;
    }
    assert!(
        blocks >= 3,
        "README has the GitHub, GitLab and Cloud Build snippets"
    );
}

// ---------------------------------------------------------------- RBAC

/// The CronJob recipe's Role as kubesim rules, in its namespace.
fn recipe_role() -> (String, Vec<Rule>) {
    let docs = yaml_docs("examples/cronjob/rollguard.yaml");
    let role = docs.iter().find(|d| d["kind"] == "Role").unwrap();
    let ns = s(&role["metadata"]["namespace"]).to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| s(x).to_string())
            .collect()
    };
    let rules = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Rule {
            verbs: strings(&r["verbs"]),
            groups: strings(&r["apiGroups"]),
            resources: strings(&r["resources"]),
            namespaces: vec![ns.clone()],
        })
        .collect();
    (ns, rules)
}

async fn redeploy_with(h: &Handle, ns: &str, token: &str) -> (i32, String) {
    let kubeconfig = h.kubeconfig_for(token, "system:serviceaccount:rollguard");
    let env = crate::support::env_of(&[
        ("ROLLGUARD_KUBECONFIG", &kubeconfig),
        ("ROLLGUARD_NAMESPACE", ns),
        // kubesim simulates images by name; no registry holds them.
        ("ROLLGUARD_VERIFY_IMAGE", "false"),
        ("ROLLGUARD_WORKLOAD", "deployment/api"),
        ("ROLLGUARD_CONTAINER", "api"),
        ("ROLLGUARD_TAG", "v2"),
        ("ROLLGUARD_TIMEOUT", "60s"),
    ]);
    let mut out = Vec::new();
    let outcome = rollguard::run(&env, &mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    println!("{text}");
    (outcome.exit_code, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_role_is_enough_for_a_redeploy() {
    let (ns, rules) = recipe_role();
    let h = cluster(&ns).await;
    h.add_identity("system:serviceaccount:prod:rollguard", "role-token", rules);
    let (code, out) = redeploy_with(&h, &ns, "role-token").await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(image_of(&h, &ns), "example/api:v2");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_without_patch_stops_with_exit_78_naming_it() {
    let (ns, mut rules) = recipe_role();
    for r in &mut rules {
        r.verbs.retain(|v| v != "patch");
    }
    let h = cluster(&ns).await;
    h.add_identity("system:serviceaccount:prod:rollguard", "no-patch", rules);
    let (code, out) = redeploy_with(&h, &ns, "no-patch").await;
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("missing permission in namespace prod: patch deployments.apps"),
        "{out}"
    );
    assert_eq!(image_of(&h, &ns), "example/api:v1", "nothing changed");
    h.shutdown().await;
}

#[test]
fn role_verbs_are_the_ones_rollguard_checks() {
    // Every (verb, resource) the permission check asks for is in the Role.
    let (_, rules) = recipe_role();
    let granted: BTreeMap<(String, String), ()> = rules
        .iter()
        .flat_map(|r| {
            r.verbs.iter().flat_map(move |v| {
                r.resources
                    .iter()
                    .map(move |res| ((v.clone(), res.clone()), ()))
            })
        })
        .collect();
    for (verb, resource) in [
        ("get", "deployments"),
        ("patch", "deployments"),
        ("list", "deployments"),
        ("watch", "deployments"),
        ("list", "replicasets"),
        ("watch", "replicasets"),
        ("list", "pods"),
        ("watch", "pods"),
        ("get", "pods/log"),
        ("list", "events"),
        ("watch", "events"),
        ("get", "leases"),
        ("create", "leases"),
        ("update", "leases"),
        ("watch", "leases"),
        ("delete", "leases"),
    ] {
        assert!(
            granted.contains_key(&(verb.to_string(), resource.to_string())),
            "Role lacks {verb} {resource}"
        );
    }
    assert_eq!(
        granted.len(),
        16,
        "the Role grants more than rollguard calls"
    );
}

//! Every way a CI job authenticates to a cluster: KUBECONFIG
//! with several files, inline/base64/path kubeconfigs, context selection (the
//! GitLab agent's kubeconfig), exec plugins, the pod's service account, and
//! `auth: gke` with a stand-in GCE metadata server. Each test runs a dry run
//! (full pre-flight, nothing changed) against its own kubesim.

use base64::Engine as _;
use kubesim::{Handle, Rule};
use rollguard::Env;
use rollguard::config::KubeconfigSource;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{DeploymentSpec, Fixture, PodLabel};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// `web`, one pod of `example/web:v1`, ready.
async fn cluster() -> Handle {
    Fixture::new()
        .deployment(DeploymentSpec {
            label: PodLabel::App,
            ..Default::default()
        })
        .start()
        .await
}

/// A dry run with these extra variables; returns (exit code, output).
async fn dry_run(pairs: &[(&str, &str)]) -> (i32, String) {
    let mut env: Env = [
        ("ROLLGUARD_WORKLOAD", "deployment/web"),
        ("ROLLGUARD_TAG", "v2"),
        ("ROLLGUARD_DRY_RUN", "true"),
        // kubesim simulates images by name; no registry holds them.
        ("ROLLGUARD_VERIFY_IMAGE", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in pairs {
        env.insert(k.to_string(), v.to_string());
    }
    let mut out = Vec::new();
    let outcome = rollguard::run(&env, &mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    println!("{text}");
    (outcome.exit_code, text)
}

/// The admin kubeconfig of `h` as a YAML value, for surgery.
fn kubeconfig_value(h: &Handle) -> Value {
    serde_yaml::from_str(&h.kubeconfig_yaml()).unwrap()
}

fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

/// Exit 78 (a config or credential problem), the message naming it.
fn assert_config_error(code: i32, out: &str, says: &str) {
    assert_eq!(code, 78, "{out}");
    assert!(out.contains(says), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_input_as_path_inline_and_base64() {
    let h = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    h.write_kubeconfig(&file).unwrap();
    let inline = h.kubeconfig_yaml();
    for value in [file.display().to_string(), inline.clone(), b64(&inline)] {
        let (code, out) = dry_run(&[("ROLLGUARD_KUBECONFIG", &value)]).await;
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("dry run"), "{out}");
        assert!(!out.contains(&h.token), "token printed: {out}");
    }
    // A credential problem, like every kubeconfig problem: exit 78 (README, Security).
    let (code, out) = dry_run(&[("ROLLGUARD_KUBECONFIG", "/nonexistent/kubeconfig")]).await;
    assert_config_error(
        code,
        &out,
        "kubeconfig file /nonexistent/kubeconfig does not exist",
    );
    h.shutdown().await;
}

/// `KUBECONFIG=a:missing:b:c`: the cluster in one file, the user in another,
/// a missing file skipped, and a later file's same-named user (a wrong
/// token) ignored: the first file wins per name, as with kubectl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_env_merges_several_files_first_wins() {
    let h = cluster().await;
    let kc = kubeconfig_value(&h);
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    let c = dir.path().join("c.yaml");
    let mut only_cluster = kc.clone();
    only_cluster["users"] = json!([]);
    let mut only_user = kc.clone();
    only_user["clusters"] = json!([]);
    only_user["contexts"] = json!([]);
    only_user.as_object_mut().unwrap().remove("current-context");
    let mut wrong = kc.clone();
    wrong["users"][0]["user"]["token"] = json!("wrong-token");
    wrong["clusters"][0]["cluster"]["server"] = json!("https://127.0.0.1:1");
    std::fs::write(&a, yaml(&only_cluster)).unwrap();
    std::fs::write(&b, yaml(&only_user)).unwrap();
    std::fs::write(&c, yaml(&wrong)).unwrap();
    let list = std::env::join_paths([
        a.as_path(),
        dir.path().join("missing.yaml").as_path(),
        b.as_path(),
        c.as_path(),
    ])
    .unwrap();
    let list = list.to_str().unwrap();
    let (code, out) = dry_run(&[("KUBECONFIG", list)]).await;
    assert_eq!(code, 0, "{out}");

    // The wrong file first: its cluster (a closed port) wins: exit 78.
    let reversed = std::env::join_paths([c.as_path(), a.as_path(), b.as_path()]).unwrap();
    let (code, out) = dry_run(&[("KUBECONFIG", reversed.to_str().unwrap())]).await;
    assert_config_error(code, &out, "cannot reach the cluster");

    let merged = rollguard::kube_client::merge_kubeconfig_paths(list).unwrap();
    assert_eq!(merged.current_context.as_deref(), Some("kubesim"));
    assert_eq!(merged.auth_infos.len(), 1);
    h.shutdown().await;
}

/// The GitLab agent's kubeconfig: several contexts, none current.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_contexts_none_current_need_a_context() {
    let h = cluster().await;
    let mut kc = kubeconfig_value(&h);
    kc.as_object_mut().unwrap().remove("current-context");
    kc["contexts"] = json!([
        {"name": "acme/deploy:staging", "context": {"cluster": "kubesim", "user": "nobody", "namespace": "staging"}},
        {"name": "acme/deploy:prod", "context": {"cluster": "kubesim", "user": "kubesim-admin", "namespace": "default"}},
    ]);
    let text = yaml(&kc);
    let (code, out) = dry_run(&[("ROLLGUARD_KUBECONFIG", &text)]).await;
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("2 contexts and none is current")
            && out.contains("acme/deploy:staging, acme/deploy:prod"),
        "{out}"
    );
    let (code, out) = dry_run(&[
        ("ROLLGUARD_KUBECONFIG", &text),
        ("ROLLGUARD_CONTEXT", "acme/deploy:prod"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    // KUBE_CONTEXT (Auto DevOps' name) is the fallback.
    let (code, out) = dry_run(&[
        ("ROLLGUARD_KUBECONFIG", &text),
        ("KUBE_CONTEXT", "acme/deploy:prod"),
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = dry_run(&[
        ("ROLLGUARD_KUBECONFIG", &text),
        ("INPUT_CONTEXT", "acme/deploy:qa"),
    ])
    .await;
    assert_config_error(
        code,
        &out,
        "context \"acme/deploy:qa\" not found in the kubeconfig input",
    );
    h.shutdown().await;
}

/// An exec credential plugin (a shell script printing an ExecCredential).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_plugin_supplies_the_token() {
    use std::os::unix::fs::PermissionsExt as _;
    let h = cluster().await;
    h.add_identity("ci-bot", "exec-plugin-token-42", vec![Rule::admin()]);
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("credential-plugin.sh");
    std::fs::write(
        &plugin,
        "#!/bin/sh\n[ \"$1\" = get-token ] || exit 3\nprintf '%s' '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"exec-plugin-token-42\"}}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut kc = kubeconfig_value(&h);
    kc["users"][0]["user"] = json!({"exec": {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": plugin.display().to_string(),
        "args": ["get-token"],
        "interactiveMode": "Never",
    }});
    let (code, out) = dry_run(&[("ROLLGUARD_KUBECONFIG", &yaml(&kc))]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("exec-plugin-token-42"), "{out}");

    // A plugin that fails: exit 78, naming the kubeconfig input.
    kc["users"][0]["user"]["exec"]["args"] = json!(["wrong"]);
    let (code, out) = dry_run(&[("ROLLGUARD_KUBECONFIG", &yaml(&kc))]).await;
    assert_eq!(code, 78, "{out}");
    h.shutdown().await;
}

/// The pod's service account: host/port, token file, CA and namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_service_account() {
    let h = cluster().await;
    h.add_identity(
        "system:serviceaccount:default:rollguard",
        "sa-token-7",
        vec![Rule::new(
            &["list"],
            &["apps"],
            &["deployments"],
            &["default"],
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "sa-token-7").unwrap();
    std::fs::write(dir.path().join("ca.crt"), h.ca_pem.as_ref().unwrap()).unwrap();
    std::fs::write(dir.path().join("namespace"), "default").unwrap();
    let port = h.addr.port().to_string();
    let kc =
        rollguard::kube_client::in_cluster_kubeconfig(Some("127.0.0.1"), Some(&port), dir.path())
            .unwrap();
    let config = rollguard::kube_client::client_config(kc, None, "the pod's service account")
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    rollguard::kube_client::install_crypto_provider();
    let client = kube::Client::try_from(config).unwrap();
    let api: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client, "default");
    let list = api.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);

    let e = rollguard::kube_client::in_cluster_kubeconfig(None, None, dir.path()).unwrap_err();
    assert!(e.0.contains("KUBERNETES_SERVICE_HOST"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = rollguard::kube_client::in_cluster_kubeconfig(Some("10.0.0.1"), None, empty.path())
        .unwrap_err();
    assert!(e.0.contains("token is missing"), "{e}");
    // auth=in-cluster outside a pod: exit 78 with that message.
    let (code, out) = dry_run(&[("ROLLGUARD_AUTH", "in-cluster")]).await;
    assert_config_error(code, &out, "KUBERNETES_SERVICE_HOST is not set");
    h.shutdown().await;
}

/// `auth: gke`: a token from the metadata server (which must see
/// `Metadata-Flavor: Google`), plus cluster-endpoint and cluster-ca.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gke_auth_uses_the_metadata_server() {
    let h = cluster().await;
    h.add_identity("cloudbuild-sa", "ya29.gke-token", vec![Rule::admin()]);
    let metadata = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(rollguard::kube_client::GCE_TOKEN_PATH))
        .and(header("Metadata-Flavor", "Google"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.gke-token", "expires_in": 3599, "token_type": "Bearer"
        })))
        .expect(1..)
        .mount(&metadata)
        .await;
    let host = metadata.address().to_string();
    let ca = h.ca_pem.clone().unwrap();
    // The CA as PEM and as base64 of PEM (as gcloud prints it); the endpoint
    // as a URL and as a bare host:port.
    let bare = h.base_url.trim_start_matches("https://").to_string();
    for (endpoint, ca) in [(h.base_url.clone(), ca.clone()), (bare, b64(&ca))] {
        let (code, out) = dry_run(&[
            ("ROLLGUARD_AUTH", "gke"),
            ("ROLLGUARD_CLUSTER_ENDPOINT", &endpoint),
            ("ROLLGUARD_CLUSTER_CA", &ca),
            ("GCE_METADATA_HOST", &host),
        ])
        .await;
        assert_eq!(code, 0, "{out}");
        assert!(!out.contains("ya29"), "token printed: {out}");
    }

    // A metadata server that refuses: exit 78 naming it.
    let refusing = MockServer::start().await;
    let (code, out) = dry_run(&[
        ("ROLLGUARD_AUTH", "gke"),
        ("ROLLGUARD_CLUSTER_ENDPOINT", &h.base_url),
        ("ROLLGUARD_CLUSTER_CA", &ca),
        ("GCE_METADATA_HOST", &refusing.address().to_string()),
    ])
    .await;
    assert_eq!(code, 78, "{out}");
    assert!(
        out.contains("GCE metadata server") && out.contains("404"),
        "{out}"
    );
    h.shutdown().await;
}

#[test]
fn auth_inputs_are_validated() {
    let env = |pairs: &[(&str, &str)]| -> Env {
        [("ROLLGUARD_WORKLOAD", "api"), ("ROLLGUARD_TAG", "v2")]
            .iter()
            .chain(pairs)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let err = |pairs: &[(&str, &str)]| rollguard::config::from_env(&env(pairs)).unwrap_err();
    let e = err(&[("ROLLGUARD_AUTH", "gke")]);
    assert_eq!(e.input, "cluster-endpoint");
    let e = err(&[
        ("ROLLGUARD_AUTH", "gke"),
        ("ROLLGUARD_CLUSTER_ENDPOINT", "10.0.0.1"),
    ]);
    assert_eq!(e.input, "cluster-ca");
    let e = err(&[
        ("ROLLGUARD_AUTH", "gke"),
        ("ROLLGUARD_CLUSTER_ENDPOINT", "10.0.0.1"),
        ("ROLLGUARD_CLUSTER_CA", "not a certificate"),
    ]);
    assert_eq!(e.input, "cluster-ca");
    let e = err(&[("ROLLGUARD_AUTH", "aws")]);
    assert_eq!(e.input, "auth");
    let e = err(&[("ROLLGUARD_CLUSTER_ENDPOINT", "10.0.0.1")]);
    assert_eq!(e.input, "cluster-endpoint");
    let e = err(&[
        ("ROLLGUARD_AUTH", "in-cluster"),
        ("ROLLGUARD_KUBECONFIG", "apiVersion: v1\nclusters: []\n"),
    ]);
    assert_eq!(e.input, "kubeconfig");

    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let s = rollguard::config::from_env(&env(&[
        ("INPUT_AUTH", "gke"),
        ("INPUT_CLUSTER-ENDPOINT", "34.1.2.3"),
        ("INPUT_CLUSTER-CA", &b64(pem)),
    ]))
    .unwrap();
    assert_eq!(
        s.kubeconfig,
        KubeconfigSource::Gke {
            endpoint: "https://34.1.2.3".into(),
            ca_pem: pem.into(),
            metadata_base: "http://metadata.google.internal".into(),
        }
    );
    let s = rollguard::config::from_env(&env(&[("KUBE_CONTEXT", "a/b:c")])).unwrap();
    assert_eq!(s.context.as_deref(), Some("a/b:c"));
}

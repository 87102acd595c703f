//! Pre-flight checks (the registry and capacity checks) end to end: a real OCI registry (Debian's
//! `docker-registry`, the CNCF distribution server) on loopback, rollguard's
//! library entry point, kubesim. The simulated kubelet does not pull from the
//! registry: images are simulated by name (a plain `…:v2` runs fine).
//!
//! (Over 500 lines: one suite of end-to-end tests of one concern; each
//! test is a story of its own, set up by `support`.)

use crate::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{DeploymentSpec, Fixture, free_port, run as rollguard};
use base64::Engine as _;
use kubesim::Handle;
use rollguard::Env;
use rollguard::diagnose::Cause;
use serde_json::{Value, json};
use sha2::Digest as _;

const WAIT: Duration = Duration::from_secs(30);
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

// ---------------------------------------------------------------- registry

/// A `docker-registry` process on a free loopback port; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    auth: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry_available() -> bool {
    if Path::new(REGISTRY_BIN).exists() {
        true
    } else {
        println!(
            "note: {REGISTRY_BIN} is absent (apt-get install docker-registry); skipping this registry test"
        );
        false
    }
}

/// `sha256:<hex>` of these bytes.
fn sha256(data: &[u8]) -> String {
    let hex: String = sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

impl Registry {
    /// Start a registry; with `auth`, behind htpasswd basic auth.
    async fn start(auth: Option<(&str, &str)>) -> Registry {
        rollguard::kube_client::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let hash = bcrypt::hash_with_result(password, 4)
                .unwrap()
                .format_for_version(bcrypt::Version::TwoY);
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: rollguard-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let reg = Registry {
            child,
            port,
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
            _dir: dir,
        };
        // Wait until /v2/ answers (200, or 401 behind auth).
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(format!("{}/v2/", reg.base())).send().await
                && (r.status().is_success() || r.status() == 401)
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "docker-registry did not come up on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reg
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn authed(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some((u, p)) => rb.basic_auth(u, Some(p)),
            None => rb,
        }
    }

    /// Upload a blob (POST, then monolithic PUT); its digest.
    async fn push_blob(&self, name: &str, data: &[u8]) -> String {
        let client = reqwest::Client::new();
        let digest = sha256(data);
        let r = self
            .authed(client.post(format!("{}/v2/{name}/blobs/uploads/", self.base())))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "start upload");
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base())
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .authed(client.put(format!("{location}{sep}digest={digest}")))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "finish upload: {}",
            r.text().await.unwrap()
        );
        digest
    }

    /// Push a tiny OCI image as `name:tag`; the manifest digest.
    async fn push_image(&self, name: &str, tag: &str) -> String {
        let config = json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}, "config": {}})
        .to_string();
        let layer = format!("layer of {name}:{tag}").into_bytes();
        let config_digest = self.push_blob(name, config.as_bytes()).await;
        let layer_digest = self.push_blob(name, &layer).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest, "size": layer.len()}]
        })
        .to_string();
        let r = self
            .authed(
                reqwest::Client::new().put(format!("{}/v2/{name}/manifests/{tag}", self.base())),
            )
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            201,
            "push manifest: {}",
            r.text().await.unwrap()
        );
        let digest = sha256(manifest.as_bytes());
        assert_eq!(r.headers()["docker-content-digest"], digest.as_str());
        digest
    }
}

// ---------------------------------------------------------------- cluster

fn deployment(image: &str, replicas: i64, resources: Value, pull_secret: Option<&str>) -> Value {
    DeploymentSpec {
        name: "api",
        containers: Some(json!([{"name": "api", "image": image, "resources": resources}])),
        replicas,
        pod: pull_secret.map_or(Value::Null, |s| json!({"imagePullSecrets": [{"name": s}]})),
        ..Default::default()
    }
    .into()
}

/// `api`: `replicas` pods of one container on `image`, ready.
async fn api_cluster(image: &str, replicas: i64) -> Handle {
    Fixture::new()
        .deployment(deployment(image, replicas, json!({}), None))
        .start()
        .await
}

fn get(h: &Handle) -> Value {
    support::deployment_named(h, "api")
}

fn resource_version(h: &Handle) -> Value {
    get(h)["metadata"]["resourceVersion"].clone()
}

fn template_image(h: &Handle) -> String {
    get(h)["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

fn env(h: &Handle, pairs: &[(&str, &str)]) -> Env {
    support::env_with(
        h,
        &[
            ("ROLLGUARD_WORKLOAD", "deployment/api"),
            // No docker config of the machine running the tests.
            ("HOME", "/nonexistent"),
        ],
        pairs,
    )
}

fn pull_secret(name: &str, host: &str, user: &str, password: &str) -> Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = json!({"auths": {host: {"auth": auth}}}).to_string();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(config)}
    })
}

// ---------------------------------------------------------------- registry check

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_tag_passes_and_rolls_out() {
    if !registry_available() {
        return;
    }
    let reg = Registry::start(None).await;
    let digest = reg.push_image("team/api", "v2").await;
    let repo = format!("{}/team/api", reg.host());
    let h = api_cluster(&format!("{repo}:v1"), 2).await;
    let (o, out) = rollguard(&env(&h, &[("ROLLGUARD_TAG", "v2")])).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(
        out.contains(&format!("pre-flight: image {repo}:v2 found")),
        "{out}"
    );
    assert!(out.contains(&digest), "{out}");
    assert_eq!(template_image(&h), format!("{repo}:v2"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tag_exits_2_and_changes_nothing() {
    if !registry_available() {
        return;
    }
    let reg = Registry::start(None).await;
    reg.push_image("team/api", "v2").await;
    let repo = format!("{}/team/api", reg.host());
    let h = api_cluster(&format!("{repo}:v1"), 2).await;
    let before = resource_version(&h);
    // A misspelled tag, then a repository that does not exist.
    for (pairs, what) in [
        (vec![("ROLLGUARD_TAG", "v3")], "no manifest v3"),
        (
            vec![("ROLLGUARD_IMAGE", &*format!("{}/team/apx:v2", reg.host()))],
            "team/apx",
        ),
    ] {
        let (o, out) = rollguard(&env(&h, &pairs)).await;
        assert_eq!(o.exit_code, 2, "{out}");
        assert!(out.contains(what), "{out}");
        assert!(
            out.contains("the registry or repository is wrong, or the tag is misspelled: push it or fix the reference"),
            "{out}"
        );
        assert_eq!(o.report.findings[0].cause, Cause::ImageNotFound);
        assert_eq!(resource_version(&h), before, "the deployment was changed");
    }
    // verify-image=false turns the check off: the rollout goes ahead.
    let (o, out) = rollguard(&env(
        &h,
        &[("ROLLGUARD_TAG", "v3"), ("ROLLGUARD_VERIFY_IMAGE", "false")],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(!out.contains("pre-flight: image"), "{out}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_credentials_come_from_the_image_pull_secret() {
    if !registry_available() {
        return;
    }
    let reg = Registry::start(Some(("ci", "s3cret-pw"))).await;
    reg.push_image("team/api", "v2").await;
    let repo = format!("{}/team/api", reg.host());
    let h = Fixture::new()
        .object(pull_secret("regcred", &reg.host(), "ci", "s3cret-pw"))
        .object(pull_secret("wrongcred", &reg.host(), "ci", "wrong"))
        .deployment(deployment(
            &format!("{repo}:v1"),
            2,
            json!({}),
            Some("regcred"),
        ))
        .start()
        .await;
    // Right credentials: a missing tag is known for sure.
    let before = resource_version(&h);
    let (o, out) = rollguard(&env(&h, &[("ROLLGUARD_TAG", "v3")])).await;
    assert_eq!(o.exit_code, 2, "{out}");
    assert_eq!(resource_version(&h), before);
    let (o, out) = rollguard(&env(&h, &[("ROLLGUARD_TAG", "v2")])).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(
        out.contains("found in") && out.contains("imagePullSecret regcred"),
        "{out}"
    );
    assert!(!out.contains("s3cret-pw"), "{out}");
    h.shutdown().await;

    // Wrong credentials: one warning, and the rollout proceeds.
    let h = Fixture::new()
        .object(pull_secret("wrongcred", &reg.host(), "ci", "wrong"))
        .deployment(deployment(
            &format!("{repo}:v1"),
            2,
            json!({}),
            Some("wrongcred"),
        ))
        .start()
        .await;
    let (o, out) = rollguard(&env(&h, &[("ROLLGUARD_TAG", "v2")])).await;
    assert_eq!(o.exit_code, 0, "{out}");
    let warnings = support::lines_where(&out, |l| l.starts_with("pre-flight warning:"));
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("refused our credentials"), "{out}");
    assert_eq!(template_image(&h), format!("{repo}:v2"));
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_config_file_credentials() {
    if !registry_available() {
        return;
    }
    let reg = Registry::start(Some(("ci", "pw2"))).await;
    reg.push_image("team/api", "v2").await;
    let repo = format!("{}/team/api", reg.host());
    let h = api_cluster(&format!("{repo}:v1"), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:pw2");
    std::fs::write(
        dir.path().join("config.json"),
        json!({"auths": {format!("http://{}", reg.host()): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let dir_s = dir.path().to_str().unwrap().to_string();
    let (o, out) = rollguard(&env(
        &h,
        &[("ROLLGUARD_TAG", "v3"), ("DOCKER_CONFIG", &dir_s)],
    ))
    .await;
    assert_eq!(o.exit_code, 2, "{out}");
    let path = format!("{dir_s}/config.json");
    let (o, out) = rollguard(&env(
        &h,
        &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_REGISTRY_AUTH", &path)],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(out.contains("docker config"), "{out}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_digest_deploys_the_checked_digest() {
    if !registry_available() {
        return;
    }
    let reg = Registry::start(None).await;
    let digest = reg.push_image("team/api", "v2").await;
    let repo = format!("{}/team/api", reg.host());
    let h = api_cluster(&format!("{repo}:v1"), 2).await;
    let (o, out) = rollguard(&env(
        &h,
        &[("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_PIN_DIGEST", "true")],
    ))
    .await;
    assert_eq!(o.exit_code, 0, "{out}");
    let pinned = format!("{repo}:v2@{digest}");
    assert_eq!(template_image(&h), pinned);
    assert_eq!(o.report.image.as_deref(), Some(pinned.as_str()));
    assert_eq!(
        get(&h)["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"],
        "v2"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_registry_warns_once_and_proceeds() {
    let host = format!("127.0.0.1:{}", free_port());
    let h = api_cluster(&format!("{host}/team/api:v1"), 1).await;
    let (o, out) = rollguard(&env(&h, &[("ROLLGUARD_TAG", "v2")])).await;
    assert_eq!(o.exit_code, 0, "{out}");
    let warnings = support::lines_where(&out, |l| l.starts_with("pre-flight warning:"));
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("unreachable"), "{out}");
    assert_eq!(template_image(&h), format!("{host}/team/api:v2"));
    h.shutdown().await;
}

// ---------------------------------------------------------------- capacity check

/// Two nodes of 2 cpu; `replicas` pods requesting `cpu` each. The image is on
/// an unreachable loopback registry: the registry check only warns.
async fn capacity_cluster(replicas: i64, cpu: &str, strategy: Option<Value>) -> Handle {
    let mut d = deployment(
        "example/api:v1",
        replicas,
        json!({"requests": {"cpu": cpu}}),
        None,
    );
    if let Some(s) = strategy {
        d["spec"]["strategy"] = s;
    }
    Fixture::new()
        .nodes(2)
        .node_cpu("2")
        .deployment(d)
        .start()
        .await
}

fn capacity_env(h: &Handle, extra: &[(&str, &str)]) -> Env {
    let mut pairs = vec![("ROLLGUARD_TAG", "v2"), ("ROLLGUARD_VERIFY_IMAGE", "false")];
    pairs.extend_from_slice(extra);
    env(h, &pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_fits_and_proceeds() {
    let h = capacity_cluster(2, "500m", None).await;
    let (o, out) = rollguard(&capacity_env(&h, &[])).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert!(out.contains("pre-flight: capacity:"), "{out}");
    assert_eq!(template_image(&h), "example/api:v2");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_cannot_fit_exits_2_naming_requested_and_free() {
    // 2500m per pod on nodes of 2000m: the pods are Pending now and would
    // never fit; the check says so before anything changes.
    let h = Fixture::new().nodes(2).node_cpu("2").start().await;
    h.create(deployment(
        "example/api:v1",
        2,
        json!({"requests": {"cpu": "2500m"}}),
        None,
    ))
    .unwrap();
    // Let the controller settle (two pending pods, status written).
    let settled = |h: &Handle| {
        let d = get(h);
        d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && d["status"]["replicas"] == 2
            && d["status"]["unavailableReplicas"] == 2
            && h.list("v1", "Pod", "default").len() == 2
    };
    assert!(h.wait_for(WAIT, settled).await, "{:#}", get(&h));
    let before = resource_version(&h);
    let (o, out) = rollguard(&capacity_env(&h, &[])).await;
    assert_eq!(o.exit_code, 2, "{out}");
    assert_eq!(template_image(&h), "example/api:v1");
    assert!(
        out.contains("cpu requested: 2500m, used: 0m of 2000m on node-1 (free 2000m)"),
        "{out}"
    );
    assert!(out.contains("add nodes"), "{out}");
    assert_eq!(o.report.findings[0].cause, Cause::Unschedulable);
    assert_eq!(resource_version(&h), before);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_fits_only_without_surge_exits_2_with_reduce_surge() {
    // Seed 000: every node has room for its pod but not one more.
    let strategy = json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let h = capacity_cluster(2, "1200m", Some(strategy)).await;
    let before = resource_version(&h);
    let (o, out) = rollguard(&capacity_env(&h, &[])).await;
    assert_eq!(o.exit_code, 2, "{out}");
    assert!(
        out.contains("cpu requested: 1200m, used: 1200m of 2000m"),
        "{out}"
    );
    assert!(out.contains("(free 800m)"), "{out}");
    assert!(out.contains("Reduce surge"), "{out}");
    assert_eq!(resource_version(&h), before);
    // A dry run runs the same pre-flight checks.
    let (o, out) = rollguard(&capacity_env(&h, &[("ROLLGUARD_DRY_RUN", "true")])).await;
    assert_eq!(o.exit_code, 2, "{out}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_fits_when_max_unavailable_frees_room() {
    let strategy = json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    let h = capacity_cluster(2, "1200m", Some(strategy)).await;
    let (o, out) = rollguard(&capacity_env(&h, &[])).await;
    assert_eq!(o.exit_code, 0, "{out}");
    assert_eq!(template_image(&h), "example/api:v2");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_warn_proceeds_with_a_warning() {
    let strategy = json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let h = capacity_cluster(2, "1200m", Some(strategy)).await;
    let (o, out) = rollguard(&capacity_env(
        &h,
        &[
            ("ROLLGUARD_CAPACITY_CHECK", "warn"),
            ("ROLLGUARD_UNSCHEDULABLE_GRACE", "1s"),
        ],
    ))
    .await;
    assert!(out.contains("pre-flight warning:"), "{out}");
    assert!(out.contains("capacity-check=warn"), "{out}");
    // It went ahead: the surge pod was unschedulable, as predicted, and rolled back.
    assert_eq!(o.exit_code, 1, "{out}");
    assert_eq!(o.report.findings[0].cause, Cause::Unschedulable);
    // off: no capacity line at all.
    let (_, out) = rollguard(&capacity_env(
        &h,
        &[
            ("ROLLGUARD_CAPACITY_CHECK", "off"),
            ("ROLLGUARD_DRY_RUN", "true"),
        ],
    ))
    .await;
    assert!(!out.contains("capacity"), "{out}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_skipped_when_nodes_cannot_be_listed() {
    let strategy = json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    let h = capacity_cluster(2, "1200m", Some(strategy)).await;
    h.add_identity(
        "ci-deployer",
        "deployer-token",
        vec![
            kubesim::Rule::new(&["*"], &["*"], &["*"], &["default"]),
            kubesim::Rule::new(
                &["create"],
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews"],
                &["*"],
            ),
        ],
    );
    let mut e = capacity_env(&h, &[("ROLLGUARD_DRY_RUN", "true")]);
    e.insert(
        "ROLLGUARD_KUBECONFIG".into(),
        h.kubeconfig_for("deployer-token", "ci-deployer"),
    );
    let (o, out) = rollguard(&e).await;
    assert_eq!(o.exit_code, 0, "{out}");
    let notes = support::lines_where(&out, |l| l.contains("capacity check skipped"));
    assert_eq!(notes.len(), 1, "{out}");
    assert!(notes[0].contains("cannot list nodes"), "{out}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_preflight_inputs_exit_2() {
    let h = Fixture::new().start().await;
    for (pairs, expect) in [
        (
            vec![("ROLLGUARD_CAPACITY_CHECK", "maybe")],
            "\"capacity-check\"",
        ),
        (
            vec![("ROLLGUARD_VERIFY_IMAGE", "perhaps")],
            "\"verify-image\"",
        ),
        (
            vec![
                ("ROLLGUARD_PIN_DIGEST", "true"),
                ("ROLLGUARD_VERIFY_IMAGE", "false"),
            ],
            "\"pin-digest\"",
        ),
        (
            vec![("ROLLGUARD_INSECURE_REGISTRIES", "good:5000,bad host")],
            "\"insecure-registries\"",
        ),
    ] {
        let mut pairs = pairs;
        pairs.push(("ROLLGUARD_TAG", "v2"));
        let (o, out) = rollguard(&env(&h, &pairs)).await;
        assert_eq!(o.exit_code, 2, "{out}");
        assert!(out.contains(expect), "{out}");
    }
    h.shutdown().await;
}

// ---------------------------------------------------------------- protocol details (stand-ins)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_bearer_token_flow() {
    use wiremock::matchers::{header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    rollguard::kube_client::install_crypto_provider();
    let server = MockServer::start().await;
    let digest = format!("sha256:{}", "b".repeat(64));
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .respond_with(
            ResponseTemplate::new(401).insert_header(
                "www-authenticate",
                format!(
                    "Bearer realm=\"{}/token\",service=\"test-registry\"",
                    server.uri()
                )
                .as_str(),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(query_param("scope", "repository:team/api:pull"))
        .and(query_param("service", "test-registry"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": "anon-token"})))
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/v2/team/api/manifests/v2"))
        .and(header("authorization", "Bearer anon-token"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("docker-content-digest", digest.as_str())
                .insert_header("content-type", "application/vnd.oci.image.index.v1+json"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/team/api/manifests/v3"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}),
        ))
        .mount(&server)
        .await;
    let host = server.address().to_string();
    use rollguard::preflight::registry::{Resolved, parse, resolve};
    let found = resolve(&parse(&format!("{host}/team/api:v2")).unwrap(), None, &[]).await;
    assert_eq!(found, Resolved::Found { digest });
    let missing = resolve(&parse(&format!("{host}/team/api:v3")).unwrap(), None, &[]).await;
    assert!(
        matches!(&missing, Resolved::NotFound { detail } if detail.contains("MANIFEST_UNKNOWN")),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gce_metadata_token_for_google_registries() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    rollguard::kube_client::install_crypto_provider();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/computeMetadata/v1/instance/service-accounts/default/token",
        ))
        .and(header("metadata-flavor", "Google"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "ya29.token", "expires_in": 3599, "token_type": "Bearer"}),
        ))
        .mount(&server)
        .await;
    let c = rollguard::preflight::registry::gce_metadata_credentials(&server.address().to_string())
        .await
        .expect("a token");
    assert_eq!(c.username, "oauth2accesstoken");
    assert_eq!(c.password, "ya29.token");
    assert!(!format!("{c:?}").contains("ya29"));
    // Off GCE (nothing listening): no credentials, quickly.
    let none = rollguard::preflight::registry::gce_metadata_credentials(&format!(
        "127.0.0.1:{}",
        free_port()
    ))
    .await;
    assert!(none.is_none());
}

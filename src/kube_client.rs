//! Cluster credentials → a `kube::Client` and the namespace to default to.
//!
//! Sources, by the `auth` input (see [`KubeconfigSource`]):
//! - `kubeconfig` (default): the `kubeconfig` input (path, inline YAML or
//!   base64 of YAML), else `KUBECONFIG` (several paths merged, the first file
//!   wins per name as with kubectl; missing files skipped), else
//!   `~/.kube/config`, else the pod's service account. Exec auth plugins and
//!   token files work as kubectl runs them. A kubeconfig with several
//!   contexts and none current (the GitLab agent's) needs `context`.
//! - `in-cluster`: the pod's service account token, CA and namespace.
//! - `gke`: an access token from the GCE metadata server, for the cluster
//!   given by `cluster-endpoint` and `cluster-ca`: no gcloud needed.
//!
//! Every error is one line naming the source (exit 78); tokens are never
//! printed or logged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::config::KubeconfigSource;

/// A problem with the kubeconfig or the connection (exit 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClusterConfigError(pub String);

/// Where a pod's service account is mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The metadata server path of the default service account's access token.
pub const GCE_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// Install ring as rustls's process-wide crypto provider (once; a second
/// install is harmlessly refused).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn fail(msg: impl Into<String>) -> ClusterConfigError {
    ClusterConfigError(msg.into())
}

/// A kubeconfig error in words that never quote the file: a YAML error is
/// its kind and position only (the parser's message can quote a scalar, and
/// its excerpt shows the lines around the error, tokens included); a read
/// error is the OS's reason.
pub fn describe(e: &kube::config::KubeconfigError) -> String {
    use kube::config::KubeconfigError as K;
    match e {
        K::Parse(pe) => {
            let kind = unquoted(&pe.without_snippet().to_string());
            match pe.location() {
                Some(l) => format!(
                    "not valid YAML at line {}, column {}: {kind}",
                    l.line(),
                    l.column()
                ),
                None => format!("not valid YAML: {kind}"),
            }
        }
        K::ReadConfig(io, _) => match io.kind() {
            std::io::ErrorKind::NotFound => "does not exist".into(),
            std::io::ErrorKind::PermissionDenied => "is not readable (permission denied)".into(),
            std::io::ErrorKind::IsADirectory => "is a directory, not a file".into(),
            std::io::ErrorKind::InvalidData => "is not UTF-8 text".into(),
            _ => format!("cannot be read ({})", unquoted(&io.to_string())),
        },
        other => unquoted(&other.to_string()),
    }
}

/// The first line of a parser message with every quoted part (`"…"`,
/// `'…'`, `` `…` ``) replaced by `…`, cut to 120 characters: the kind of
/// error without the text it was about.
fn unquoted(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or("");
    let mut out = String::new();
    let mut open: Option<char> = None;
    for c in first.chars() {
        match open {
            Some(q) if c == q => open = None,
            Some(_) => {}
            None if matches!(c, '"' | '`' | '\'') => {
                open = Some(c);
                out.push('…');
            }
            None => out.push(c),
        }
    }
    crate::text::quote(out.trim(), 120)
}

/// Build a client from the source; returns it with the namespace of the
/// chosen context (`default` when it names none).
pub async fn connect(
    source: &KubeconfigSource,
    context: Option<&str>,
) -> Result<(kube::Client, String), ClusterConfigError> {
    install_crypto_provider();
    let (kubeconfig, what) = load(source).await?;
    let config = client_config(kubeconfig, context, &what).await?;
    let namespace = config.default_namespace.clone();
    // kube's client with rollguard's retry layer.
    let client = crate::retry::client(config)
        .map_err(|e| fail(format!("{what}: cannot build a Kubernetes client: {e}")))?;
    Ok((client, namespace))
}

/// The kubeconfig a source stands for, and how to name the source in messages.
pub async fn load(source: &KubeconfigSource) -> Result<(Kubeconfig, String), ClusterConfigError> {
    match source {
        KubeconfigSource::Inline(yaml) => {
            let what = "the kubeconfig input".to_string();
            let kc = Kubeconfig::from_yaml(yaml).map_err(|e| {
                fail(format!(
                    "{what} is not a valid kubeconfig: {}",
                    describe(&e)
                ))
            })?;
            Ok((kc, what))
        }
        KubeconfigSource::Path(path) => {
            let what = format!("kubeconfig file {path}");
            if Path::new(path).is_dir() {
                return Err(fail(format!("{what} is a directory, not a file")));
            }
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| fail(format!("{what} {}", describe(&e))))?;
            Ok((kc, what))
        }
        KubeconfigSource::Infer {
            kubeconfig_env,
            home,
            service_host,
            service_port,
        } => infer(
            kubeconfig_env.as_deref(),
            home.as_deref(),
            service_host.as_deref(),
            service_port.as_deref(),
        ),
        KubeconfigSource::InCluster { host, port } => {
            let kc = in_cluster_kubeconfig(
                host.as_deref(),
                port.as_deref(),
                Path::new(SERVICE_ACCOUNT_DIR),
            )?;
            Ok((kc, "the pod's service account (auth=in-cluster)".into()))
        }
        KubeconfigSource::Gke {
            endpoint,
            ca_pem,
            metadata_base,
        } => {
            let token = gce_access_token(metadata_base).await?;
            Ok((
                token_kubeconfig(endpoint, ca_pem, &token, "gke"),
                format!("auth=gke ({endpoint})"),
            ))
        }
    }
}

/// `KUBECONFIG` (merged), `~/.kube/config`, then the pod's service account.
/// The variables come from the settings (`HOME`, `KUBERNETES_SERVICE_HOST`
/// and `_PORT` as the environment had them).
fn infer(
    kubeconfig_env: Option<&str>,
    home: Option<&str>,
    host: Option<&str>,
    port: Option<&str>,
) -> Result<(Kubeconfig, String), ClusterConfigError> {
    if let Some(paths) = kubeconfig_env {
        return Ok((merge_kubeconfig_paths(paths)?, "KUBECONFIG".into()));
    }
    let home_config = home
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".kube").join("config"));
    if let Some(path) = home_config.filter(|p| p.is_file()) {
        let what = path.display().to_string();
        let kc = Kubeconfig::read_from(&path)
            .map_err(|e| fail(format!("kubeconfig file {what} {}", describe(&e))))?;
        return Ok((kc, format!("kubeconfig file {what}")));
    }
    if host.is_some_and(|h| !h.is_empty()) {
        let kc = in_cluster_kubeconfig(host, port, Path::new(SERVICE_ACCOUNT_DIR))?;
        return Ok((kc, "the pod's service account".into()));
    }
    Err(fail(
        "no cluster credentials: give the kubeconfig input (path, inline YAML or base64), set KUBECONFIG, \
         provide ~/.kube/config, run in a pod with a service account, or use auth=gke",
    ))
}

/// The files of a `KUBECONFIG` list merged as kubectl does: the first file
/// that defines a cluster, user or context name wins, and the first
/// `current-context` set wins. Files that do not exist are skipped.
pub fn merge_kubeconfig_paths(paths: &str) -> Result<Kubeconfig, ClusterConfigError> {
    let mut merged: Option<Kubeconfig> = None;
    let mut listed = 0;
    for p in std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()) {
        listed += 1;
        if !p.exists() {
            tracing::warn!("KUBECONFIG lists {}, which does not exist", p.display());
            continue;
        }
        let kc = Kubeconfig::read_from(&p).map_err(|e| {
            fail(format!(
                "kubeconfig file {} (from KUBECONFIG) {}",
                p.display(),
                describe(&e)
            ))
        })?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc).map_err(|e| {
                fail(format!(
                    "cannot merge the KUBECONFIG files: {}",
                    describe(&e)
                ))
            })?,
        });
    }
    merged.ok_or_else(|| {
        if listed == 0 {
            fail("KUBECONFIG is set but names no file")
        } else {
            fail(format!(
                "none of the {listed} file(s) KUBECONFIG names exists: {paths}"
            ))
        }
    })
}

/// Which context to use: the one asked for (it must exist), else the
/// current one, else the only one. Several contexts and none current (the
/// GitLab agent's kubeconfig) is an error listing them.
pub fn select_context(
    kc: &Kubeconfig,
    asked: Option<&str>,
    what: &str,
) -> Result<Option<String>, ClusterConfigError> {
    let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    let list = || names.join(", ");
    if let Some(asked) = asked {
        if names.contains(&asked) {
            return Ok(Some(asked.to_string()));
        }
        return Err(fail(if names.is_empty() {
            format!("context \"{asked}\" not found: {what} has no contexts")
        } else {
            format!(
                "context \"{asked}\" not found in {what}; its contexts: {}",
                list()
            )
        }));
    }
    if let Some(current) = kc.current_context.as_deref().filter(|c| !c.is_empty()) {
        if names.contains(&current) {
            return Ok(None);
        }
        return Err(fail(format!(
            "{what}: current-context \"{current}\" is not one of its contexts ({}); set the context input",
            list()
        )));
    }
    match names.as_slice() {
        [] if kc.clusters.is_empty() => Err(fail(format!("{what} has no clusters or contexts"))),
        // A kubeconfig without contexts: kube uses its first cluster and user.
        [] => Ok(None),
        [only] => Ok(Some(only.to_string())),
        _ => Err(fail(format!(
            "{what} has {} contexts and none is current: set the context input (or KUBE_CONTEXT) to one of: {}",
            names.len(),
            list()
        ))),
    }
}

/// A `kube::Config` for a kubeconfig and context.
pub async fn client_config(
    kc: Kubeconfig,
    context: Option<&str>,
    what: &str,
) -> Result<kube::Config, ClusterConfigError> {
    let chosen = select_context(&kc, context, what)?;
    let kc_extensions_allow = allows_plain_http_credentials(&kc, chosen.as_deref());
    let label = chosen
        .clone()
        .or_else(|| kc.current_context.clone())
        .unwrap_or_else(|| "(none)".into());
    let options = KubeConfigOptions {
        context: chosen,
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| {
            fail(format!(
                "cannot use {what} (context {label}): {}",
                describe(&e)
            ))
        })?;
    let config = no_credentials_over_plain_http(config, &kc_extensions_allow, what);
    tracing::info!(
        "cluster {} via {what}, context {label}, namespace {}",
        config.cluster_url,
        config.default_namespace
    );
    Ok(config)
}

/// The cluster extension that lets credentials go to a plain-HTTP server
/// (a local proxy that adds TLS elsewhere, say). Without it, as kubectl,
/// rollguard sends no credentials over `http://`.
pub const ALLOW_PLAIN_HTTP_CREDENTIALS: &str = "rollguard.dev/plain-http-credentials";

/// Does the chosen context's cluster carry [`ALLOW_PLAIN_HTTP_CREDENTIALS`]?
fn allows_plain_http_credentials(kc: &Kubeconfig, chosen: Option<&str>) -> bool {
    let context = chosen
        .map(str::to_string)
        .or_else(|| kc.current_context.clone())
        .or_else(|| kc.contexts.first().map(|c| c.name.clone()));
    let cluster_name = context
        .and_then(|c| kc.contexts.iter().find(|x| x.name == c))
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .or_else(|| kc.clusters.first().map(|c| c.name.clone()));
    kc.clusters
        .iter()
        .filter(|c| Some(&c.name) == cluster_name.as_ref())
        .filter_map(|c| c.cluster.as_ref())
        .flat_map(|c| c.extensions.iter().flatten())
        .any(|e| e.name == ALLOW_PLAIN_HTTP_CREDENTIALS)
}

/// Drop the credentials of a config whose server is `http://` (unless
/// allowed): a bearer token or password on a plain connection is readable
/// by anyone on the path.
fn no_credentials_over_plain_http(
    mut config: kube::Config,
    allowed: &bool,
    what: &str,
) -> kube::Config {
    if config.cluster_url.scheme_str() != Some("http") || *allowed {
        return config;
    }
    let a = &config.auth_info;
    let has = a.token.is_some()
        || a.token_file.is_some()
        || a.username.is_some()
        || a.password.is_some()
        || a.exec.is_some()
        || a.auth_provider.is_some();
    if has {
        tracing::warn!(
            "{what}: the API server {} is plain http://: sending no credentials to it (set the cluster extension {ALLOW_PLAIN_HTTP_CREDENTIALS} to allow)",
            config.cluster_url
        );
        config.auth_info = Default::default();
    }
    config
}

/// The kubeconfig of a pod's service account: `KUBERNETES_SERVICE_HOST` and
/// `_PORT`, `token` (re-read when it rotates), `ca.crt` and `namespace`
/// from `sa_dir` (normally [`SERVICE_ACCOUNT_DIR`]).
pub fn in_cluster_kubeconfig(
    host: Option<&str>,
    port: Option<&str>,
    sa_dir: &Path,
) -> Result<Kubeconfig, ClusterConfigError> {
    let host = host.filter(|h| !h.is_empty()).ok_or_else(|| {
        fail("auth=in-cluster: KUBERNETES_SERVICE_HOST is not set: this is not running in a Kubernetes pod")
    })?;
    let port = port.filter(|p| !p.is_empty()).unwrap_or("443");
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let token = sa_dir.join("token");
    let ca = sa_dir.join("ca.crt");
    for f in [&token, &ca] {
        if !f.is_file() {
            return Err(fail(format!(
                "auth=in-cluster: {} is missing: does the pod mount a service account token (automountServiceAccountToken)?",
                f.display()
            )));
        }
    }
    let namespace = std::fs::read_to_string(sa_dir.join("namespace"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let value = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": format!("https://{host}:{port}"),
            "certificate-authority": ca.display().to_string(),
        }}],
        "users": [{"name": "service-account", "user": {"tokenFile": token.display().to_string()}}],
        "contexts": [{"name": "in-cluster", "context": {
            "cluster": "in-cluster", "user": "service-account", "namespace": namespace,
        }}],
        "current-context": "in-cluster",
    });
    serde_json::from_value(value)
        .map_err(|e| fail(format!("auth=in-cluster: cannot build a kubeconfig: {e}")))
}

/// A kubeconfig for a bearer token, a server and its CA (PEM).
pub fn token_kubeconfig(server: &str, ca_pem: &str, token: &str, name: &str) -> Kubeconfig {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let value = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": "default"}}],
        "current-context": name,
    });
    // Every field is a plain string of the expected type: this cannot fail.
    serde_json::from_value(value).unwrap_or_default()
}

#[derive(serde::Deserialize)]
struct GceToken {
    access_token: String,
}

/// An OAuth access token of the VM's (or Cloud Build's) service account from
/// the GCE metadata server at `base` (`http://metadata.google.internal`).
pub async fn gce_access_token(base: &str) -> Result<String, ClusterConfigError> {
    install_crypto_provider();
    let url = format!("{}{GCE_TOKEN_PATH}", base.trim_end_matches('/'));
    let what = format!("auth=gke: the GCE metadata server at {base}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| fail(format!("{what}: cannot build an HTTP client: {e}")))?;
    let response = client
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|e| {
            fail(format!(
                "{what} is unreachable ({}): is this running on Google Cloud (Cloud Build, GKE, GCE)?",
                e.without_url()
            ))
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!(
            "{what} answered {status} for the default service account's token"
        )));
    }
    let token: GceToken = response
        .json()
        .await
        .map_err(|e| fail(format!("{what} sent an unreadable token response: {e}")))?;
    if token.access_token.is_empty() {
        return Err(fail(format!("{what} sent an empty access token")));
    }
    Ok(token.access_token)
}

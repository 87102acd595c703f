//! Where the cluster's credentials come from: the `auth` input with
//! `kubeconfig`, `cluster-endpoint` and `cluster-ca`, and the variables
//! each source reads (`KUBECONFIG`, `HOME`, `KUBERNETES_SERVICE_*`,
//! `GCE_METADATA_HOST`). Nothing is read from disk or the network here but
//! whether a kubeconfig path exists.

use super::env::{Env, var};
use super::{InputError, bad};

/// Where the kubeconfig comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigSource {
    /// `KUBECONFIG`, `~/.kube/config`, then in-cluster.
    Infer {
        kubeconfig_env: Option<String>,
        /// `HOME`, for `~/.kube/config`.
        home: Option<String>,
        /// `KUBERNETES_SERVICE_HOST`/`_PORT` as set (the in-cluster fallback).
        service_host: Option<String>,
        service_port: Option<String>,
    },
    Path(String),
    /// Inline YAML (given as YAML or base64 of YAML).
    Inline(String),
    /// `auth: in-cluster`: the pod's service account
    /// (`KUBERNETES_SERVICE_HOST`/`_PORT` as read from the environment).
    InCluster {
        host: Option<String>,
        port: Option<String>,
    },
    /// `auth: gke`: an access token from the GCE metadata server for the
    /// cluster at `endpoint` (an `https://` URL) trusting `ca_pem`.
    Gke {
        endpoint: String,
        ca_pem: String,
        /// `http://HOST[:PORT]` of the metadata server (`GCE_METADATA_HOST`
        /// overrides `metadata.google.internal`, as in Google's client libraries).
        metadata_base: String,
    },
}

/// The `auth` input with `kubeconfig`, `cluster-endpoint` and `cluster-ca`.
pub(super) fn cluster_source(
    auth: Option<&str>,
    kubeconfig: Option<String>,
    endpoint: Option<String>,
    ca: Option<String>,
    env: &Env,
) -> Result<KubeconfigSource, InputError> {
    let get = |k: &str| {
        var(env, k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mode = auth.unwrap_or("kubeconfig").to_ascii_lowercase();
    if mode != "gke" {
        for (name, given) in [("cluster-endpoint", &endpoint), ("cluster-ca", &ca)] {
            if given.is_some() {
                return Err(bad(name, "is used with auth=gke only"));
            }
        }
    }
    if mode != "kubeconfig" && kubeconfig.is_some() {
        return Err(bad(
            "kubeconfig",
            format!("is not used with auth={mode} (use auth=kubeconfig)"),
        ));
    }
    match mode.as_str() {
        "kubeconfig" => Ok(match kubeconfig {
            None => KubeconfigSource::Infer {
                kubeconfig_env: get("KUBECONFIG"),
                home: var(env, "HOME"),
                service_host: env.get("KUBERNETES_SERVICE_HOST").cloned(),
                service_port: env.get("KUBERNETES_SERVICE_PORT").cloned(),
            },
            Some(k) => classify_kubeconfig(&k).map_err(|p| bad("kubeconfig", p))?,
        }),
        "in-cluster" => Ok(KubeconfigSource::InCluster {
            host: get("KUBERNETES_SERVICE_HOST"),
            port: get("KUBERNETES_SERVICE_PORT"),
        }),
        "gke" => {
            let endpoint = endpoint.ok_or_else(|| {
                bad(
                    "cluster-endpoint",
                    "is required with auth=gke (the cluster's endpoint, e.g. from gcloud container clusters describe CLUSTER --format='value(endpoint)')",
                )
            })?;
            let endpoint = cluster_endpoint(&endpoint).map_err(|p| bad("cluster-endpoint", p))?;
            let ca = ca.ok_or_else(|| {
                bad(
                    "cluster-ca",
                    "is required with auth=gke (PEM or base64 of PEM, e.g. --format='value(masterAuth.clusterCaCertificate)')",
                )
            })?;
            let ca_pem = cluster_ca_pem(&ca).map_err(|p| bad("cluster-ca", p))?;
            let host =
                get("GCE_METADATA_HOST").unwrap_or_else(|| "metadata.google.internal".into());
            let metadata_base = if host.contains("://") {
                host.trim_end_matches('/').to_string()
            } else {
                format!("http://{}", host.trim_end_matches('/'))
            };
            Ok(KubeconfigSource::Gke {
                endpoint,
                ca_pem,
                metadata_base,
            })
        }
        other => Err(bad(
            "auth",
            format!("\"{other}\" must be kubeconfig, in-cluster or gke"),
        )),
    }
}

/// `https://HOST[:PORT]`, or a bare host / IP (as GKE prints it) made one.
fn cluster_endpoint(value: &str) -> Result<String, String> {
    let url = if value.contains("://") {
        value.to_string()
    } else {
        format!("https://{value}")
    };
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("\"{value}\" must be an https:// URL or a host name/IP"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(format!("\"{value}\" is not a valid URL or host"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A CA certificate given as PEM or base64 of PEM, as PEM.
fn cluster_ca_pem(value: &str) -> Result<String, String> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    if value.contains(BEGIN) {
        return Ok(value.to_string());
    }
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(pem) if pem.contains(BEGIN) => Ok(pem),
            _ => Err("is base64 but not of a PEM certificate (-----BEGIN CERTIFICATE-----)".into()),
        },
        Err(_) => Err("is neither a PEM certificate nor base64 of one".into()),
    }
}

/// Path, inline YAML, or base64 of YAML. Never an input error: whatever is
/// wrong with a kubeconfig (a missing file, a directory, bad YAML, bad
/// base64 content) is found when it is read, as exit 78 naming the source
/// without quoting it. The rule: 2 is for values rollguard can judge by
/// themselves; 78 is for everything about the cluster's credentials.
fn classify_kubeconfig(value: &str) -> Result<KubeconfigSource, String> {
    use base64::Engine as _;
    let looks_yaml = |s: &str| {
        s.contains("clusters:") || s.contains("apiVersion:") || s.contains("current-context:")
    };
    if looks_yaml(value) {
        return Ok(KubeconfigSource::Inline(value.to_string()));
    }
    let single_line = !value.contains('\n');
    if single_line && std::path::Path::new(value).exists() {
        return Ok(KubeconfigSource::Path(value.to_string()));
    }
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(compact.as_bytes())
        && let Ok(text) = String::from_utf8(bytes)
    {
        // Base64 of text: meant as an inline kubeconfig (its YAML is
        // checked when it is read).
        return Ok(KubeconfigSource::Inline(text));
    }
    let path_like = single_line
        && value.len() <= 1024
        && !value.contains(char::is_whitespace)
        && (value.contains('/') || value.starts_with('.') || value.starts_with('~'));
    if path_like {
        // A path that does not exist: said so (naming it) when read.
        return Ok(KubeconfigSource::Path(value.to_string()));
    }
    // Anything else is taken as inline YAML: its parse error says where and
    // what, never the text.
    Ok(KubeconfigSource::Inline(value.to_string()))
}

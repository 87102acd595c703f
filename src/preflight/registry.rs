//! Does the new image exist? The OCI distribution API (HEAD, then GET, of
//! `/v2/<repo>/manifests/<tag>`, accepting the OCI and Docker manifest and
//! index media types), spoken by `oci-client`: the anonymous bearer-token
//! flow of public registries, Basic auth, plain HTTP for loopback and
//! `insecure-registries` (as Docker does).
//!
//! Credentials, first match wins: the workload's `imagePullSecrets` (what the
//! kubelet will use), the docker config file, and for `gcr.io` /
//! `*.pkg.dev` the GCE metadata server's token. None of them is ever logged.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

/// How long the whole registry check may take before it is given up (warning).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Docker Hub's registry API host; `docker.io` is only its name.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// A username and password for one registry. Debug never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Where they came from ("imagePullSecret regcred", "docker config …").
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// What the registry said about the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The manifest exists; its digest (`Docker-Content-Digest`).
    Found { digest: String },
    /// 404 / MANIFEST_UNKNOWN / NAME_UNKNOWN: the tag (or repository) is not there.
    NotFound { detail: String },
    /// Unreachable, timed out, or the credentials were refused: not known.
    Unverified { reason: String },
}

/// The registry host (`host[:port]`) of a parsed reference, Docker Hub
/// resolved to its API host.
pub fn registry_host(reference: &Reference) -> String {
    match reference.registry() {
        "docker.io" | "index.docker.io" => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

/// Parse an image reference the way the container runtime does (Docker Hub
/// short names get `docker.io` and `library/`).
pub fn parse(image: &str) -> Result<Reference, String> {
    image.parse::<Reference>().map_err(|e| e.to_string())
}

/// Is this `host[:port]` on the loopback interface (127.0.0.0/8, `localhost`, `[::1]`)?
pub fn is_loopback(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        registry.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The key of a docker config `auths` entry as a bare `host[:port]`
/// (`https://index.docker.io/v1/` → `registry-1.docker.io`).
fn normalise_auth_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry.hub.docker.com" => DOCKER_HUB.to_string(),
        _ => host,
    }
}

/// Credentials for `registry` in a docker config / `.dockerconfigjson`
/// document (`{"auths": {host: {auth | username/password}}}`; a bare map of
/// hosts, the old `.dockercfg` form, is read too).
pub fn lookup_auths(doc: &Value, registry: &str, source: &str) -> Option<Credentials> {
    let auths = doc
        .get("auths")
        .and_then(Value::as_object)
        .or_else(|| doc.as_object())?;
    let want = normalise_auth_key(registry);
    let entry = auths
        .iter()
        .find(|(k, _)| normalise_auth_key(k) == want)
        .map(|(_, v)| v)?;
    let (username, password) = match (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        (Some(u), Some(p)) if !u.is_empty() => (u.to_string(), p.to_string()),
        _ => {
            let auth = entry.get("auth").and_then(Value::as_str)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .ok()?;
            let text = String::from_utf8(bytes).ok()?;
            let (u, p) = text.split_once(':')?;
            (u.to_string(), p.to_string())
        }
    };
    Some(Credentials {
        username,
        password,
        source: source.to_string(),
    })
}

/// Does this registry take the GCE metadata server's token (GCR, Artifact Registry)?
pub fn is_google_registry(registry: &str) -> bool {
    let host = registry.split(':').next().unwrap_or("");
    host == "gcr.io"
        || host.ends_with(".gcr.io")
        || host.ends_with("-docker.pkg.dev")
        || host.ends_with(".pkg.dev")
}

/// The default service account's access token from the GCE metadata server
/// (`metadata_host` as `GCE_METADATA_HOST` names it), as registry
/// credentials (`oauth2accesstoken`). None off GCE.
pub async fn gce_metadata_credentials(metadata_host: &str) -> Option<Credentials> {
    let url = format!(
        "http://{metadata_host}/computeMetadata/v1/instance/service-accounts/default/token"
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let response = client
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        tracing::debug!("GCE metadata token: HTTP {}", response.status());
        return None;
    }
    let body: Value = response.json().await.ok()?;
    let token = body.get("access_token").and_then(Value::as_str)?;
    Some(Credentials {
        username: "oauth2accesstoken".into(),
        password: token.to_string(),
        source: "the GCE metadata server".into(),
    })
}

/// Resolve `reference` against its registry with these credentials (None:
/// anonymous, with the bearer-token flow when the registry asks for it).
pub async fn resolve(
    reference: &Reference,
    credentials: Option<&Credentials>,
    insecure_registries: &[String],
) -> Resolved {
    let registry = registry_host(reference);
    // Docker Hub's API lives on registry-1.docker.io (oci-client would use index.docker.io).
    let target = if reference.registry() == registry {
        reference.clone()
    } else {
        let repo = reference.repository().to_string();
        match (reference.tag(), reference.digest()) {
            (Some(t), Some(d)) => {
                Reference::with_tag_and_digest(registry.clone(), repo, t.into(), d.into())
            }
            (None, Some(d)) => Reference::with_digest(registry.clone(), repo, d.into()),
            (t, None) => Reference::with_tag(registry.clone(), repo, t.unwrap_or("latest").into()),
        }
    };
    let mut plain_http: Vec<String> = insecure_registries.to_vec();
    if is_loopback(&registry) {
        plain_http.push(registry.clone());
    }
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain_http),
        connect_timeout: Some(Duration::from_secs(5)),
        read_timeout: Some(Duration::from_secs(10)),
        user_agent: concat!("rollguard/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    });
    let auth = match credentials {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
        None => RegistryAuth::Anonymous,
    };
    let answer = tokio::time::timeout(TIMEOUT, client.fetch_manifest_digest(&target, &auth)).await;
    match answer {
        Err(_) => Resolved::Unverified {
            reason: format!(
                "registry {registry} did not answer within {}s",
                TIMEOUT.as_secs()
            ),
        },
        Ok(Ok(digest)) => Resolved::Found { digest },
        Ok(Err(e)) => classify(&registry, e),
    }
}

fn classify(registry: &str, e: OciDistributionError) -> Resolved {
    let denied = |what: String| Resolved::Unverified {
        reason: format!("registry {registry} refused our credentials ({what})"),
    };
    match e {
        OciDistributionError::RegistryError { envelope, .. } => {
            let not_found = envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            });
            let messages: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| {
                    let code = serde_json::to_value(&e.code)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| format!("{:?}", e.code));
                    format!("{code}: {}", e.message)
                })
                .collect();
            if not_found {
                Resolved::NotFound {
                    detail: messages.join("; "),
                }
            } else if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                denied(messages.join("; "))
            } else {
                Resolved::Unverified {
                    reason: format!("registry {registry} answered: {}", messages.join("; ")),
                }
            }
        }
        OciDistributionError::ServerError { code: 404, .. }
        | OciDistributionError::ImageManifestNotFoundError(_) => Resolved::NotFound {
            detail: "404 Not Found".into(),
        },
        OciDistributionError::ServerError {
            code: code @ (401 | 403),
            ..
        } => denied(format!("HTTP {code}")),
        OciDistributionError::UnauthorizedError { .. } => denied("401 Unauthorized".into()),
        OciDistributionError::AuthenticationFailure(_) => denied("the token request failed".into()),
        OciDistributionError::ServerError { code, .. } => Resolved::Unverified {
            reason: format!("registry {registry} answered HTTP {code}"),
        },
        OciDistributionError::RequestError(e) => Resolved::Unverified {
            reason: format!("registry {registry} is unreachable: {}", error_chain(&e)),
        },
        other => Resolved::Unverified {
            reason: format!("registry {registry}: {other}"),
        },
    }
}

/// An error with its sources, one line (reqwest hides the interesting part
/// in the source chain).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// `repo:tag@digest` for the image the registry resolved (the tag kept for
/// people; the runtime pulls by digest).
pub fn pinned(image: &str, digest: &str) -> String {
    let base = image.split_once('@').map_or(image, |(b, _)| b);
    format!("{base}@{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_resolve_like_docker() {
        let r = parse("nginx").unwrap();
        assert_eq!(registry_host(&r), DOCKER_HUB);
        assert_eq!(r.repository(), "library/nginx");
        assert_eq!(r.tag(), Some("latest"));
        let r = parse("example/web:v2").unwrap();
        assert_eq!(registry_host(&r), DOCKER_HUB);
        assert_eq!(r.repository(), "example/web");
        let r = parse("127.0.0.1:5000/team/api:v2").unwrap();
        assert_eq!(registry_host(&r), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/api");
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.3.0.1"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(is_google_registry("gcr.io"));
        assert!(is_google_registry("eu.gcr.io"));
        assert!(is_google_registry("europe-west1-docker.pkg.dev"));
        assert!(!is_google_registry("ghcr.io"));
    }

    #[test]
    fn docker_config_auths() {
        let doc = json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpzM2NyZXQ="},
            "127.0.0.1:5000": {"username": "ci", "password": "pw:with:colons"},
        }});
        let c = lookup_auths(&doc, DOCKER_HUB, "file").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("user", "s3cret")
        );
        let c = lookup_auths(&doc, "127.0.0.1:5000", "file").unwrap();
        assert_eq!(c.password, "pw:with:colons");
        assert!(lookup_auths(&doc, "ghcr.io", "file").is_none());
        assert!(!format!("{c:?}").contains("pw:with"));
    }

    #[test]
    fn pins_keep_the_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            pinned("127.0.0.1:5000/team/api:v2", &d),
            format!("127.0.0.1:5000/team/api:v2@{d}")
        );
    }
}

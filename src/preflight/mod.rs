//! Pre-flight checks that stop a bad rollout before anything changes:
//! the new image's tag exists in its registry ([`registry`]),
//! and the new pods fit on the nodes ([`capacity`]).
//!
//! A failed check is a [`Finding`] (exit 2, cluster untouched). What cannot
//! be checked (registry unreachable, credentials refused, no permission to
//! list nodes) is one console line and the rollout proceeds.

pub mod capacity;
pub mod registry;

use std::io::Write;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

use crate::config::{CapacityCheck, Preflight};
use crate::model::{Cause, Finding};
use registry::{Credentials, Resolved};

/// Seed 003's fix for an image that is not in the registry.
pub const IMAGE_NOT_FOUND_FIX: &str = "The image was not pushed, the registry or repository is wrong, or the tag is misspelled: push it or fix the reference.";

/// What the checks passed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passed {
    /// `repo:tag@sha256:…` to deploy instead (pin-digest).
    pub pinned_image: Option<String>,
}

/// What the checks look at in a Deployment: its pod template's spec, its
/// selector, and the surge and unavailability its strategy allows.
pub fn inputs(deployment: &Deployment) -> (PodSpec, LabelSelector, capacity::Strategy) {
    let spec = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    let selector = deployment
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    (spec, selector, capacity::strategy(deployment))
}

/// Run the enabled checks for deploying `new_image` into `container` of a
/// workload of any kind: its pod template's spec, the
/// selector of its current pods, and the surge its update strategy allows
/// (a ReplicationController's client-side rolling update: surge 1,
/// unavailable 0). `Err` is the finding that stops the rollout.
#[allow(clippy::too_many_arguments)]
pub async fn run_for(
    client: &Client,
    ns: &str,
    spec: &PodSpec,
    selector: &LabelSelector,
    strategy: capacity::Strategy,
    container: &str,
    new_image: &str,
    pf: &Preflight,
    out: &mut (dyn Write + Send),
) -> Result<Passed, Box<Finding>> {
    let mut passed = Passed::default();
    if pf.verify_image
        && let Some(digest) = check_image(client, ns, spec, container, new_image, pf, out).await?
        && pf.pin_digest
    {
        passed.pinned_image = Some(registry::pinned(new_image, &digest));
    }
    if pf.capacity_check != CapacityCheck::Off {
        check_capacity(
            client,
            ns,
            selector,
            strategy,
            spec,
            container,
            pf.capacity_check,
            out,
        )
        .await?;
    }
    Ok(passed)
}

/// Credentials for `registry` from the pod template's imagePullSecrets.
async fn pull_secret_credentials(
    client: &Client,
    ns: &str,
    spec: &PodSpec,
    registry: &str,
) -> Vec<Credentials> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut found = Vec::new();
    for name in spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
    {
        let secret = match api.get(&name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!("pre-flight: cannot read imagePullSecret {name}: {e}");
                continue;
            }
        };
        let data = secret.data.unwrap_or_default();
        let Some(bytes) = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"))
        else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes.0) else {
            tracing::info!("pre-flight: imagePullSecret {name} is not valid JSON");
            continue;
        };
        if let Some(c) = registry::lookup_auths(&doc, registry, &format!("imagePullSecret {name}"))
        {
            found.push(c);
        }
    }
    found
}

/// Credentials for `registry` from the docker config file.
fn docker_config_credentials(pf: &Preflight, registry: &str) -> Option<Credentials> {
    let path = pf.docker_config.as_deref()?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            if pf.docker_config_explicit {
                tracing::warn!("registry-auth: cannot read {path}: {e}");
            }
            return None;
        }
    };
    let doc: Value = serde_json::from_str(&text)
        // Position and kind only: the file holds credentials.
        .map_err(|e| {
            tracing::warn!(
                "docker config {path} is not valid JSON ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            )
        })
        .ok()?;
    registry::lookup_auths(&doc, registry, &format!("docker config {path}"))
}

/// The registry check. `Ok(Some(digest))` when the image was found,
/// `Ok(None)` when it could not be checked (warned).
async fn check_image(
    client: &Client,
    ns: &str,
    spec: &PodSpec,
    container: &str,
    image: &str,
    pf: &Preflight,
    out: &mut (dyn Write + Send),
) -> Result<Option<String>, Box<Finding>> {
    let reference = match registry::parse(image) {
        Ok(r) => r,
        Err(e) => {
            warn(out, &format!("could not check image {image}: {e}"));
            return Ok(None);
        }
    };
    let host = registry::registry_host(&reference);
    let mut candidates = pull_secret_credentials(client, ns, spec, &host).await;
    candidates.extend(docker_config_credentials(pf, &host));
    if registry::is_google_registry(&host)
        && let Some(c) = registry::gce_metadata_credentials(&pf.gce_metadata_host).await
    {
        candidates.push(c);
    }
    let attempts: Vec<Option<&Credentials>> = if candidates.is_empty() {
        vec![None]
    } else {
        candidates.iter().map(Some).collect()
    };
    let mut last = None;
    for creds in attempts {
        let answer = registry::resolve(&reference, creds, &pf.insecure_registries).await;
        let via = creds
            .map(|c| format!(" with credentials from {}", c.source))
            .unwrap_or_default();
        match answer {
            Resolved::Found { digest } => {
                let _ = writeln!(
                    out,
                    "pre-flight: image {image} found in {host}{via} ({digest})"
                );
                return Ok(Some(digest));
            }
            Resolved::NotFound { detail } => {
                let tag = reference
                    .digest()
                    .or(reference.tag())
                    .unwrap_or("latest")
                    .to_string();
                return Err(Box::new(Finding {
                    cause: Cause::ImageNotFound,
                    summary: format!(
                        "image {image} does not exist: registry {host} has no manifest {tag} in repository {}",
                        reference.repository()
                    ),
                    container: Some(container.to_string()),
                    pods: "pre-flight, no pod started".into(),
                    evidence: vec![format!(
                        "GET /v2/{}/manifests/{tag} on {host}{via}: {detail}",
                        reference.repository()
                    )],
                    per_pod: Vec::new(),
                    logs: Vec::new(),
                    fix: IMAGE_NOT_FOUND_FIX.into(),
                }));
            }
            Resolved::Unverified { reason } => last = Some(format!("{reason}{via}")),
        }
    }
    warn(
        out,
        &format!(
            "could not verify image {image}: {}; proceeding (the kubelet may still have access; verify-image=false skips this check)",
            last.unwrap_or_default()
        ),
    );
    Ok(None)
}

fn warn(out: &mut (dyn Write + Send), message: &str) {
    tracing::warn!("{message}");
    let _ = writeln!(out, "pre-flight warning: {message}");
}

/// Is this error a permission refusal?
fn forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 || s.code == 401)
}

/// The capacity check.
#[allow(clippy::too_many_arguments)]
async fn check_capacity(
    client: &Client,
    ns: &str,
    selector: &LabelSelector,
    strategy: capacity::Strategy,
    spec: &PodSpec,
    container: &str,
    mode: CapacityCheck,
    out: &mut (dyn Write + Send),
) -> Result<(), Box<Finding>> {
    let skipped = |out: &mut (dyn Write + Send), why: String| {
        tracing::info!("capacity check skipped: {why}");
        let _ = writeln!(out, "pre-flight: capacity check skipped: {why}");
    };
    let nodes = match Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) if forbidden(&e) => {
            skipped(out, "this identity cannot list nodes".into());
            return Ok(());
        }
        Err(e) => {
            skipped(out, format!("listing nodes failed: {e}"));
            return Ok(());
        }
    };
    if nodes.is_empty() {
        skipped(out, "the cluster lists no nodes".into());
        return Ok(());
    }
    let pods = match Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) if forbidden(&e) => {
            skipped(
                out,
                "this identity cannot list pods in all namespaces".into(),
            );
            return Ok(());
        }
        Err(e) => {
            skipped(out, format!("listing pods failed: {e}"));
            return Ok(());
        }
    };
    let empty = Default::default();
    let old: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns)
                && capacity::selects(selector, p.metadata.labels.as_ref().unwrap_or(&empty))
        })
        .collect();
    match capacity::assess(&nodes, &pods, &old, spec, strategy, container) {
        capacity::Assessment::Fits { new_pods } => {
            let _ = writeln!(
                out,
                "pre-flight: capacity: the first {new_pods} new pod(s) and all {} fit on {} node(s)",
                strategy.replicas,
                nodes.len()
            );
            Ok(())
        }
        capacity::Assessment::DoesNotFit(f) if mode == CapacityCheck::Warn => {
            warn(
                out,
                &format!(
                    "{}; proceeding (capacity-check=warn). {} Per node: {}",
                    f.summary,
                    f.fix,
                    f.evidence.join(" | ")
                ),
            );
            Ok(())
        }
        capacity::Assessment::DoesNotFit(f) => Err(f),
    }
}

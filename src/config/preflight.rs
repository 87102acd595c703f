//! The pre-flight inputs: `verify-image`, `registry-auth`,
//! `insecure-registries`, `pin-digest` and `capacity-check`.

use super::env::{Env, var};
use super::inputs::RawInputs;
use super::values::parse_bool;
use super::{InputError, bad};

/// What `capacity-check` does when the surge pods cannot be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityCheck {
    Fail,
    Warn,
    Off,
}

/// Settings of the pre-flight checks.
#[derive(Debug, Clone)]
pub struct Preflight {
    pub verify_image: bool,
    /// The docker config file to read credentials from: `registry-auth`,
    /// else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub docker_config: Option<String>,
    /// True when `registry-auth` named the file (a missing file is warned about).
    pub docker_config_explicit: bool,
    /// `host[:port]` spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    pub pin_digest: bool,
    pub capacity_check: CapacityCheck,
    /// The GCE metadata server (`GCE_METADATA_HOST`, as Google's libraries read it).
    pub gce_metadata_host: String,
}

/// The pre-flight inputs.
pub(super) fn preflight_settings(raw: &RawInputs, env: &Env) -> Result<Preflight, InputError> {
    let get = |k: &str| var(env, k);
    let verify_image = parse_bool("verify-image", raw.verify_image.as_deref(), true)?;
    let pin_digest = parse_bool("pin-digest", raw.pin_digest.as_deref(), false)?;
    if pin_digest && !verify_image {
        return Err(bad(
            "pin-digest",
            "needs verify-image=true (the digest comes from the registry check)",
        ));
    }
    let capacity_check = match raw
        .capacity_check
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("fail") => CapacityCheck::Fail,
        Some("warn") => CapacityCheck::Warn,
        Some("off") => CapacityCheck::Off,
        Some(v) => {
            return Err(bad(
                "capacity-check",
                format!("\"{v}\" must be fail, warn or off"),
            ));
        }
    };
    let mut insecure_registries = Vec::new();
    for entry in raw.insecure_registries.iter().flat_map(|v| v.split(',')) {
        let e = entry.trim();
        let e = e
            .strip_prefix("http://")
            .or_else(|| e.strip_prefix("https://"))
            .unwrap_or(e)
            .trim_end_matches('/');
        if e.is_empty() {
            continue;
        }
        if !e
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            return Err(bad(
                "insecure-registries",
                format!("\"{e}\" is not a registry host[:port]"),
            ));
        }
        insecure_registries.push(e.to_ascii_lowercase());
    }
    let (docker_config, docker_config_explicit) = match &raw.registry_auth {
        Some(path) => (Some(path.clone()), true),
        None => (
            get("DOCKER_CONFIG")
                .map(|d| format!("{}/config.json", d.trim_end_matches('/')))
                .or_else(|| get("HOME").map(|h| format!("{h}/.docker/config.json"))),
            false,
        ),
    };
    Ok(Preflight {
        verify_image,
        docker_config,
        docker_config_explicit,
        insecure_registries,
        pin_digest,
        capacity_check,
        gce_metadata_host: get("GCE_METADATA_HOST")
            .unwrap_or_else(|| "metadata.google.internal".into()),
    })
}

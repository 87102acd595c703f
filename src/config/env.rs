//! The environment as rollguard reads it: the process environment as a
//! map (the binary hands it over once), and the one getter for inputs,
//! which accepts both spellings.
//!
//! Two spellings are read: GitHub's `INPUT_<NAME>` (upper-case, hyphens
//! kept: `INPUT_DRY-RUN`) and the plain `ROLLGUARD_<NAME>` (upper-case, `_`
//! for `-`: `ROLLGUARD_DRY_RUN`) for GitLab, Cloud Build and cron. An empty
//! value means unset. Both spellings of one input with different values
//! are an error naming the two variables.

use std::collections::BTreeMap;

use super::inputs::{INPUTS, RawInputs, is_known_input};
use super::{InputError, bad};

/// The environment, as name → value.
pub type Env = BTreeMap<String, String>;

/// The input name a variable spells, if it is one of ours.
fn input_name(var: &str) -> Option<String> {
    if let Some(rest) = var.strip_prefix("INPUT_") {
        // GitHub turns spaces into '_' and keeps hyphens; our names have no
        // spaces, so an '_' can only be a ROLLGUARD-style spelling: accept it.
        return Some(rest.to_ascii_lowercase().replace('_', "-"));
    }
    var.strip_prefix("ROLLGUARD_")
        .map(|rest| rest.to_ascii_lowercase().replace('_', "-"))
}

/// Every input given in `env` under either spelling, read into
/// [`RawInputs`], and the `INPUT_*`/`ROLLGUARD_*` variables that name no
/// input (warned about, not fatal).
pub(super) fn read_inputs(env: &Env) -> Result<(RawInputs, Vec<String>), InputError> {
    let mut pairs: BTreeMap<String, String> = BTreeMap::new();
    let mut unknown = Vec::new();
    // Which variable gave each input: two spellings of one input with
    // different values are an error naming both (no silent winner).
    let mut given_by: BTreeMap<String, String> = BTreeMap::new();
    for prefix in ["INPUT_", "ROLLGUARD_"] {
        for (var, value) in env.iter().filter(|(k, _)| k.starts_with(prefix)) {
            let Some(name) = input_name(var) else {
                continue;
            };
            if !is_known_input(&name) {
                unknown.push(var.clone());
                continue;
            }
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if let Some(previous) = pairs.get(&name)
                && previous != value
            {
                let first = given_by.get(&name).cloned().unwrap_or_default();
                let spec = INPUTS.iter().find(|i| i.name == name);
                return Err(bad(
                    spec.map(|i| i.name).unwrap_or("environment"),
                    format!("{first} and {var} are both set, to different values: set one"),
                ));
            }
            given_by.insert(name.clone(), var.clone());
            pairs.insert(name, value.to_string());
        }
    }
    let raw: RawInputs = envy::from_iter(pairs).map_err(|e| bad("environment", e.to_string()))?;
    Ok((raw, unknown))
}

/// A plain (non-input) variable; `None` when unset or empty.
pub(super) fn var(env: &Env, name: &str) -> Option<String> {
    env.get(name).filter(|v| !v.is_empty()).cloned()
}

/// The process environment as an [`Env`]: a non-UTF-8 value of
/// one of our inputs (`INPUT_*`, `ROLLGUARD_*`) or of a variable we read is
/// an error naming the variable (exit 2); other non-UTF-8 variables are
/// dropped.
pub fn env_from_os<I>(vars: I) -> Result<Env, InputError>
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    const READ: &[&str] = &[
        "KUBECONFIG",
        "KUBE_CONTEXT",
        "HOME",
        "DOCKER_CONFIG",
        "GITHUB_OUTPUT",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_TOKEN",
        "CI_JOB_URL",
    ];
    let mut env = Env::new();
    for (k, v) in vars {
        let Ok(k) = k.into_string() else { continue };
        match v.into_string() {
            Ok(v) => {
                env.insert(k, v);
            }
            Err(_)
                if k.starts_with("INPUT_")
                    || k.starts_with("ROLLGUARD_")
                    || READ.contains(&k.as_str()) =>
            {
                return Err(bad(
                    "environment",
                    format!("the value of {k} is not valid UTF-8"),
                ));
            }
            Err(_) => {}
        }
    }
    Ok(env)
}

//! Value parsers and checks shared by the inputs: durations, booleans,
//! counts or percentages, secrets, URLs and the report file's directory.

use std::time::Duration;

use super::{InputError, MAX_DURATION, bad};

/// A count given as a number or a percentage of the replicas (`1`, `25%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i32),
    Percent(i32),
}

impl IntOrPercent {
    pub(super) fn parse(
        input: &'static str,
        value: Option<&str>,
        default: i32,
    ) -> Result<Self, InputError> {
        let Some(v) = value else {
            return Ok(IntOrPercent::Int(default));
        };
        let parsed = match v.strip_suffix('%') {
            Some(p) => p
                .parse::<i32>()
                .ok()
                .filter(|p| (0..=100).contains(p))
                .map(IntOrPercent::Percent),
            None => v
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .map(IntOrPercent::Int),
        };
        parsed.ok_or_else(|| {
            bad(
                input,
                format!("\"{v}\" is not a whole number ≥ 0 or a percentage (e.g. 1 or 25%)"),
            )
        })
    }

    pub(super) fn is_zero(self) -> bool {
        matches!(self, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
    }

    /// The count for `replicas`; percentages round up (`round_up`, as for
    /// maxSurge) or down (as for maxUnavailable).
    pub fn resolve(self, replicas: i32, round_up: bool) -> i32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let x = replicas as i64 * p as i64;
                let n = if round_up { (x + 99) / 100 } else { x / 100 };
                n as i32
            }
        }
    }
}

pub(super) fn parse_duration(
    input: &'static str,
    value: Option<&str>,
    default: &str,
) -> Result<Duration, InputError> {
    let v = value.unwrap_or(default);
    let d = humantime::parse_duration(v).map_err(|_| {
        bad(
            input,
            format!("\"{v}\" is not a duration (e.g. 90s, 5m, 1h30m)"),
        )
    })?;
    if d > MAX_DURATION {
        return Err(bad(
            input,
            format!("\"{v}\" is longer than the maximum of 24h"),
        ));
    }
    Ok(d)
}

pub(super) fn parse_bool(
    input: &'static str,
    value: Option<&str>,
    default: bool,
) -> Result<bool, InputError> {
    match value.map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if ["true", "yes", "1", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["false", "no", "0", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => Err(bad(
            input,
            format!("\"{v}\" is not a boolean (true or false)"),
        )),
    }
}

/// A secret input must be one token: no whitespace or control characters
/// (a newline would also split the `::add-mask::` line that hides it).
/// The value itself is never quoted.
pub(super) fn check_secret(input: &'static str, value: Option<&str>) -> Result<(), InputError> {
    match value {
        Some(v) if v.chars().any(|c| c.is_control() || c.is_whitespace()) => Err(bad(
            input,
            "contains whitespace or a control character (a line break?): give the secret as one line",
        )),
        _ => Ok(()),
    }
}

/// An `http://` or `https://` URL with a host (never quoted: it is a secret).
pub(super) fn check_http_url(value: &str) -> Result<(), String> {
    match reqwest::Url::parse(value) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(())
        }
        Ok(u) => Err(format!(
            "must be an http(s):// URL (its scheme is {})",
            crate::text::quote(u.scheme(), 20)
        )),
        Err(e) => Err(format!("is not a URL ({e})")),
    }
}

/// The report file's directory must exist and take a new file: found out
/// now, not after the rollout.
pub(super) fn check_report_file(path: &str) -> Result<(), String> {
    let p = std::path::Path::new(path);
    let quoted = crate::text::quote(path, 200);
    if p.is_dir() {
        return Err(format!("\"{quoted}\" is a directory, not a file"));
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("the directory of \"{quoted}\" does not exist"));
    }
    let probe = dir.join(format!(".rollguard-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!(
            "cannot write in the directory of \"{quoted}\" ({})",
            e.kind()
        )),
    }
}
